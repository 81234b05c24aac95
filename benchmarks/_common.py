"""Shared plumbing for the benchmarks: the engine, machine info, statistics, JSON results, summaries.

Engine: ``FUSEREC_BENCH_OPENSEARCH_URL`` (optionally with ``FUSEREC_BENCH_OPENSEARCH_USER``/``_PASSWORD``/
``_VERIFY_CERTS``/``_CA_CERTS``) points the benchmarks at a real cluster; unset, a fresh in-memory
osmem-server is started for the run and stopped afterwards. Every index a benchmark creates has a unique
``fuserec-bench-<random>-`` prefix and is deleted at the end, so a shared cluster is left as it was.

Results go to ``benchmarks/results/<name>.json`` (git-ignored) with the machine, library and engine versions
and a UTC timestamp, so numbers from different machines or engines are never compared blindly.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch

from fuserec_os.engine import close_osmem
from fuserec_os.engine.client import make_client
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.settings import Settings

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
MAPPING_FILE = REPO / "mappings" / "products.json"
URL_ENV = "FUSEREC_BENCH_OPENSEARCH_URL"


@dataclass
class BenchEngine:
    """A connected engine for one benchmark run."""

    client: OpenSearch
    url: str
    kind: str  # "osmem" (started for this run) or "cluster" (FUSEREC_BENCH_OPENSEARCH_URL)
    info: dict[str, Any] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"fuserec-bench-{uuid.uuid4().hex[:8]}-")

    @property
    def version(self) -> str:
        v = self.info.get("version", {})
        return f"{v.get('distribution', 'opensearch')} {v.get('number', '?')}"

    def describe(self) -> dict[str, Any]:
        v = self.info.get("version", {})
        return {
            "kind": self.kind,
            "url": self.url,
            "distribution": v.get("distribution", "opensearch"),
            "version": v.get("number"),
            "lucene_version": v.get("lucene_version"),
        }

    def cleanup(self) -> None:
        """Delete every index this run created (matters on a shared cluster)."""
        names = self.client.indices.get(index=f"{self.prefix}*", params={"ignore_unavailable": "true"})
        for name in names:
            self.client.indices.delete(index=name, params={"ignore_unavailable": "true"})


@contextmanager
def open_bench_engine() -> Iterator[BenchEngine]:
    """The engine to measure against: the configured cluster, or a fresh osmem-server stopped afterwards."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        values = {"FUSEREC_OPENSEARCH_URL": url}
        for key in ("USER", "PASSWORD", "VERIFY_CERTS", "CA_CERTS"):
            value = os.environ.get(f"FUSEREC_BENCH_OPENSEARCH_{key}")
            if value:
                values[f"FUSEREC_OPENSEARCH_{key}"] = value
        settings = Settings.from_values(values)
        client = make_client(settings)
        engine = BenchEngine(client=client, url=url, kind="cluster", info=dict(client.info()))
        try:
            yield engine
        finally:
            try:
                engine.cleanup()
            finally:
                client.close()
        return

    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        client = make_client(Settings(), [server.url])
        engine = BenchEngine(client=client, url=server.url, kind="osmem", info=dict(client.info()))
        try:
            yield engine
        finally:
            client.close()
    finally:
        close_osmem(server)


def load_spec() -> MappingSpec:
    return load_mapping(MAPPING_FILE, "products")


# ------------------------------------------------------------------------------------------ machine info


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": _usable_cpus(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": {
            "fuserec-os": _version("fuserec-os"),
            "opensearch-py": _version("opensearch-py"),
            "osmem-server": _version("osmem-server"),
        },
    }


# ------------------------------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``p`` in 0..100."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    k = (len(data) - 1) * p / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    if lo == hi:
        return float(data[lo])
    return float(data[lo] + (data[hi] - data[lo]) * (k - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


# ------------------------------------------------------------------------------------------ output


def write_results(name: str, payload: Mapping[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` with machine info and a UTC timestamp; returns the path."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        **payload,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def print_summary(title: str, rows: Sequence[tuple[str, str]], engine: BenchEngine | None = None) -> None:
    """A readable block: a title, the engine and machine, then aligned ``label  value`` rows."""
    info = machine_info()
    width = max((len(label) for label, _ in rows), default=0)
    print()
    print(f"== {title} ==")
    if engine is not None:
        print(f"engine: {engine.version} ({engine.kind}, {engine.url})")
    v = info["versions"]
    print(
        f"machine: {info['usable_cpus']} usable CPU(s) of {info['cpu_count']}, Python {info['python']}, "
        f"opensearch-py {v['opensearch-py']}, osmem-server {v['osmem-server']}"
    )
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    sys.stdout.flush()
