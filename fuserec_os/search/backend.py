"""The drop-in Python search backend: a request in, typed hits and facets out.

``SearchBackend.from_env().search("running shoes", filters={"brand": "Nike"}, page=1, size=10)``
builds the DSL with the pure query builder, runs one ``_search`` through the products alias and parses the
answer. Engine errors become our own (QueryError for a request the engine refuses, EngineUnavailableError
when it is down), never raw transport exceptions.

Personalization: with a ``user_id`` (or ``explain=True``) and a :class:`Personalizer`, the search goes through
the rerank stage instead (:mod:`fuserec_os.rerank.pipeline`): the engine's top window, the user's profile and
the query's statistics, the active model, one page out with what happened in ``SearchResult.personalization``.
This package does not import the stage (retrieval sits below personalization, ``tests/unit/test_layout.py``):
the personalizer is injected, and :meth:`SearchBackend.from_env` wires the default one, imported only on the
first personalized search, so a backend that never sees a user id never loads pandas or the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    ranking: dict[str, Any] | None = None
    """Personalized searches only: engine_rank, engine_score, model_score, blended_score, new_rank and
    (with explain) ``explanation``: [{"feature": words, "contribution": signed number}], largest first."""


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
    personalization: dict[str, Any] | None = None
    """Personalized searches only: what the rerank stage did (``StageResult.info()``: applied, fallback, model
    version, window, behavioural candidates, timings per step)."""

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total": self.total,
            "page": self.page,
            "size": self.size,
            "took_ms": self.took_ms,
            "warnings": list(self.warnings),
            "hits": [_hit_dict(h) for h in self.hits],
            "facets": {k: [{"key": b.key, "count": b.count} for b in v] for k, v in self.facets.items()},
        }
        if self.personalization is not None:
            out["personalization"] = self.personalization
        return out


def _hit_dict(h: Hit) -> dict[str, Any]:
    out = {"id": h.id, "score": h.score, "source": h.source, "highlights": h.highlights}
    if h.ranking is not None:
        out["ranking"] = h.ranking
    return out


class Personalizer(Protocol):
    """Runs a search through the rerank stage (:class:`fuserec_os.rerank.pipeline.Pipeline` is the one we ship).

    Must never fail a search for a personalization reason (no model, no profile, a model error): it returns
    engine order and says why in ``SearchResult.personalization``. Engine errors of the search itself propagate
    as they do for a plain search.
    """

    def execute(self, backend: SearchBackend, req: SearchRequest, *, explain: bool = False) -> SearchResult: ...

    def close(self) -> None: ...


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

    def __init__(
        self,
        client: OpenSearch,
        alias: str = PRODUCTS,
        config: SearchConfig | None = None,
        personalizer: Personalizer | None = None,
        *,
        personalizer_factory: Callable[[SearchBackend], Personalizer] | None = None,
    ) -> None:
        """``personalizer``: the rerank pipeline; or ``personalizer_factory``, called with this backend on the
        first personalized search (building the pipeline loads the model: nothing is paid until a user id
        comes in)."""
        self.client = client
        self.alias = alias
        self.config = config or SearchConfig()
        self._engine: Engine | None = None
        self._personalizer = personalizer
        self._factory = personalizer_factory
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> SearchBackend:
        """Connect as the CLI does (FUSEREC_* settings, embedded engine when no URL); close() when done.

        Searches with a ``user_id`` are personalized by the registry's active model (loaded on the first one).
        """
        settings = settings or Settings.from_env()
        engine = open_engine(settings)
        ranking = load_ranking_config(settings.config_path)
        prefix = settings.index_prefix

        def personalizer(backend: SearchBackend) -> Personalizer:
            # the composition root: the one place retrieval reaches up to the rerank stage, lazily
            from fuserec_os.rerank.pipeline import Pipeline

            return Pipeline.from_config(
                backend.client, prefix, ranking, signals_refresh_s=settings.proxy_reload_seconds
            )

        backend = cls(engine.client, settings.alias(PRODUCTS), ranking.search, personalizer_factory=personalizer)
        backend._engine = engine
        return backend

    @property
    def personalizer(self) -> Personalizer | None:
        """The personalizer, built on first use from its factory (once, also under concurrent searches)."""
        if self._personalizer is None and self._factory is not None:
            with self._lock:
                if self._personalizer is None and self._factory is not None:
                    self._personalizer = self._factory(self)
        return self._personalizer

    def close(self) -> None:
        if self._personalizer is not None:
            self._personalizer.close()
            self._personalizer = None
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
        explain: bool = False,
    ) -> SearchResult:
        """Run one search; raises QueryError for a bad request and EngineUnavailableError when down.

        With ``user_id`` (or ``explain``) and a personalizer the page is reranked for that user (see the module
        docstring); ``explain`` adds per hit the engine and new rank, the scores and the features in words.
        """
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
        return self.execute(req, explain=explain)

    def execute(self, req: SearchRequest, *, explain: bool = False) -> SearchResult:
        """One search: personalized when it carries a user id (or ``explain``) and there is a personalizer."""
        if req.user_id is not None or explain:
            personalizer = self.personalizer
            if personalizer is not None:
                return personalizer.execute(self, req, explain=explain)
        return self.execute_plain(req)

    def execute_plain(self, req: SearchRequest) -> SearchResult:
        """The engine's own order (one ``_search``), whatever the request's user."""
        built = build_query(req, self.config)
        return parse_response(self.raw_search(built.body), req, built.warnings)

    def raw_search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One ``_search`` on the products alias with our error mapping (the personalizer's engine calls)."""
        with engine_errors(f"searching {self.alias}"):
            try:
                resp: dict[str, Any] = self.client.search(index=self.alias, body=dict(body))
            except osx.NotFoundError as exc:
                raise QueryError(
                    f"no index behind '{self.alias}': run 'fuserec index create' and 'fuserec ingest products "
                    "FILE' first."
                ) from exc
            except osx.RequestError as exc:
                raise QueryError(f"the engine refused the search: {error_reason(exc)}") from exc
        return resp
