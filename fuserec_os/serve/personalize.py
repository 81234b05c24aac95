"""The personalized search: what a request asks for (pure analysis) and the async flow around the stage.

:func:`plan_search` reads a ``_search`` request and says whether it can be personalized (a relevance-ranked
page: no explicit non-score sort, no ``size: 0``, no scroll, point in time or ``search_after``), which text
the features see, and which of its clauses are filters that behavioural candidates must also satisfy (a bool
query's ``filter``/``must_not``, a ``post_filter``, or no query at all; anything else: no behavioural
candidates, and the response says so).

:func:`personalized_search` runs the engine query (``from: 0``, ``size: window``, everything else untouched)
concurrently with ONE ``_mget`` of the profile and the query statistics (both indices); once the statistics
are in, the behavioural candidates (the request's filters plus an ``ids`` clause) are fetched while the main
query may still run. A query text seen before starts its behavioural query at once, with the ids it gave last
time, used only when the fresh statistics give the same ids. The stage reranks; the page is cut from the reranked
order, then engine order after the window minus what was already shown
(:func:`~fuserec_os.rerank.stage.page_slice`).

The shopper's id only ever travels as a document id in an ``_mget`` body (JSON-encoded): never inside a query.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.query_stats import QueryStatsView
from fuserec_os.profiles.stats_store import view_doc_ids, view_from_sources
from fuserec_os.profiles.store import _profile
from fuserec_os.rerank.stage import EngineHit, RerankStage, StageInput, StageResult, page_slice
from fuserec_os.serve import jsonio
from fuserec_os.serve.engine import AsyncEngine, EngineResponse
from fuserec_os.serve.errors import bad_request
from fuserec_os.serve.filter_path import filter_path_of

MAX_RESULT_WINDOW = 10_000
_TEXT_QUERIES = (
    "match", "match_phrase", "match_phrase_prefix", "match_bool_prefix", "multi_match", "query_string",
    "simple_query_string", "combined_fields",
)  # fmt: skip
_PURE_TEXT = {"match", "match_phrase", "multi_match", "combined_fields"}  # no filter syntax (query_string has)
_BOOL_KEYS = {"must", "should", "filter", "must_not", "minimum_should_match", "boost", "_name"}
_PASS_BODY_KEYS = {"pit": "point in time", "search_after": "search_after", "scroll": "scroll"}


@dataclass
class SearchPlan:
    """A personalizable ``_search``: the body without from/size, the page, the text, the reusable filters."""

    body: dict[str, Any]
    params: list[tuple[str, str]]
    offset: int
    size: int
    text: str
    filters: list[Any] | None
    notes: list[str] = field(default_factory=list)
    filter_path: str | None = None
    """The request's ``filter_path``: never sent with the window query (the proxy needs the whole answer), applied
    to the personalized answer instead (:mod:`fuserec_os.serve.filter_path`)."""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a search body ({} when empty); a 400 naming the problem otherwise."""
    if not raw.strip():
        return {}
    try:
        body = jsonio.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"failed to parse the request body as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def _is_score_sort(sort: Any) -> bool:
    items = sort if isinstance(sort, list) else [sort]
    for item in items:
        if item == "_score":
            continue
        if isinstance(item, dict) and list(item) == ["_score"]:
            spec = item["_score"]
            order = spec if isinstance(spec, str) else spec.get("order", "desc") if isinstance(spec, dict) else None
            if order == "desc":
                continue
        return False
    return True


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise bad_request(f"[{name}] must be a whole number >= 0, got {value!r}")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"[{name}] must be a whole number >= 0, got {value!r}") from None
    if n < 0 or (isinstance(value, float) and n != value):
        raise bad_request(f"[{name}] must be a whole number >= 0, got {value!r}")
    return n


_NON_JSON = ("yaml", "cbor", "smile")


def not_json(params: Sequence[tuple[str, str]], headers: Mapping[str, str] | None = None) -> str | None:
    """Why the request or its answer is not JSON (``format=yaml``, or an ``Accept`` or ``Content-Type`` header
    naming YAML, CBOR or Smile), or None. The proxy reads and writes JSON, so such a search passes through
    unchanged: the engine reads it and answers in the format asked for."""
    for k, v in params:
        if k == "format" and v.strip().lower() != "json":
            return f"format={v}"
    for name in ("accept", "content-type"):
        value = (headers or {}).get(name)
        if value and any(f in value.lower() for f in _NON_JSON):
            return f"{name}: {value}"
    return None


def plan_search(body: Mapping[str, Any], params: Sequence[tuple[str, str]]) -> SearchPlan | str:
    """A :class:`SearchPlan`, or the reason the request passes through unchanged."""
    names = {k for k, _ in params}
    other_format = not_json(params)
    if other_format:
        return other_format
    if "scroll" in names:
        return "scroll"
    if "sort" in names:
        return "sort in the URL"
    for key, what in _PASS_BODY_KEYS.items():
        if key in body:
            return what
    if "sort" in body and not _is_score_sort(body["sort"]):
        return "explicit sort"
    stored = [v for k, v in params if k == "stored_fields"] + _as_list(body.get("stored_fields"))
    if "_none_" in stored:  # hits without ids: nothing to rerank them by
        return "stored_fields _none_"
    p = dict(params)
    offset = _int(p.get("from", body.get("from", 0)), "from")
    size = _int(p.get("size", body.get("size", 10)), "size")
    if size == 0:
        return "size 0"
    # filter_path and pretty apply to the proxy's answer, not to the window it reads (app.py)
    rest = [(k, v) for k, v in params if k not in ("from", "size", "filter_path", "pretty")]
    clean = {k: v for k, v in body.items() if k not in ("from", "size")}
    notes: list[str] = []
    if "q" in p:
        text, filters = p["q"], None
        notes.append("behavioural candidates skipped: a q= query's filters cannot be told from its text")
    else:
        query = body.get("query")
        text = " ".join(dict.fromkeys(t for t in _texts(query) if t.strip()))
        filters = _filters(query)
        if filters is None:
            notes.append("behavioural candidates skipped: the query's filters cannot be told from its scoring clauses")
        elif "post_filter" in body:
            filters.append(body["post_filter"])
        if filters is not None and "min_score" in body:
            filters = None
            notes.append("behavioural candidates skipped: min_score")
        if filters is not None and "collapse" in body:  # one hit per group: an added product could repeat a group
            filters = None
            notes.append("behavioural candidates skipped: collapse")
    return SearchPlan(clean, rest, offset, size, text, filters, notes, filter_path_of(params))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _filters(query: Any) -> list[Any] | None:
    """The request's filter clauses (reusable for behavioural candidates), or None when they cannot be told."""
    if query is None:
        return []
    if not isinstance(query, dict) or len(query) != 1:
        return None
    ((kind, spec),) = query.items()
    if kind == "match_all" or kind in _PURE_TEXT:
        return []  # a lone full-text clause: scoring only, nothing to filter by
    if kind == "bool" and isinstance(spec, dict) and set(spec) <= _BOOL_KEYS:
        out = _as_list(spec.get("filter"))
        must_not = _as_list(spec.get("must_not"))
        if must_not:
            out.append({"bool": {"must_not": must_not}})
        return out
    return None


def _texts(query: Any) -> list[str]:
    """The text the shopper typed, from the query's full-text clauses (scoring parts only)."""
    out: list[str] = []
    if isinstance(query, list):
        for q in query:
            out += _texts(q)
        return out
    if not isinstance(query, dict):
        return out
    for kind, spec in query.items():
        if kind in _TEXT_QUERIES and isinstance(spec, dict):
            if isinstance(spec.get("query"), str):
                out.append(spec["query"])
            else:
                for value in spec.values():
                    if isinstance(value, str):
                        out.append(value)
                    elif isinstance(value, dict) and isinstance(value.get("query"), str):
                        out.append(value["query"])
        elif kind == "bool" and isinstance(spec, dict):
            out += _texts(spec.get("must")) + _texts(spec.get("should"))
        elif kind in ("function_score", "constant_score", "boosting", "dis_max") and isinstance(spec, dict):
            out += _texts(spec.get("query")) + _texts(spec.get("positive")) + _texts(spec.get("queries"))
    return out


def behavioural_ids(view: QueryStatsView | None, k: int) -> list[str]:
    """Up to ``k`` products engaged after the exact query, then after its terms, most engaged first."""
    if view is None or k <= 0:
        return []
    out: dict[str, None] = {}
    for kv in [v for v in (view.exact, *view.terms) if v is not None]:
        if not kv.pos:
            continue
        engaged = kv.counts[: kv.n, :3].sum(axis=1)
        ranked = sorted(((float(engaged[i]), pid) for pid, i in kv.pos.items() if engaged[i] > 0), key=lambda t: -t[0])
        for _, pid in ranked:
            out.setdefault(pid, None)
            if len(out) >= k:
                return list(out)
    return list(out)


def _hit(raw: Mapping[str, Any], *, behavioural: bool = False) -> EngineHit:
    score = raw.get("_score")
    return EngineHit(
        id=str(raw.get("_id")),
        score=None if behavioural or score is None else float(score),
        source=raw.get("_source") or {},
        raw=raw,
    )


Ranker = Callable[[StageInput, int], StageResult]
"""(the request's stage input, the window) -> the stage's result: how an experiment variant ranks."""


@dataclass
class Personalized:
    """What :func:`personalized_search` produced: the response body (or the engine's error), and the result."""

    status: int
    body: Any
    result: StageResult | None = None
    page_ids: list[str] = field(default_factory=list)
    engine_response: EngineResponse | None = None


def _doc_version(doc: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Which stored version of a document this is (index, id, version, seq_no, primary term); None when the engine
    says nothing about versions (then nothing is cached)."""
    if doc.get("_version") is None and doc.get("_seq_no") is None:
        return None
    return (doc.get("_index"), doc.get("_id"), doc.get("_version"), doc.get("_seq_no"), doc.get("_primary_term"))


class ParsedCache:
    """Parsed profiles and statistics views by the stored versions of the documents they were parsed from.

    Parsing a profile document or a statistics view costs about half a millisecond of CPU each per search, and
    both change only when a profile job writes them: a new version (or a rebuilt index behind the alias) is a new
    key, so a cached value is never stale. The values are only read by the stage. At most ``size`` entries, the
    least recently used go first.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


@dataclass
class Stores:
    profiles_alias: str
    stats_alias: str
    cache: ParsedCache = field(default_factory=ParsedCache)
    guesses: ParsedCache = field(default_factory=ParsedCache)
    """The behavioural ids last computed for a query text: the guess that lets the behavioural query start with the
    window query instead of after the statistics read (used only when the fresh statistics give the same ids)."""


def _cached(cache: ParsedCache | None, key: Any, parse: Any) -> Any:
    if cache is None or key is None:
        return parse()
    value = cache.get(key)
    if value is None:
        value = parse()
        cache.put(key, value)
    return value


async def fetch_profile_and_stats(
    engine: AsyncEngine, stores: Stores, user_id: str | None, text: str
) -> tuple[UserProfile | None, QueryStatsView | None]:
    """The shopper's profile and the query's statistics in ONE ``_mget`` across both indices.

    One request instead of two: on a small machine the engine's per-request cost, not the bytes, is what the
    reads beside the window query compete with. A missing index or document is "no profile" / "no statistics";
    any other per-document error raises (the caller turns it into a note and engine order for what it lacks).
    """
    query, stat_ids = view_doc_ids(text)
    docs = [{"_index": stores.profiles_alias, "_id": user_id}] if user_id is not None else []
    n_profile = len(docs)  # an anonymous shopper (assigned by session) has no profile to read
    docs += [{"_index": stores.stats_alias, "_id": i} for i in stat_ids]
    if not docs:
        return None, None
    status, data, _ = await engine.json("POST", "/_mget", {"docs": docs})
    if status != 200:
        raise RuntimeError(f"reading the profile and query statistics: engine answered {status}")
    answers = list(data.get("docs", []))
    if len(answers) != len(docs):
        raise RuntimeError(f"reading the profile and query statistics: {len(answers)} answers for {len(docs)} ids")
    for doc in answers:
        error = doc.get("error")
        if error and "index_not_found" not in json.dumps(error):
            raise RuntimeError(f"reading {doc.get('_index')}/{doc.get('_id')}: {error}")
    cache = stores.cache
    profile = None
    if n_profile:
        first = answers[0]
        if first.get("found") and not first.get("error"):
            profile = _cached(cache, ("profile", _doc_version(first)), lambda: _profile(first["_source"]))
    stats = None
    if stat_ids:
        found = [d for d in answers[n_profile:] if d.get("found") and not d.get("error")]
        versions = tuple(_doc_version(d) for d in found)
        key = None if any(v is None for v in versions) else ("stats", query, versions)
        stats = _cached(cache, key, lambda: view_from_sources(query, [d["_source"] for d in found]))
    return profile, stats


async def personalized_search(
    engine: AsyncEngine,
    stage: RerankStage,
    stores: Stores,
    index: str,
    plan: SearchPlan,
    *,
    user_id: str | None,
    window: int,
    request_id: str,
    client_auth: str | None = None,
    explain: bool = False,
    now: Any = None,
    ranker: Ranker | None = None,
) -> Personalized:
    """One personalized ``_search`` (module docstring). ``ranker`` turns the fetched :class:`StageInput` into the
    result (default: ``stage.run``); an experiment passes its variant's ranking (engine order, another blend
    weight, an interleaved list)."""
    t0 = time.perf_counter()
    settings = stage.settings
    need = plan.offset + plan.size
    k = settings.behavioural_k if plan.filters is not None else 0
    main_size = window if need <= window else min(need + k, max(MAX_RESULT_WINDOW, need))
    main_body = {**plan.body, "from": 0, "size": main_size}
    notes = list(plan.notes)
    steps: dict[str, float] = {}  # each side read's own time, for fuserec.timings_ms

    async def timed(name: str, coro: Any) -> Any:
        t = time.perf_counter()
        try:
            return await coro
        finally:
            steps[name] = (time.perf_counter() - t) * 1000

    main_task = asyncio.ensure_future(
        engine.request(
            "POST", f"/{index}/_search", params=plan.params, content=jsonio.dumps(main_body),
            client_auth=client_auth,
        )
    )  # fmt: skip
    reads_task = asyncio.ensure_future(timed("reads", fetch_profile_and_stats(engine, stores, user_id, plan.text)))

    async def fetch_behavioural(ids: list[str]) -> list[Mapping[str, Any]]:
        assert plan.filters is not None
        body: dict[str, Any] = {
            "query": {"bool": {"filter": [*copy.deepcopy(plan.filters), {"ids": {"values": ids}}]}},
            "size": len(ids),
            "track_total_hits": False,
        }
        for key in ("_source", "stored_fields", "docvalue_fields", "fields"):
            if key in plan.body:
                body[key] = plan.body[key]
        status, data, ms = await engine.json("POST", f"/{index}/_search", body, client_auth=client_auth)
        steps["behavioural"] = ms
        if status != 200:
            raise RuntimeError(f"behavioural candidates: engine answered {status}")
        order = {pid: i for i, pid in enumerate(ids)}
        hits = list(data.get("hits", {}).get("hits", []))
        return sorted(hits, key=lambda h: order.get(str(h.get("_id")), len(order)))

    # The behavioural ids come from the statistics, so their query would wait for the statistics read. When this
    # query text was seen before, its last ids are a guess: their query starts now, beside the window query, and
    # is used only if the fresh statistics give exactly those ids (then it is the same query); otherwise the right
    # ids are fetched after all, as without a guess.
    guess_key = (plan.text, k)
    guess: list[str] | None = stores.guesses.get(guess_key) if k and plan.filters is not None else None
    guess_task = asyncio.ensure_future(fetch_behavioural(guess)) if guess else None
    if guess_task is not None:  # an unused guess's failure is nobody's error: mark it retrieved
        guess_task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def behavioural() -> list[Mapping[str, Any]]:
        try:
            _, view = await reads_task
            ids = behavioural_ids(view, k)
            if plan.filters is not None and k:
                stores.guesses.put(guess_key, ids)
            if not ids or plan.filters is None:
                return []
            if guess_task is not None and ids == guess:
                return await guess_task
            return await fetch_behavioural(ids)
        finally:
            if guess_task is not None and not guess_task.done():
                guess_task.cancel()

    behav_task = asyncio.ensure_future(behavioural())
    side: list[asyncio.Future[Any]] = [reads_task, behav_task, *([guess_task] if guess_task is not None else [])]
    try:
        main = await main_task
    except BaseException:
        for t in side:
            t.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        raise
    t_main = time.perf_counter()
    if main.status != 200:
        for t in side:
            t.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        return Personalized(main.status, None, engine_response=main)
    data = main.json()
    budget_s = settings.budget_ms / 1000.0
    done, pending = await asyncio.wait(side, timeout=budget_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    io_ms = (time.perf_counter() - t_main) * 1000
    timed_out = bool(pending)

    def outcome(task: asyncio.Future[Any], what: str) -> Any:
        if task not in done:
            return None
        exc = task.exception()
        if exc is not None:
            notes.append(f"{what} unavailable: {exc}")
            return None
        return task.result()

    profile, stats = outcome(reads_task, "profile and query statistics") or (None, None)
    behav_raw = outcome(behav_task, "behavioural candidates") or []
    all_hits = list(data.get("hits", {}).get("hits", []))
    window_raw: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    for h in all_hits[:window]:
        hid = str(h.get("_id"))
        if hid not in seen:
            seen.add(hid)
            window_raw.append(h)
    behav = [_hit(h, behavioural=True) for h in behav_raw if str(h.get("_id")) not in seen]
    inp = StageInput(
        query=plan.text,
        hits=[_hit(h) for h in window_raw],
        offset=plan.offset,
        size=plan.size,
        user_id=user_id,
        behavioural=behav,
        profile=profile,
        stats=stats,
        elapsed_ms=io_ms if not timed_out else max(io_ms, settings.budget_ms + 0.001),
        explain=explain,
        now=now,
    )
    result = ranker(inp, window) if ranker is not None else stage.run(inp, window=window)
    (_start, _stop), tail, skip = page_slice(plan.offset, plan.size, len(result.order))
    shown = {h.id for h in result.order}
    tail_raw = [h for h in all_hits[window:] if str(h.get("_id")) not in shown][skip : skip + tail] if tail else []
    page: list[dict[str, Any]] = []
    for rh in result.hits:
        raw = dict(rh.hit.raw or {})
        if result.applied and rh.blended_score is not None:
            raw["_score"] = rh.blended_score
        page.append(raw)
    page += [dict(h) for h in tail_raw]
    hits_obj = data.setdefault("hits", {})
    hits_obj["hits"] = page
    if result.applied:
        scores = [h.blended_score for h in result.order if h.blended_score is not None]
        hits_obj["max_score"] = max(scores) if scores else hits_obj.get("max_score")
    info = result.info()
    info["timings_ms"] = {
        "engine": round(main.elapsed_ms, 3),
        **{name: round(steps[name], 3) for name in ("reads", "behavioural") if name in steps},
        "personal_io": round(io_ms, 3),
        **info["timings_ms"],
        "total": round((time.perf_counter() - t0) * 1000, 3),
    }
    all_notes = [*notes, *info.pop("notes", [])]
    if timed_out:
        all_notes.append("profile/statistics fetch exceeded the latency budget")
    data["fuserec"] = {"request_id": request_id, **info, **({"notes": all_notes} if all_notes else {})}
    if explain:  # the reranked hits of the page, in page order: ranks, scores, the features that moved them
        data["fuserec"]["hits"] = [{"_id": rh.id, **rh.info(explain=True)} for rh in result.hits]
    return Personalized(200, data, result, [str(h.get("_id")) for h in page], main)
