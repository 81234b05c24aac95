"""The drop-in Python search backend: a request in, typed hits and facets out.

``SearchBackend.from_env().search("running shoes", filters={"brand": "Nike"}, page=1, size=10)``
builds the DSL with the pure query builder, runs one ``_search`` through the products alias and parses the
answer. Engine errors become our own (QueryError for a request the engine refuses, EngineUnavailableError
when it is down), never raw transport exceptions. ``user_id`` is accepted now; personalization uses it
once the reranker lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.config import load_ranking_config
from fuserec_os.engine import Engine, open_engine
from fuserec_os.engine.client import engine_errors, error_reason
from fuserec_os.errors import QueryError
from fuserec_os.search.query_builder import FACET_ORDER, build_query
from fuserec_os.search.request import Filters, SearchConfig, SearchRequest, Sort
from fuserec_os.settings import Settings

PRODUCTS = "products"


@dataclass(frozen=True)
class Hit:
    id: str
    score: float | None
    source: dict[str, Any]
    highlights: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FacetBucket:
    key: str
    count: int


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, list[FacetBucket]]
    took_ms: int
    page: int
    size: int
    warnings: tuple[str, ...] = ()

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "page": self.page,
            "size": self.size,
            "took_ms": self.took_ms,
            "warnings": list(self.warnings),
            "hits": [{"id": h.id, "score": h.score, "source": h.source, "highlights": h.highlights} for h in self.hits],
            "facets": {k: [{"key": b.key, "count": b.count} for b in v] for k, v in self.facets.items()},
        }


def parse_response(resp: Mapping[str, Any], req: SearchRequest, warnings: tuple[str, ...] = ()) -> SearchResult:
    """Turn an engine ``_search`` response into a SearchResult (pure: unit-testable without an engine)."""
    hits_block = resp.get("hits", {})
    total = hits_block.get("total", 0)
    hits = [
        Hit(
            id=str(h["_id"]),
            score=h.get("_score"),
            source=h.get("_source", {}),
            highlights=h.get("highlight", {}),
        )
        for h in hits_block.get("hits", [])
    ]
    aggs = resp.get("aggregations", {})
    rank = {name: i for i, name in enumerate(FACET_ORDER)}
    facets = {
        name: [FacetBucket(key=str(b["key"]), count=int(b["doc_count"])) for b in aggs[name].get("buckets", [])]
        for name in sorted(aggs, key=lambda n: (rank.get(n, len(rank)), n))  # the requested order, not the engine's
    }
    return SearchResult(
        hits=hits,
        total=int(total["value"] if isinstance(total, dict) else total),
        facets=facets,
        took_ms=int(resp.get("took", 0)),
        page=req.page,
        size=req.size,
        warnings=warnings,
    )


class SearchBackend:
    """Search the products alias. Thread-safe: it holds only the client and immutable config."""

    def __init__(self, client: OpenSearch, alias: str = PRODUCTS, config: SearchConfig | None = None) -> None:
        self.client = client
        self.alias = alias
        self.config = config or SearchConfig()
        self._engine: Engine | None = None

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> SearchBackend:
        """Connect as the CLI does (FUSEREC_* settings, embedded engine when no URL); close() when done."""
        settings = settings or Settings.from_env()
        engine = open_engine(settings)
        backend = cls(engine.client, settings.alias(PRODUCTS), load_ranking_config(settings.config_path).search)
        backend._engine = engine
        return backend

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> SearchBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(
        self,
        query: str = "",
        *,
        filters: Filters | Mapping[str, Any] | None = None,
        sort: Sort | str = Sort.RELEVANCE,
        page: int = 1,
        size: int = 10,
        user_id: str | None = None,
        facets: bool = True,
        highlight: bool = True,
    ) -> SearchResult:
        """Run one search; raises QueryError for a bad request and EngineUnavailableError when down."""
        if filters is None:
            filters = Filters()
        elif not isinstance(filters, Filters):
            filters = Filters.from_mapping(filters)
        req = SearchRequest(
            text=query,
            filters=filters,
            sort=sort if isinstance(sort, Sort) else Sort.parse(sort),
            page=page,
            size=size,
            user_id=user_id,
            facets=facets,
            highlight=highlight,
        )
        return self.execute(req)

    def execute(self, req: SearchRequest) -> SearchResult:
        built = build_query(req, self.config)
        with engine_errors(f"searching {self.alias}"):
            try:
                resp = self.client.search(index=self.alias, body=built.body)
            except osx.NotFoundError as exc:
                raise QueryError(
                    f"no index behind '{self.alias}': run 'fuserec index create' and 'fuserec ingest products "
                    "FILE' first."
                ) from exc
            except osx.RequestError as exc:
                raise QueryError(f"the engine refused the search: {error_reason(exc)}") from exc
        return parse_response(resp, req, built.warnings)
