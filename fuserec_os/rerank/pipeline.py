"""The synchronous I/O around the rerank stage: what ``SearchBackend.search(user_id=...)`` and ``fuserec search
--user`` run. The proxy does the same I/O asynchronously with the pure helpers below and the same stage.

One request:

1. the engine query of :func:`~fuserec_os.search.query_builder.build_query`, with ``from: 0, size: window``
   (the window pushed into the query; facets and the total come from it, as for a plain search);
2. *concurrently* (a small shared thread pool; the opensearch-py client is thread-safe): the user's profile
   (one ``_mget``) and the query's statistics (one ``_mget``), then the behavioural candidates: products engaged
   after the query or its terms (:meth:`QueryStatsView.engaged`), fetched with the request's filters plus an
   ``ids`` clause, so they still satisfy the filters. Their ids come from the statistics, so that query can
   only start once the statistics are read: {engine query} runs beside {profile + statistics, then the
   behavioural ids query}, not in one ``_msearch`` (see docs/personalization.md). It asks for
   ``behavioural_k + window`` ids, since which of them the window already holds is known only afterwards;
3. :meth:`RerankStage.run` (no I/O);
4. a page past the reranked candidates comes from the engine's order after the window, minus what the
   reranked part already showed (:func:`tail_hits`): paging never repeats or skips a product.

Personalization never fails a search: a failed profile or statistics read is the ``store_error`` fallback
(engine order), a model that cannot load is ``no_model`` with the reason in the notes. Errors of the engine
query itself propagate exactly as for a plain search.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.behaviour.events import normalize_query
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.query_stats import QueryStatsView
from fuserec_os.profiles.stats_store import read_view
from fuserec_os.profiles.store import read_profiles
from fuserec_os.rerank.explain import describe
from fuserec_os.rerank.settings import RerankSettings
from fuserec_os.rerank.stage import (
    EngineHit,
    LoadedModel,
    RankedHit,
    RerankStage,
    RuleSet,
    StageInput,
    StageResult,
    page_slice,
)
from fuserec_os.search.backend import Hit, SearchBackend, SearchResult, parse_response
from fuserec_os.search.query_builder import build_filters, build_query
from fuserec_os.search.request import SearchConfig, SearchRequest, Sort

__all__ = [
    "Pipeline",
    "StoreAliases",
    "behavioural_body",
    "behavioural_hits",
    "engine_hits",
    "tail_body",
    "tail_hits",
    "to_search_hits",
    "window_body",
]

T = TypeVar("T")
_POOL_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One small pool per process for the concurrent reads (threads are reused across requests)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fuserec-rerank")
        return _POOL


@dataclass(frozen=True)
class StoreAliases:
    """Where the pipeline reads (tenant prefix applied): products, profiles, query statistics, item signals."""

    products: str
    profiles: str
    stats: str
    items: str = "item-signals"

    @classmethod
    def for_prefix(cls, prefix: str) -> StoreAliases:
        from fuserec_os.profiles.jobs import Aliases

        a = Aliases.for_prefix(prefix)
        return cls(a.products, a.profiles, a.stats, a.items)


# ------------------------------------------------------------------------------------------ pure helpers


def window_body(req: SearchRequest, config: SearchConfig, window: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The engine query for the reranked window: the plain search's body with ``from: 0, size: window``."""
    built = build_query(req, config)  # validates the request (page, size, text length) as a plain search does
    body = dict(built.body)
    body["from"] = 0
    body["size"] = window
    return body, built.warnings


def engine_hits(resp: Mapping[str, Any]) -> list[EngineHit]:
    """The engine's hits in engine order (duplicate ids, which a broken index could return, keep the first)."""
    out: list[EngineHit] = []
    seen: set[str] = set()
    for h in resp.get("hits", {}).get("hits", []):
        pid = str(h["_id"])
        if pid in seen:
            continue
        seen.add(pid)
        score = h.get("_score")
        out.append(EngineHit(pid, float(score) if score is not None else None, h.get("_source") or {}, h))
    return out


def behavioural_body(req: SearchRequest, ids: Sequence[str]) -> dict[str, Any]:
    """Products ``ids`` that satisfy the request's filters (never its text: they are there because shoppers
    engaged with them after this query although the text may not match them)."""
    return {
        "query": {"bool": {"filter": [*build_filters(req.filters), {"ids": {"values": list(ids)}}]}},
        "size": len(ids),
        "track_total_hits": False,
    }


def behavioural_hits(
    resp: Mapping[str, Any], ids: Sequence[str], window: Sequence[EngineHit], k: int
) -> list[EngineHit]:
    """The first ``k`` of ``ids`` (engagement order) that the filters kept and the window does not hold.

    Their engine score is None: the stage treats them as products the engine did not rank.
    """
    found = {str(h["_id"]): h for h in resp.get("hits", {}).get("hits", [])}
    in_window = {h.id for h in window}
    out: list[EngineHit] = []
    for pid in ids:
        h = found.get(pid)
        if h is None or pid in in_window:
            continue
        out.append(EngineHit(pid, None, h.get("_source") or {}, h))
        if len(out) >= k:
            break
    return out


def tail_body(window_query: Mapping[str, Any], window: int, count: int) -> dict[str, Any]:
    """The engine's order after the window: ``from: window``, no aggregations, no total."""
    body = {k: v for k, v in window_query.items() if k not in ("aggs", "aggregations")}
    body["from"] = window
    body["size"] = count
    body["track_total_hits"] = False
    return body


def tail_hits(resp: Mapping[str, Any], shown: set[str], skip: int, count: int) -> list[EngineHit]:
    """``count`` hits of the engine's order after the window, ``skip`` places in, once the products the
    reranked part already showed are taken out (the full order is: reranked, then this)."""
    rest = [h for h in engine_hits(resp) if h.id not in shown]
    return rest[skip : skip + count]


def to_search_hits(result: StageResult, explain: bool) -> list[Hit]:
    """The stage's page as the backend's hits: blended score when the model ranked them, else the engine's."""
    return [_hit(r, result.applied, explain) for r in result.hits]


def _hit(r: RankedHit, applied: bool, explain: bool) -> Hit:
    raw = r.hit.raw or {}
    ranking = r.info(explain)
    score = r.blended_score if applied and r.blended_score is not None else r.engine_score
    return Hit(r.id, score, dict(r.hit.source), dict(raw.get("highlight") or {}), ranking)


# ------------------------------------------------------------------------------------------ the pipeline


class Pipeline:
    """Personalized search over one tenant's stores with one loaded model (the backend's Personalizer).

    Thread-safe: it holds the client, immutable settings and the loaded model; each request's state is local.
    """

    def __init__(
        self,
        client: OpenSearch,
        aliases: StoreAliases,
        stage: RerankStage,
        *,
        notes: tuple[str, ...] = (),
        clock: Callable[[], pd.Timestamp] | None = None,
    ) -> None:
        """``clock``: the request time features are computed at (default: now, UTC); the parity test replays
        logged searches at their own time."""
        self.client = client
        self.aliases = aliases
        self.stage = stage
        self.load_notes = notes  # why there is no model, when loading failed (shown in every result's notes)
        self.clock = clock

    @classmethod
    def from_config(
        cls,
        client: OpenSearch,
        prefix: str,
        ranking: Any,
        *,
        rules: RuleSet | None = None,
        signals_refresh_s: float = 30.0,
        clock: Callable[[], pd.Timestamp] | None = None,
    ) -> Pipeline:
        """Load the registry's active model (if any) and build the stage from the ``rerank`` section.

        A model that cannot be loaded leaves the pipeline without one (fallback ``no_model``, the reason in the
        notes): a broken registry never breaks search. A model using the item signals loads their in-memory copy
        here (one scan; refreshed in the background every ``signals_refresh_s`` seconds, see
        :mod:`~fuserec_os.profiles.item_cache`). ``clock``: the request time features are computed at (default:
        now); ``fuserec search --now`` passes a fixed one.
        """
        from fuserec_os.profiles.item_cache import ItemSignalsCache
        from fuserec_os.rerank.loader import load_active
        from fuserec_os.rerank.rules import BusinessRules

        aliases = StoreAliases.for_prefix(prefix)
        settings: RerankSettings = ranking.rerank
        if rules is None:
            rules = BusinessRules(ranking.rules)
        model: LoadedModel | None = None
        notes: tuple[str, ...] = ()
        if settings.enabled:
            try:
                model, _ = load_active(client, prefix, aliases.products)
            except Exception as exc:  # a corrupt blob, a catalog that cannot be read: serve engine order
                notes = (f"the active model could not be loaded: {type(exc).__name__}: {exc}",)
        signals = None
        if model is not None and model.needs_item_signals:
            signals = ItemSignalsCache(client, aliases.items, interval_s=signals_refresh_s)
            loaded = signals.load()
            if loaded == "error":
                notes = (*notes, f"item signals unavailable (their features are missing): {signals.last_error}")
            elif loaded == "missing":
                notes = (*notes, "no item signals stored (their features are missing): run 'fuserec profiles build'")
        return cls(client, aliases, RerankStage(model, settings, rules, describe, signals), notes=notes, clock=clock)

    def close(self) -> None:
        if self.stage.model is not None:
            self.stage.model.close()

    # -- one request --------------------------------------------------------------------------------------

    def execute(self, backend: SearchBackend, req: SearchRequest, *, explain: bool = False) -> SearchResult:
        t0 = time.perf_counter()
        offset = (req.page - 1) * req.size
        if req.sort is not Sort.RELEVANCE:
            plain = backend.execute_plain(req)
            inp = StageInput(query=req.text, hits=[], offset=offset, size=req.size, user_id=req.user_id)
            info = self.stage.engine_order(inp, "not_relevance").info()
            info["timings_ms"]["total"] = round((time.perf_counter() - t0) * 1000, 3)
            return replace(plain, personalization=info)

        settings = self.stage.settings
        window = settings.window
        body, warnings = window_body(req, backend.config, window)
        timings: dict[str, float] = {}
        engine_f = _pool().submit(_timed, lambda: backend.raw_search(body))
        if settings.enabled and self.stage.model is not None:
            reads = self._reads(req, window, settings.behavioural_k)
        else:  # the stage will say 'disabled' or 'no_model': nothing to read for it
            reads = _Reads(k=0, done=time.perf_counter())
        resp, engine_ms, engine_done = engine_f.result()
        timings["engine"] = engine_ms
        hits = engine_hits(resp)
        base = parse_response(resp, req, warnings)
        inp = StageInput(query=req.text, hits=hits, offset=offset, size=req.size, user_id=req.user_id, explain=explain)
        notes = list(self.load_notes)
        if reads.error is not None:
            result = self.stage.engine_order(inp, "store_error", (reads.error,))
        else:
            timings.update(reads.timings)
            behavioural: list[EngineHit] = []
            if reads.behavioural_resp is not None:
                behavioural = behavioural_hits(reads.behavioural_resp, reads.behavioural_ids, hits, reads.k)
            if reads.behavioural_error is not None:
                notes.append(reads.behavioural_error)
            inp = replace(
                inp,
                behavioural=behavioural,
                profile=reads.profile,
                stats=reads.stats,
                now=self.clock() if self.clock is not None else None,
                elapsed_ms=max(0.0, (reads.done - engine_done) * 1000),
            )
            result = self.stage.run(inp, window=window)
        page = to_search_hits(result, explain)
        (_start, _stop), tail, skip = page_slice(offset, req.size, len(result.order))
        if tail > 0 and len(hits) >= window:  # the engine has more than the window: the rest in engine order
            shown = {r.id for r in result.order}
            extra = sum(1 for r in result.order if r.engine_rank is None)
            count = max(0, min(skip + tail + extra, backend.config.max_result_window - window))
            t = time.perf_counter()
            tail_resp = backend.raw_search(tail_body(body, window, count)) if count else {}
            timings["tail"] = (time.perf_counter() - t) * 1000
            for h in tail_hits(tail_resp, shown, skip, tail):
                raw = h.raw or {}
                page.append(
                    Hit(
                        h.id,
                        h.score,
                        dict(h.source),
                        dict(raw.get("highlight") or {}),
                        {"new_rank": offset + len(page) + 1, "engine_rank": None, "source": "engine_tail"},
                    )
                )
        result.timings_ms.update(timings)
        result.timings_ms["total"] = (time.perf_counter() - t0) * 1000
        if notes:
            result = replace(result, notes=(*result.notes, *notes))
        return replace(base, hits=page, personalization=result.info())

    # -- the reads beside the engine query -----------------------------------------------------------------

    def _reads(self, req: SearchRequest, window: int, k: int) -> _Reads:
        """Profile and statistics (concurrently), then the behavioural ids query; never raises."""
        out = _Reads(k=k)
        pool = _pool()
        profile_f: Future[tuple[dict[str, UserProfile], float, float]] | None = None
        if req.user_id is not None:
            uid = req.user_id
            profile_f = pool.submit(_timed, lambda: read_profiles(self.client, self.aliases.profiles, [uid]))
        query_norm = normalize_query(req.text or "")
        try:
            if query_norm:
                view, ms, _ = _timed(lambda: read_view(self.client, self.aliases.stats, query_norm))
                out.stats = view
                out.timings["stats"] = ms
            if profile_f is not None:
                profiles, ms, _ = profile_f.result()
                out.profile = profiles.get(str(req.user_id))
                out.timings["profile"] = ms
        except Exception as exc:  # personalization never fails a search
            out.error = f"{type(exc).__name__}: {exc}"
            out.done = time.perf_counter()
            return out
        ids: list[str] = []
        if out.stats is not None and k > 0:
            ids = out.stats.engaged(k + window)
        pinned = self.stage.rules.pinned_ids(query_norm) if self.stage.rules is not None else ()
        ids += [p for p in pinned if p not in ids]
        if ids:
            out.behavioural_ids = ids
            try:
                resp, ms, _ = _timed(lambda: self._search(behavioural_body(req, ids)))
                out.behavioural_resp = resp
                out.timings["behavioural"] = ms
            except Exception as exc:
                out.behavioural_error = f"behavioural candidates skipped: {type(exc).__name__}: {exc}"
        out.done = time.perf_counter()
        return out

    def _search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        resp: dict[str, Any] = self.client.search(index=self.aliases.products, body=dict(body))
        return resp


@dataclass
class _Reads:
    """What the reads beside the engine query found (``error``: the profile or statistics read failed)."""

    k: int
    profile: UserProfile | None = None
    stats: QueryStatsView | None = None
    behavioural_ids: list[str] = field(default_factory=list)
    behavioural_resp: Mapping[str, Any] | None = None
    behavioural_error: str | None = None
    error: str | None = None
    done: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(fn(), milliseconds it took, when it finished: perf_counter seconds)."""
    t = time.perf_counter()
    value = fn()
    done = time.perf_counter()
    return value, (done - t) * 1000, done
