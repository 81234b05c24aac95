"""BM25 retrieval in bulk: many queries through the engine in ``_msearch`` batches, cached per query.

Training (engine scores of every logged search's candidates) and the shopper simulator (what BM25 returns
for each distinct query) both need thousands of queries; :class:`EngineRetriever` runs the very request the
search backend sends (:func:`~fuserec_os.search.query_builder.build_query`, plain text, no facets, no
highlight, ``_source: false``), so offline numbers describe the same BM25 that serves users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opensearchpy import OpenSearch

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineError
from fuserec_os.search.query_builder import build_query
from fuserec_os.search.request import SearchConfig, SearchRequest

__all__ = ["EngineRetriever"]


class EngineRetriever:
    """BM25 through the engine: the search backend's plain-text request, batched with ``_msearch``, cached.

    ``k`` (default 100) is the depth used when ``search`` is called without one; results are cached per
    ``(query, k)``. ``requests`` counts ``_msearch`` calls, ``queries_sent`` the queries they carried.
    """

    def __init__(
        self,
        client: OpenSearch,
        alias: str,
        k: int = 100,
        *,
        batch_size: int = 100,
        config: SearchConfig | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.client = client
        self.alias = alias
        self.k = k
        self.batch_size = batch_size
        self.config = config or SearchConfig()
        self.cache: dict[tuple[str, int], list[tuple[str, float]]] = {}
        self.requests = 0
        self.queries_sent = 0

    def body(self, query: str, k: int | None = None) -> dict[str, Any]:
        """The ``_search`` body for ``query``: what :class:`~fuserec_os.search.backend.SearchBackend` sends."""
        req = SearchRequest(text=query, size=k or self.k, facets=False, highlight=False)
        body = build_query(req, self.config).body
        body["_source"] = False
        return body

    def search(self, queries: Sequence[str], k: int | None = None) -> list[list[str]]:
        return [[pid for pid, _ in ranked] for ranked in self.search_scored(queries, k)]

    def search_scored(self, queries: Sequence[str], k: int | None = None) -> list[list[tuple[str, float]]]:
        """Like :meth:`search`, with the engine's score of each hit (the training features need it)."""
        depth = k or self.k
        missing = list(dict.fromkeys(q for q in queries if (q, depth) not in self.cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            lines: list[dict[str, Any]] = []
            for q in batch:
                lines.append({})
                lines.append(self.body(q, depth))
            with engine_errors(f"running {len(batch)} BM25 queries on {self.alias}"):
                resp = self.client.msearch(body=lines, index=self.alias)
            self.requests += 1
            self.queries_sent += len(batch)
            for q, item in zip(batch, resp["responses"], strict=True):
                if "error" in item:
                    err = item["error"]
                    reason = err.get("reason") if isinstance(err, Mapping) else err
                    raise EngineError(f"the engine refused the BM25 query {q!r} on {self.alias}: {reason}")
                self.cache[(q, depth)] = [(str(h["_id"]), float(h["_score"] or 0.0)) for h in item["hits"]["hits"]]
        return [list(self.cache[(q, depth)]) for q in queries]
