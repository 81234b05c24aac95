"""Running the proxy in-process for tests: uvicorn in a thread on a free port, plus a tiny test model."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import numpy as np
import uvicorn
from opensearchpy import OpenSearch

from fuserec_os.features.spec import FeatureSet
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.registry import ModelRegistry
from fuserec_os.rerank.scorer import NumpyMLPScorer

FEATURES = ("bm25_norm", "brand_affinity")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningProxy:
    """``with RunningProxy(app) as p: OpenSearch([p.url])``."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def proxy(self) -> Any:
        return self.app.state.proxy

    def __enter__(self) -> RunningProxy:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the proxy did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, **kwargs: Any) -> OpenSearch:
        return OpenSearch([self.url], timeout=30, **kwargs)


def brand_artifact(weight: float = 10.0, *, alpha: float = 0.9) -> ModelArtifact:
    """A linear 'MLP' scoring brand affinity only: a user's favourite brand visibly moves up."""
    fs = FeatureSet(FEATURES)
    d = len(fs.columns)
    kernel = np.zeros((d, 1), dtype=np.float32)
    kernel[fs.columns.index("brand_affinity"), 0] = weight
    kernel[fs.columns.index("bm25_norm"), 0] = 0.1
    scorer = NumpyMLPScorer([kernel, np.zeros(1)], np.zeros(d), np.ones(d), fs.columns, output="linear")
    gate = Gate(alpha_no_history=0.0, alpha_light=alpha, alpha_heavy=alpha, light_min_events=1, heavy_min_events=5)
    return ModelArtifact(scorer, FEATURES, gate)


def register(client: OpenSearch, prefix: str, blob: bytes, *, promote: bool = True) -> str:
    reg = ModelRegistry(client, prefix)
    meta = {
        "kind": "mlp",
        "metrics": {"test": {"mlp": {"ndcg@10": 0.5}, "engine": {"ndcg@10": 0.4}}},
        "features": list(FEATURES),
        "code_version": "0.1.0+test",
    }
    version = reg.save(blob, meta)
    if promote:
        reg.promote(version, force=True)
    return version
