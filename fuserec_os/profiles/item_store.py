"""Item signals in the engine (mappings/item_signals.json, alias ``<prefix>item-signals``), built with the profiles.

One document per product with any signal, doc id ``p:<product_id>`` (an id over OpenSearch's 512-byte limit
becomes ``p#<sha256 of it>``; the product id is kept in the document): ``kind`` (item), ``product_id``,
``as_of`` (the time its decayed numbers are as of), ``updated_at`` (when it was written) and, unindexed, the
``signals`` object of :meth:`~fuserec_os.profiles.item_signals.ItemSignals.doc`. One more document, id ``meta``,
holds what a reader needs to use them: the half-life, weights and smoothing they were built with, the ``build``
id (a new one per full build) and the ``write`` id (a new one per write): a serving copy polls this one small
document to know whether anything changed (:mod:`~fuserec_os.profiles.item_cache`).

A full build (:func:`replace_signals`) writes a fresh index and swaps the alias. An incremental update
(:func:`add`: the profile job's ``update``, live updates) reads the touched products' documents and the meta
document with ONE ``_mget``, adds the new events and logged searches, and writes those documents and the meta
document back: the same state as a rebuild up to float rounding (every signal is a sum or a maximum). Several
writers at once (live updates in several processes, the profile job) lose nothing: each product document is
written only if it is still the version read (a new one with ``op_type: create``), one changed meanwhile is read
again and the same events added to it (:mod:`~fuserec_os.engine.versioned`), and the meta document (a new write
id, the newest ``as_of``) is written last, the same way.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from opensearchpy import OpenSearch, helpers

from fuserec_os.engine.bulk import bulk_or_raise
from fuserec_os.engine.client import engine_errors
from fuserec_os.engine.reads import mget_sources
from fuserec_os.engine.versioned import Stored, read_versioned, update_documents
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_named_mapping
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import ItemSignals, PreparedEvents, PreparedImpressions

__all__ = [
    "ITEM_SIGNALS_MAPPING",
    "META_ID",
    "add",
    "doc_id",
    "read_all",
    "read_docs",
    "read_meta",
    "read_updated",
    "replace_signals",
    "signals_from_meta",
]

ITEM_SIGNALS_MAPPING = "item_signals"
META_ID = "meta"
_SCHEMA = 1
_MAX_ID_BYTES = 512


def doc_id(product_id: str) -> str:
    """The engine document id of a product's signals (``p:<id>``, hashed past OpenSearch's 512 bytes)."""
    key = f"p:{product_id}"
    if len(key.encode("utf-8")) <= _MAX_ID_BYTES:
        return key
    return f"p#{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return pd.Timestamp(int(ns), tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _item_source(doc: Mapping[str, Any], stamp: str) -> dict[str, Any]:
    signals = {k: v for k, v in doc.items() if k not in ("product_id", "updated_at")}
    return {
        "kind": "item",
        "product_id": doc["product_id"],
        "as_of": _iso(doc.get("as_of")),
        "updated_at": stamp,
        "signals": signals,
    }


def item_from_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """A stored product document back in the :meth:`ItemSignals.doc` form, plus its ``updated_at``."""
    signals = source.get("signals") or {}
    return {"product_id": str(source["product_id"]), **signals, "updated_at": source["updated_at"]}


def _meta_source(signals: ItemSignals, build: str, stamp: str) -> dict[str, Any]:
    return {
        "kind": "meta",
        "as_of": _iso(signals.as_of_ns),
        "updated_at": stamp,
        "meta": {"schema": _SCHEMA, "build": build, "write": uuid.uuid4().hex, **signals.config()},
    }


def signals_from_meta(meta: Mapping[str, Any] | None, cfg: ProfilesConfig | None = None) -> ItemSignals:
    """An empty :class:`ItemSignals` with the stored half-life, weights and smoothing (``cfg``'s without meta)."""
    if not meta:
        return ItemSignals.from_config(cfg or ProfilesConfig())
    return ItemSignals(float(meta["half_life_days"]), meta.get("weights"), float(meta.get("smoothing") or 10.0))


# ------------------------------------------------------------------------------------------ writing


def load_mapping(mappings_dir: Any = None) -> MappingSpec:
    """``mappings/item_signals.json`` (default folder: the settings' resolution)."""
    return load_named_mapping(ITEM_SIGNALS_MAPPING, mappings_dir)


def _write_into(
    client: OpenSearch,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    meta: Mapping[str, Any],
    stamp: str,
    *,
    refresh: bool,
) -> int:
    """Index product docs (:meth:`ItemSignals.doc` form) and the meta doc into the concrete ``index``."""

    def actions() -> Iterator[dict[str, Any]]:
        for doc in docs:
            src = _item_source(doc, stamp)
            yield {"_op_type": "index", "_index": index, "_id": doc_id(src["product_id"]), "_source": src}
        yield {"_op_type": "index", "_index": index, "_id": META_ID, "_source": dict(meta)}

    n = bulk_or_raise(client, actions(), target=index, what="item signals", chunk_size=500)
    if refresh:
        with engine_errors(f"refreshing {index}"):
            client.indices.refresh(index=index)
    return n - 1


def replace_signals(client: OpenSearch, alias: str, signals: ItemSignals, *, spec: MappingSpec | None = None) -> int:
    """Replace everything behind ``alias`` with ``signals`` (fresh index, new build id, atomic alias swap).
    Returns the product documents written."""
    stamp = _now()
    meta = _meta_source(signals, uuid.uuid4().hex, stamp)
    return manager.replace_behind_alias(
        client,
        spec or load_mapping(),
        alias,
        lambda index: _write_into(client, index, signals.to_docs(), meta, stamp, refresh=True),
    )


def _touched(events: pd.DataFrame | None, impressions: pd.DataFrame | None) -> tuple[PreparedEvents, Any, list[str]]:
    ev = PreparedEvents.from_frame(events if events is not None else pd.DataFrame())
    imp = PreparedImpressions.from_frame(impressions) if impressions is not None and len(impressions) else None
    valid = [p for p, t in zip(ev.product_ids, ev.types.tolist(), strict=True) if t >= 0]
    pids = list(dict.fromkeys([*valid, *(imp.product_ids if imp is not None else [])]))
    return ev, imp, pids


def add(
    client: OpenSearch,
    alias: str,
    *,
    events: pd.DataFrame | None = None,
    impressions: pd.DataFrame | None = None,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> list[dict[str, Any]] | None:
    """Add ``events`` and logged searches (``impressions``) to the stored signals of the products they touch.

    One ``_mget`` (the touched products and the meta document), the exact incremental add, one conditional bulk
    write of those products (those changed meanwhile are read and added to again), then the meta document (a new
    write id), also conditionally. Returns the product documents written (with their
    ``updated_at``: what a serving copy in this process takes at once), [] when nothing was touched, None when
    no signals were ever built (no meta document: the caller builds them whole instead).
    """
    ev, imp, pids = _touched(events, impressions)
    ids = {doc_id(p): p for p in pids}
    stored = read_versioned(client, alias, [META_ID, *ids], "item signals") if pids else {}
    meta_src = stored.get(META_ID)
    if meta_src is None:
        if pids:
            return None
        return None if read_meta(client, alias) is None else []
    meta = meta_src.source.get("meta") or {}
    stamp = _now()
    computed: dict[str, dict[str, Any]] = {}  # engine id -> the product doc last computed for it
    as_ofs: list[str] = []

    def add_events(pending: Sequence[str], current: Mapping[str, Stored]) -> dict[str, dict[str, Any]]:
        state = signals_from_meta(meta)
        state.replace_docs(item_from_source(s.source) for s in current.values() if s.source.get("kind") == "item")
        state.add_prepared(ev)
        if imp is not None:
            state.add_prepared_impressions(imp)
        if state.as_of_ns is not None:
            as_ofs.append(str(_iso(state.as_of_ns)))
        out = {}
        for doc in state.to_docs([ids[i] for i in pending]):
            eid = doc_id(str(doc["product_id"]))
            computed[eid] = doc
            out[eid] = _item_source(doc, stamp)
        return out

    index = manager.ensure_index(client, spec or load_mapping(), alias)[0]
    done = update_documents(
        client, alias=alias, index=index, ids=list(ids), change=add_events, what="item signals",
        read={i: stored[i] for i in ids if i in stored},
    )  # fmt: skip

    def new_meta(pending: Sequence[str], current: Mapping[str, Stored]) -> dict[str, dict[str, Any]]:
        now = current[META_ID].source if META_ID in current else meta_src.source
        now_meta = now.get("meta") or {}
        src = _meta_source(signals_from_meta(now_meta), str(now_meta.get("build") or ""), stamp)
        stamps = [x for x in (now.get("as_of"), *as_ofs) if x]  # one format: compared as strings
        src["as_of"] = max(stamps) if stamps else None
        return {META_ID: src}

    update_documents(
        client, alias=alias, index=index, ids=[META_ID], change=new_meta, what="item signals meta",
        read={META_ID: meta_src},
    )  # fmt: skip
    if refresh:
        with engine_errors(f"refreshing {index}"):
            client.indices.refresh(index=index)
    return [{**computed[i], "updated_at": stamp} for i in ids if i in done]


# ------------------------------------------------------------------------------------------ reading


def _mget_sources(client: OpenSearch, alias: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    return mget_sources(client, alias, ids, "item signals")


def read_meta(client: OpenSearch, alias: str) -> dict[str, Any] | None:
    """The meta document's source (``meta``: build, write, half-life, ...), None when none was written yet."""
    found = _mget_sources(client, alias, [META_ID])
    return dict(found[0]) if found else None


def read_docs(client: OpenSearch, alias: str, product_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The stored documents of ``product_ids`` that exist (``_mget``: real-time), in the doc form."""
    found = _mget_sources(client, alias, [doc_id(str(p)) for p in product_ids])
    return [item_from_source(s) for s in found if s.get("kind") == "item"]


def _scan(client: OpenSearch, alias: str, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    with engine_errors(f"reading item signals from {alias}"):
        if not client.indices.exists(index=alias):
            return
        for hit in helpers.scan(client, index=alias, query={"query": dict(query)}, size=1000):
            yield hit["_source"]


def read_all(client: OpenSearch, alias: str) -> tuple[ItemSignals, dict[str, Any], dict[str, str]] | None:
    """Every stored product (scroll) as one :class:`ItemSignals`, with the meta source and each product's
    ``updated_at``; None without signals. Sees what was refreshed (a build refreshes)."""
    meta = read_meta(client, alias)
    if meta is None:
        return None
    docs = [item_from_source(s) for s in _scan(client, alias, {"term": {"kind": "item"}})]
    state = signals_from_meta(meta.get("meta"))
    state.replace_docs(docs)
    return state, meta, {d["product_id"]: str(d["updated_at"]) for d in docs}


def read_updated(client: OpenSearch, alias: str, since: str) -> list[dict[str, Any]]:
    """The product documents written at or after ``since`` (an ``updated_at`` value), in the doc form."""
    query = {"bool": {"filter": [{"term": {"kind": "item"}}, {"range": {"updated_at": {"gte": since}}}]}}
    return [item_from_source(s) for s in _scan(client, alias, query)]
