"""fuserec-os: personalized e-commerce search on OpenSearch.

The public Python API starts here::

    from fuserec_os import SearchBackend
    with SearchBackend.from_env() as backend:
        result = backend.search("running shoes", filters={"price_max": 100}, size=10)

Heavy modules (pandas, the engine client) are imported lazily so ``import fuserec_os`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fuserec_os.index.ingest import IngestReport, ingest_products
    from fuserec_os.search.backend import SearchBackend, SearchResult
    from fuserec_os.settings import Settings

__all__ = ["IngestReport", "SearchBackend", "SearchResult", "Settings", "__version__", "ingest_products"]

_LAZY = {
    "SearchBackend": "fuserec_os.search.backend",
    "SearchResult": "fuserec_os.search.backend",
    "IngestReport": "fuserec_os.index.ingest",
    "ingest_products": "fuserec_os.index.ingest",
    "Settings": "fuserec_os.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fuserec_os' has no attribute {name!r}")
