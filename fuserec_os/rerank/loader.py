"""Load the registry's active model for serving: artifact + catalog -> a warmed :class:`LoadedModel`.

Why a separate step: everything per item (the catalog's arrays, the artifact's product vectors) is computed
once here, so a request only gathers rows. Loading reads the catalog through the same
:func:`~fuserec_os.index.products.read_products` scan training reads it with, so the item features of a
served product are computed from the very documents a model trained on (when the catalog is unchanged).

No TensorFlow: the artifact is NumPy weights (:class:`~fuserec_os.rerank.scorer.NumpyMLPScorer`).

For the proxy: :func:`load_active` does blocking I/O (run it in a thread); :func:`build_loaded` is the CPU part
alone (the registry blob and the catalog frame in, a warmed model out), for a caller with its own async I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.index.products import read_products
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.registry import ModelRegistry
from fuserec_os.rerank.stage import LoadedModel

__all__ = ["LoadReport", "build_loaded", "load_active"]


@dataclass(frozen=True)
class LoadReport:
    """What loading did (shown by ``--explain``): the version, how many products, seconds per step."""

    version: str | None
    products: int
    seconds: dict[str, float]


def build_loaded(version: str, blob: bytes, products: pd.DataFrame) -> LoadedModel:
    """Parse ``blob``, precompute the item table from ``products`` and score one warm-up batch.

    Raises (ArtifactError, ValueError, ...) when the model cannot be read or cannot score: a caller that is
    swapping models keeps the current one.
    """
    artifact = ModelArtifact.from_bytes(blob)
    model = LoadedModel.build(version, artifact, products)
    model.warm()
    return model


def load_active(client: OpenSearch, prefix: str, products_alias: str) -> tuple[LoadedModel | None, LoadReport]:
    """The active version of the registry of tenant ``prefix``, loaded and warmed; None without one.

    Errors reading the registry or the catalog propagate (the caller decides: the pipeline turns them into the
    ``no_model`` fallback with the reason in the notes).
    """
    import time

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    loaded = ModelRegistry(client, prefix).load_active()
    seconds["registry"] = time.perf_counter() - t
    if loaded is None:
        return None, LoadReport(None, 0, seconds)
    info, blob = loaded
    t = time.perf_counter()
    products = read_products(client, products_alias, "serving the model")
    seconds["catalog"] = time.perf_counter() - t
    t = time.perf_counter()
    model = build_loaded(info.version, blob, products)
    seconds["build"] = time.perf_counter() - t
    return model, LoadReport(info.version, len(products), seconds)
