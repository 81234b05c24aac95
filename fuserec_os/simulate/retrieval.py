"""Where simulated shoppers' result lists come from: the engine's BM25, and the shop's blended ranker.

:class:`Retriever` is the one seam: ``search(queries, k) -> ranked product ids per query``. The engine
implementation (:class:`EngineRetriever`) runs the very BM25 request the search backend would
(:func:`fuserec_os.search.query_builder.build_query`, plain text, no facets, no highlight, ``_source: false``)
in ``_msearch`` batches and caches per distinct query string, so a million-event simulation costs a few
thousand engine queries.

Real click logs come from a shop's production ranker, not from pure BM25, which is why BM25's top 100 misses a
share of what shoppers click and buy. :class:`ShopRanker` models that ranker: BM25's results fused (weighted
reciprocal rank) with merchandising, the products of the category the shop's query rules assign to the query,
by popularity. It stands in for the synonym, spelling and category rules the engine lacks, so informal terms
and typos still show relevant products that BM25 never returns. A personalised ranker can later be passed as
the retriever, or replace :meth:`ShopRanker.shown_list`, to close the loop.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.simulate.catalog import GeneratedProduct
from fuserec_os.simulate.queries import QueryIntent

__all__ = ["EngineRetriever", "Retriever", "ShopRanker"]


@runtime_checkable
class Retriever(Protocol):
    """Ranked product ids (best first, at most ``k``) for each query, in the order of ``queries``."""

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]: ...


class ShopRanker:
    """The shop's production ranker: BM25 fused with category merchandising, then a page of ``page_size``.

    Score of a product = ``1 / (rrf_k + bm25_rank) + merch_weight / (rrf_k + merch_rank)`` where the
    merchandising list is the top ``merch_depth`` products (by popularity) of the category the shop's rules
    assign to the query. With probability ``jitter`` a shown list gets a few adjacent swaps (the shop's
    experiments and freshness rules), which also gives the log the position variation debiasing needs.
    """

    def __init__(
        self,
        catalog: Sequence[GeneratedProduct],
        retriever: Retriever,
        *,
        k: int = 100,
        page_size: int = 24,
        merch_weight: float = 0.8,
        merch_depth: int = 60,
        rrf_k: float = 10.0,
        jitter: float = 0.2,
    ) -> None:
        self.retriever = retriever
        self.k = k
        self.page_size = page_size
        self.merch_weight = merch_weight
        self.merch_depth = merch_depth
        self.rrf_k = rrf_k
        self.jitter = jitter
        order = sorted(catalog, key=lambda p: (-float(p.doc.get("popularity") or 0.0), p.doc["product_id"]))
        self._by_popularity = [(p.doc["category"], str(p.doc["product_id"])) for p in order]
        self._merch: dict[str, list[str]] = {}
        self._fused: dict[tuple[str, str], list[str]] = {}
        self._bm25: dict[str, list[str]] = {}

    def prepare(self, queries: Sequence[str]) -> None:
        """Fetch BM25 for every distinct query at once (one batched retriever call)."""
        todo = list(dict.fromkeys(q for q in queries if q not in self._bm25))
        if todo:
            for q, ids in zip(todo, self.retriever.search(todo, self.k), strict=True):
                self._bm25[q] = ids

    def bm25(self, query: str) -> list[str]:
        if query not in self._bm25:
            self.prepare([query])
        return self._bm25[query]

    def merchandising(self, category: str) -> list[str]:
        """The most popular products in ``category`` (a path; its subtree included)."""
        if category not in self._merch:
            below = category + " > "
            self._merch[category] = [
                pid for cat, pid in self._by_popularity if cat == category or cat.startswith(below)
            ][: self.merch_depth]
        return self._merch[category]

    def ranked(self, query: str, category: str | None) -> list[str]:
        """The shop's full ranking for a query (not personalised, cached)."""
        key = (query, category or "")
        if key not in self._fused:
            scores: dict[str, float] = {}
            for r, pid in enumerate(self.bm25(query), 1):
                scores[pid] = 1.0 / (self.rrf_k + r)
            if category and self.merch_weight > 0:
                for r, pid in enumerate(self.merchandising(category), 1):
                    scores[pid] = scores.get(pid, 0.0) + self.merch_weight / (self.rrf_k + r)
            self._fused[key] = sorted(scores, key=lambda pid: -scores[pid])
        return self._fused[key]

    def shown_list(self, user: object, intent: QueryIntent, rng: random.Random) -> list[str]:
        """The page of products the shop shows ``user`` for ``intent.text`` (``user`` is for a personalised ranker)."""
        shown = self.ranked(intent.text, intent.category)[: self.page_size]
        if len(shown) > 2 and rng.random() < self.jitter:
            shown = list(shown)
            for _ in range(3):
                i = rng.randrange(len(shown) - 1)
                shown[i], shown[i + 1] = shown[i + 1], shown[i]
        return shown
