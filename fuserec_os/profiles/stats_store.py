"""Query-product engagement statistics in the engine (mappings/query_stats.json), like the profiles.

One document per :class:`~fuserec_os.profiles.query_stats.QueryStats` key: doc id ``q:<normalised query>`` or
``t:<query term>`` (an id over OpenSearch's 512-byte limit becomes ``q#<sha256 of it>`` / ``t#...``; the key
itself is kept in the document), holding ``kind`` (query|term), ``key``, ``searches``, ``requests``,
``n_products`` and, in the non-indexed ``counts`` object, the parallel per-product arrays of
:meth:`QueryStats.to_docs`. One more document, id ``meta``, holds what the smoothing needs beyond one
request's keys: per table (``q``, ``t``) the two sums behind :meth:`QueryStats.priors`, and the smoothing.

Serving reads one request's statistics with ONE ``_mget`` (:func:`read_view`): the meta doc, the query's doc
and its terms' docs. ``_mget`` is real-time, so a read never waits for a refresh.

Counts are sums, so an incremental update (:func:`add_events`, :func:`add_impressions`, or both at once with
:func:`add_stats`) reads the docs of the keys the new events and logged searches touch, adds the new counts,
writes them back and adjusts the meta sums by the difference: the result equals a full build of all the events
and searches (exactly, while the counts are whole numbers; with examinations, up to float rounding). The one
exception is ``requests`` when one request's events straddle two updates (see
:mod:`~fuserec_os.profiles.query_stats`). Several writers at once (live updates in several processes, the
profile update job) lose nothing: every document is written only if it is still the version read
(:mod:`~fuserec_os.engine.versioned`), one changed meanwhile is read again and the same counts added to it, and
the meta document is written last, moved by the difference the written keys made to the sums (re-read and
moved again when it changed meanwhile). Updates are not atomic across documents: a reader can see a key's new
counts before the meta sums that include them (the priors move by a tiny fraction). A full build
(:func:`replace_stats`) writes a fresh index and swaps the alias, so keys of an older build never survive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from opensearchpy import OpenSearch, helpers

from fuserec_os.behaviour.events import normalize_query
from fuserec_os.engine.bulk import bulk_or_raise
from fuserec_os.engine.client import engine_errors
from fuserec_os.engine.reads import mget_sources
from fuserec_os.engine.versioned import Stored, read_versioned, update_documents
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_named_mapping
from fuserec_os.profiles.query_stats import QueryStats, QueryStatsView
from fuserec_os.text import terms

__all__ = [
    "META_ID",
    "QUERY_STATS_MAPPING",
    "add_events",
    "add_impressions",
    "add_stats",
    "doc_id",
    "ensure_stats_index",
    "load_stats_mapping",
    "meta_doc",
    "read_all",
    "read_meta",
    "read_view",
    "replace_stats",
    "view_doc_ids",
    "view_from_sources",
    "write_stats",
]

QUERY_STATS_MAPPING = "query_stats"
META_ID = "meta"
_MAX_ID_BYTES = 512  # OpenSearch's limit on a document id
_MAX_RETRIES = 5  # 429 (too many requests) retries per bulk chunk, with exponential back-off
_INITIAL_BACKOFF = 1.0
_COUNT_FIELDS = ("product_ids", "clicks", "carts", "purchases", "examinations")
_META_SCHEMA = 1


# ------------------------------------------------------------------------------------------ documents


def doc_id(key_id: str) -> str:
    """The engine document id of a stats key id (``q:<query>`` / ``t:<term>`` / ``meta``).

    Ids longer than OpenSearch's 512 bytes are hashed (``q#<sha256>``): ``#`` never follows the kind in a
    plain id, so a hashed id cannot collide with a real key.
    """
    if len(key_id.encode("utf-8")) <= _MAX_ID_BYTES:
        return key_id
    kind, _, _ = key_id.partition(":")
    return f"{kind}#{hashlib.sha256(key_id.encode('utf-8')).hexdigest()}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_source(doc: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    """A :meth:`QueryStats.to_docs` doc (or a :func:`meta_doc`) as stored."""
    if str(doc["id"]) == META_ID:
        return {"kind": "meta", "key": META_ID, "updated_at": stamp, "meta": dict(doc["meta"])}
    pids = list(doc.get("product_ids") or [])
    return {
        "kind": doc["kind"],
        "key": doc["key"],
        "updated_at": stamp,
        "searches": float(doc.get("searches") or 0.0),
        "requests": float(doc.get("requests") or 0.0),
        "n_products": len(pids),
        "counts": {name: list(doc.get(name) or []) for name in _COUNT_FIELDS},
    }


def _from_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """A stored key document back in the :meth:`QueryStats.to_docs` form."""
    kind = str(source["kind"])
    counts = source.get("counts") or {}
    return {
        "id": f"{kind[0]}:{source['key']}",
        "kind": kind,
        "key": source["key"],
        "searches": float(source.get("searches") or 0.0),
        "requests": float(source.get("requests") or 0.0),
        **{name: list(counts.get(name) or []) for name in _COUNT_FIELDS},
    }


def meta_doc(sums: Mapping[str, tuple[Any, float]], smoothing: float, keys: Mapping[str, int]) -> dict[str, Any]:
    """The ``meta`` document: the priors' sums per table (:meth:`QueryStats.prior_sums`), the priors they give,
    the smoothing and the number of keys per table."""
    priors = QueryStats.priors_from_sums(sums)
    return {
        "id": META_ID,
        "meta": {
            "schema": _META_SCHEMA,
            "smoothing": float(smoothing),
            "sums": {
                kind: {
                    "num": [float(x) for x in np.asarray(sums[kind][0], dtype=np.float64)],
                    "den": float(sums[kind][1]),
                    "keys": int(keys.get(kind, 0)),
                }
                for kind in ("q", "t")
            },
            "priors": {kind: [float(x) for x in priors[kind]] for kind in ("q", "t")},
        },
    }


def _stats_meta(stats: QueryStats) -> dict[str, Any]:
    ids = stats.doc_ids()
    keys = {"q": sum(1 for i in ids if i.startswith("q:")), "t": sum(1 for i in ids if i.startswith("t:"))}
    return meta_doc(stats.prior_sums(), stats.smoothing, keys)


def _meta_sums(meta: Mapping[str, Any] | None) -> tuple[dict[str, tuple[np.ndarray, float]], dict[str, int]]:
    sums: dict[str, tuple[np.ndarray, float]] = {}
    keys: dict[str, int] = {}
    stored = (meta or {}).get("sums") or {}
    for kind in ("q", "t"):
        entry = stored.get(kind) or {}
        sums[kind] = (np.asarray(entry.get("num") or [0.0, 0.0, 0.0], dtype=np.float64), float(entry.get("den") or 0.0))
        keys[kind] = int(entry.get("keys") or 0)
    return sums, keys


# ------------------------------------------------------------------------------------------ index


def load_stats_mapping(mappings_dir: Path | None = None) -> MappingSpec:
    """``mappings/query_stats.json`` from ``mappings_dir`` (default: the settings' resolution of the folder)."""
    return load_named_mapping(QUERY_STATS_MAPPING, mappings_dir)


def ensure_stats_index(client: OpenSearch, alias: str, spec: MappingSpec | None = None) -> str:
    """The live stats index behind ``alias``, created (with the alias) when there is none."""
    name, _ = manager.ensure_index(client, spec or load_stats_mapping(), alias)
    return name


def _write_into(
    client: OpenSearch, index: str, docs: Iterable[Mapping[str, Any]], chunk_size: int, refresh: bool
) -> int:
    """Index ``docs`` (to_docs form, or a meta doc) into the concrete ``index``. Returns key docs written."""
    stamp = _now()
    n_meta = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal n_meta
        for doc in docs:
            key_id = str(doc["id"])
            if key_id == META_ID:
                n_meta += 1
            yield {"_op_type": "index", "_index": index, "_id": doc_id(key_id), "_source": _to_source(doc, stamp)}

    n = bulk_or_raise(client, actions(), target=index, what="query stats", chunk_size=chunk_size)
    if refresh:
        with engine_errors(f"refreshing {index}"):
            client.indices.refresh(index=index)
    return n - n_meta


def _docs_of(stats: QueryStats | Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    if isinstance(stats, QueryStats):
        return _chain(stats.to_docs(), [_stats_meta(stats)])
    return stats


def _chain(*parts: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for part in parts:
        yield from part


# ------------------------------------------------------------------------------------------ writing


def write_stats(
    client: OpenSearch,
    alias: str,
    stats: QueryStats | Iterable[Mapping[str, Any]],
    chunk_size: int = 500,
    *,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> int:
    """Upsert statistics documents behind ``alias`` (creating the index on first use). Returns key docs written.

    ``stats``: a :class:`QueryStats` is written whole: its key docs and its ``meta`` doc (priors of these
    stats: right when the index holds exactly them; keys already stored but absent from ``stats`` stay, so
    a rebuild uses :func:`replace_stats`). An iterable of :meth:`QueryStats.to_docs` docs (and optionally a
    :func:`meta_doc`) is written as given. The meta doc is not counted. ``refresh=True`` makes the docs
    searchable (:func:`read_all`) before returning; :func:`read_view` never needs it.
    """
    index = ensure_stats_index(client, alias, spec)
    return _write_into(client, index, _docs_of(stats), chunk_size, refresh)


def replace_stats(
    client: OpenSearch,
    alias: str,
    stats: QueryStats,
    chunk_size: int = 500,
    *,
    spec: MappingSpec | None = None,
) -> int:
    """Replace everything behind ``alias`` with ``stats`` (fresh index, atomic alias swap). Returns key docs.

    The old index is deleted after the swap; on failure the new one is deleted and the live stats are unchanged.
    """
    return manager.replace_behind_alias(
        client,
        spec or load_stats_mapping(),
        alias,
        lambda index: _write_into(client, index, _docs_of(stats), chunk_size, refresh=True),
    )


def add_events(
    client: OpenSearch,
    alias: str,
    new_events: pd.DataFrame,
    chunk_size: int = 500,
    *,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> int:
    """Add the counts of ``new_events`` (an events frame) to the stored statistics. Returns key docs written.

    Reads the docs of the keys the events touch (and the meta doc), adds, writes them back with the meta sums
    adjusted by the difference. Events without a query change nothing (0, nothing written).
    """
    return add_stats(client, alias, QueryStats().add_events(new_events), chunk_size, refresh=refresh, spec=spec)


def add_impressions(
    client: OpenSearch,
    alias: str,
    new_impressions: pd.DataFrame,
    chunk_size: int = 500,
    *,
    position_weights: np.ndarray | None = None,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> int:
    """Add the examinations and search counts of ``new_impressions`` (query and product_ids columns, e.g. a
    :func:`~fuserec_os.behaviour.search_log.read_impressions` frame) to the stored statistics, like
    :func:`add_events`. Returns key docs written; searches without a query change nothing."""
    new = QueryStats().add_impressions(new_impressions, position_weights)
    return add_stats(client, alias, new, chunk_size, refresh=refresh, spec=spec)


def add_stats(
    client: OpenSearch,
    alias: str,
    new: QueryStats,
    chunk_size: int = 500,
    *,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> int:
    """Add the counts of ``new`` (events and/or impressions, see :class:`QueryStats`) to the stored statistics.

    Reads the docs of the keys ``new`` has (and the meta doc), adds, writes them back with the meta sums and
    key counts adjusted by the difference (a key's exposure changes when it gets its first impressions, so the
    priors' sums are recomputed for every touched key, not just added). Returns key docs written (0 when
    ``new`` is empty: nothing is read or written). The smoothing stays the stored one.

    Safe with concurrent writers: key documents and then the meta document are written only if unchanged
    since read; changed ones are read again and ``new`` added to them again (bounded attempts, then
    :class:`~fuserec_os.engine.versioned.ConcurrentUpdateError`).
    """
    if len(new) == 0:
        return 0
    key_ids = [doc_id(i) for i in new.doc_ids()]
    stored = read_versioned(client, alias, [META_ID, *key_ids], "query stats")
    meta = stored[META_ID].source.get("meta") or {} if META_ID in stored else None
    smoothing = float((meta or {}).get("smoothing") or 10.0)
    stamp = _now()
    computed: dict[str, dict[str, Any]] = {}  # engine id -> the key doc (to_docs form) last computed for it

    def add_keys(pending: Sequence[str], current: Mapping[str, Stored]) -> dict[str, dict[str, Any]]:
        existing = QueryStats.from_docs((_from_source(s.source) for s in current.values()), smoothing)
        wanted = set(pending)
        out = {}
        for doc in existing.merge(new).to_docs():
            eid = doc_id(str(doc["id"]))
            if eid in wanted:
                computed[eid] = doc
                out[eid] = _to_source(doc, stamp)
        return out

    index = ensure_stats_index(client, alias, spec)
    done = update_documents(
        client, alias=alias, index=index, ids=key_ids, change=add_keys, what="query stats",
        read={i: stored[i] for i in key_ids if i in stored}, chunk_size=chunk_size,
    )  # fmt: skip
    # the meta sums move by the written keys' new contribution minus their old one (see QueryStats.prior_sums)
    before_stats = QueryStats.from_docs((_from_source(old.source) for old, _ in done.values() if old), smoothing)
    after_stats = QueryStats.from_docs((computed[i] for i in done), smoothing)
    before, after = before_stats.prior_sums(), after_stats.prior_sums()
    added_keys = {
        kind: sum(1 for i in after_stats.doc_ids() if i.startswith(f"{kind}:"))
        - sum(1 for i in before_stats.doc_ids() if i.startswith(f"{kind}:"))
        for kind in ("q", "t")
    }

    def adjust_meta(pending: Sequence[str], current: Mapping[str, Stored]) -> dict[str, dict[str, Any]]:
        now_meta = current[META_ID].source.get("meta") or {} if META_ID in current else None
        sums, keys = _meta_sums(now_meta)
        for kind in ("q", "t"):
            sums[kind] = (
                sums[kind][0] - before[kind][0] + after[kind][0],
                sums[kind][1] - before[kind][1] + after[kind][1],
            )
            keys[kind] += added_keys[kind]
        a = float((now_meta or {}).get("smoothing") or smoothing)
        return {META_ID: _to_source(meta_doc(sums, a, keys), stamp)}

    update_documents(
        client, alias=alias, index=index, ids=[META_ID], change=adjust_meta, what="query stats meta",
        read={META_ID: stored[META_ID]} if META_ID in stored else {},
    )  # fmt: skip
    if refresh:
        with engine_errors(f"refreshing {index}"):
            client.indices.refresh(index=index)
    return len(done)


# ------------------------------------------------------------------------------------------ reading


def _mget_sources(client: OpenSearch, alias: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    return mget_sources(client, alias, ids, "query stats")


def read_meta(client: OpenSearch, alias: str) -> dict[str, Any] | None:
    """The ``meta`` object (sums, priors, smoothing, keys per table), or None when nothing was written yet."""
    for source in _mget_sources(client, alias, [META_ID]):
        meta: dict[str, Any] = dict(source.get("meta") or {})
        return meta
    return None


def read_view(client: OpenSearch, alias: str, query_norm: str, *, smoothing: float | None = None) -> QueryStatsView:
    """What one request needs (:meth:`QueryStats.view`), read with ONE ``_mget``: the meta doc, the query's doc
    and its terms' docs. Unseen keys, or no index at all, give an empty view.

    ``smoothing``: None uses the stored one (the build's).
    """
    query, ids = view_doc_ids(query_norm)
    if not ids:
        return QueryStatsView(query, smoothing=10.0 if smoothing is None else float(smoothing))
    return view_from_sources(query, _mget_sources(client, alias, ids), smoothing=smoothing)


def view_doc_ids(query_norm: str) -> tuple[str, list[str]]:
    """The normalised query and the ids of the docs one request's view needs (meta first); [] for no query.

    Pure, for callers doing their own I/O (the proxy's async ``_mget``); :func:`read_view` uses it.
    """
    query = normalize_query(query_norm or "")
    ids = [f"q:{query}", *(f"t:{t}" for t in terms(query))] if query else []
    return query, [META_ID, *(doc_id(i) for i in ids)] if ids else []


def view_from_sources(
    query: str, sources: Iterable[Mapping[str, Any]], *, smoothing: float | None = None
) -> QueryStatsView:
    """The :class:`QueryStatsView` of normalised ``query`` from the ``_source`` of the docs found (pure)."""
    if not query:
        return QueryStatsView(query, smoothing=10.0 if smoothing is None else float(smoothing))
    meta: Mapping[str, Any] = {}
    docs = []
    for source in sources:
        if source.get("kind") == "meta":
            meta = source.get("meta") or {}
        else:
            docs.append(_from_source(source))
    a = float(smoothing if smoothing is not None else meta.get("smoothing") or 10.0)
    sums, _ = _meta_sums(meta)
    return QueryStats.from_docs(docs, a).view(query, priors=QueryStats.priors_from_sums(sums))


def read_all(client: OpenSearch, alias: str) -> QueryStats:
    """Every key behind ``alias`` (scroll) as a :class:`QueryStats` with the stored smoothing; empty when
    there is no index. Sees what was refreshed (write with ``refresh=True`` first)."""
    docs = []
    smoothing = 10.0
    with engine_errors(f"reading query stats from {alias}"):
        if not client.indices.exists(index=alias):
            return QueryStats()
        for hit in helpers.scan(client, index=alias, query={"query": {"match_all": {}}}, size=1000):
            source = hit["_source"]
            if source.get("kind") == "meta":
                smoothing = float((source.get("meta") or {}).get("smoothing") or smoothing)
            else:
                docs.append(_from_source(source))
    return QueryStats.from_docs(docs, smoothing)
