"""Profiles and product latent vectors in the engine (mappings/profiles.json, mappings/product_vectors.json).

One document per user, doc id = user id, written whole (bulk ``index``: create or replace, so no stale keys of
an older profile survive). Callers pass the alias with the tenant prefix applied (``settings.alias("profiles")``).
Indices are managed like the products index: concrete ``<alias>-v<version>-<timestamp>`` behind the alias.

Lean documents (mapping version 2): a profile is read back whole by id (``_mget``: training, serving, the
proxy, ``fuserec profiles show``) or by a scan, never searched on its item lists, so only a few summaries are
indexed (user id, schema, as_of, last_seen, n_events, top categories and brands: what an operator may filter
on) and everything else (first_seen, counts, weights, price, rating, vector, the category / brand / interest
maps, the items and recent events) is one unindexed ``binary`` field, ``state``: zlib-compressed compact JSON
(keys, ids, timestamps as integer nanoseconds) followed by raw float64 / int64 arrays for the weights
(:func:`profile_doc`, decoded by :func:`profile_from_source`; exact, so a round trip compares equal). Writing it
costs the engine one opaque string per profile instead of thousands of JSON values, and the client no ISO
formatting per item. A document of mapping version 1 (the whole ``UserProfile.to_doc``) is still read; the
first write into a version 1 index moves every profile into a fresh version 2 index (alias swap).

Incremental updates (live updates in several processes and the profile job may update one user at once) write
with :func:`update_stored_profiles`:
each profile only if it is still the version read (:mod:`~fuserec_os.engine.versioned`), a changed one is
read again and the same events folded into it, so no update is lost. A full build keeps :func:`write_profiles`
(one writer, no version checks).

Writes are bulk requests of pre-serialised documents cut by bytes (``max_chunk_bytes``) and by count, sent by
``threads`` workers while the next chunk is encoded, with one refresh at the end (when asked for).

Product vectors belong to one factorisation: :func:`write_product_vectors` loads them into a fresh index and
swaps the alias in one atomic call (then deletes the old index), so vectors of two builds never mix.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from opensearchpy import OpenSearch, helpers
from opensearchpy import exceptions as osx

from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.engine.bulk import bulk_or_raise, bulk_parallel_or_raise
from fuserec_os.engine.client import engine_errors
from fuserec_os.engine.reads import mget_found
from fuserec_os.engine.versioned import Stored, read_versioned, update_documents
from fuserec_os.errors import EngineError, IndexStateError
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_named_mapping
from fuserec_os.profiles.compute import (
    DOC_TOP_N,
    SCHEMA_VERSION,
    ItemState,
    PriceProfile,
    RecentEvent,
    UserProfile,
    iso_utc,
    to_utc,
)

__all__ = [
    "PRODUCT_VECTORS_MAPPING",
    "PROFILES_MAPPING",
    "delete_profile",
    "ensure_profiles_index",
    "profile_doc",
    "profile_from_source",
    "read_all_profiles",
    "read_product_vectors",
    "read_profiles",
    "read_profiles_versioned",
    "update_stored_profiles",
    "write_product_vectors",
    "write_profiles",
]

PROFILES_MAPPING = "profiles"
PRODUCT_VECTORS_MAPPING = "product_vectors"
_MAX_RETRIES = 5  # 429 (too many requests) retries per bulk chunk, with exponential back-off
_INITIAL_BACKOFF = 1.0
LEAN_MAPPING_VERSION = 2
"""The first profiles mapping version with lean documents (a ``state`` blob)."""
DEFAULT_CHUNK_DOCS = 1000
DEFAULT_CHUNK_BYTES = 2**20
DEFAULT_THREADS = 2


# ------------------------------------------------------------------------------------------ lean documents


def _plain(value: Any) -> Any:
    """json.dumps ``default``: NumPy scalars and arrays as Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _ns(ts: Any) -> int:
    return int(ts.value)


def _ranked_keys(mapping: Mapping[str, float]) -> list[str]:
    return [k for k, _ in sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))[:DOC_TOP_N]]


def _state(p: UserProfile) -> dict[str, Any]:
    price = p.price
    return {
        "first_seen": _ns(p.first_seen),
        "counts": [int(p.counts.get(t, 0)) for t in EVENT_TYPES],
        "total_weight": float(p.total_weight),
        "categories": list(p.categories),
        "brands": list(p.brands),
        "interests": list(p.interests),
        "price": None
        if price is None
        else [price.median, price.p25, price.p75, price.weight, price.sensitivity, list(price.histogram.items())],
        "rating": p.rating,
        "vector": None if p.vector is None else len(p.vector),
        "items": list(p.items),
        "item_counts": [s.counts for s in p.items.values()],  # sparse {type: count}: JSON in C, no lookups
        "recent": [[r.product_id for r in p.recent], [r.type for r in p.recent], [_ns(r.timestamp) for r in p.recent]],
    }


_F8, _I8 = np.dtype("<f8"), np.dtype("<i8")
_dumps = json.JSONEncoder(separators=(",", ":"), default=_plain, allow_nan=False, check_circular=False).encode


def _floats(values: Iterable[float], n: int) -> bytes:
    return np.fromiter(values, dtype=_F8, count=n).tobytes()


def encode_state(p: UserProfile) -> str:
    """The ``state`` blob of ``p``: base64 of zlib-compressed compact JSON (keys, ids, small values) followed by
    a newline and raw little-endian arrays (no float formatting, exact): the items' weights (float64) and last
    times (int64 ns), the category, brand and interest weights, the latent vector."""
    header = _dumps(_state(p)).encode()
    states = p.items.values()
    n = len(p.items)
    vector = b"" if p.vector is None else np.asarray(p.vector, dtype=_F8).tobytes()
    raw = b"".join(
        (
            header,
            b"\n",
            _floats((s.w for s in states), n),
            np.fromiter((s.last.value for s in states), dtype=_I8, count=n).tobytes(),
            _floats(p.categories.values(), len(p.categories)),
            _floats(p.brands.values(), len(p.brands)),
            _floats(p.interests.values(), len(p.interests)),
            vector,
        )
    )
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def _decode_state(blob: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the JSON header, the arrays by name: w, last, categories, brands, interests, vector)."""
    raw = zlib.decompress(base64.b64decode(blob))
    cut = raw.index(b"\n")  # compact JSON escapes every newline inside strings
    st = json.loads(raw[:cut])
    body = memoryview(raw)[cut + 1 :]
    n = len(st["items"])
    sizes = [
        ("w", _F8, n),
        ("last", _I8, n),
        ("categories", _F8, len(st["categories"])),
        ("brands", _F8, len(st["brands"])),
        ("interests", _F8, len(st["interests"])),
        ("vector", _F8, st["vector"] or 0),
    ]
    arrays: dict[str, Any] = {}
    offset = 0
    for name, dtype, count in sizes:
        arrays[name] = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
    return st, arrays


def profile_doc(p: UserProfile) -> dict[str, Any]:
    """The lean engine document of ``p`` (mappings/profiles.json version 2)."""
    return {
        "user_id": p.user_id,
        "schema": SCHEMA_VERSION,
        "as_of": iso_utc(p.as_of),
        "last_seen": iso_utc(p.last_seen),
        "n_events": int(p.n_events),
        "top_categories": _ranked_keys(p.categories),
        "top_brands": _ranked_keys(p.brands),
        "state": encode_state(p),
    }


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def profile_from_source(doc: Mapping[str, Any]) -> UserProfile:
    """A stored profile document (lean, or a version 1 ``UserProfile.to_doc``) back as a UserProfile.

    Raises ValueError for a document of an unknown schema version.
    """
    if "state" not in doc:
        return UserProfile.from_doc(doc)
    schema = doc.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ValueError(f"profile document schema {schema!r} is not supported (expected {SCHEMA_VERSION})")
    st, arr = _decode_state(doc["state"])
    price = None
    if st["price"] is not None:
        median, p25, p75, weight, sensitivity, histogram = st["price"]
        price = PriceProfile(
            histogram={int(b): float(x) for b, x in histogram},
            weight=float(weight),
            median=float(median),
            p25=float(p25),
            p75=float(p75),
            sensitivity=None if sensitivity is None else float(sensitivity),
        )
    types = EVENT_TYPES
    lasts = pd.DatetimeIndex(arr["last"].astype("datetime64[ns]")).tz_localize("UTC")
    items = {
        str(pid): ItemState(wi, {str(t): int(c) for t, c in cs.items() if c}, ts)
        for pid, wi, cs, ts in zip(st["items"], arr["w"].tolist(), st["item_counts"], lasts, strict=True)
    }
    rp, rt, rts = st["recent"]
    return UserProfile(
        user_id=str(doc["user_id"]),
        as_of=to_utc(doc["as_of"]),
        first_seen=_ts(st["first_seen"]),
        last_seen=to_utc(doc["last_seen"]),
        n_events=int(doc["n_events"]),
        counts={t: int(c) for t, c in zip(types, st["counts"], strict=True)},
        items=items,
        recent=[RecentEvent(str(p), str(t), _ts(ts)) for p, t, ts in zip(rp, rt, rts, strict=True)],
        categories=dict(zip(map(str, st["categories"]), arr["categories"].tolist(), strict=True)),
        brands=dict(zip(map(str, st["brands"]), arr["brands"].tolist(), strict=True)),
        price=price,
        rating=None if st["rating"] is None else float(st["rating"]),
        interests=dict(zip(map(str, st["interests"]), arr["interests"].tolist(), strict=True)),
        total_weight=float(st["total_weight"]),
        vector=None if st["vector"] is None else arr["vector"].astype(np.float64),
    )


def ensure_profiles_index(client: OpenSearch, alias: str, spec: MappingSpec | None = None) -> str:
    """The live profiles index behind ``alias``, created (with the alias) when there is none."""
    name, _ = manager.ensure_index(client, spec or load_named_mapping(PROFILES_MAPPING), alias)
    return name


def _refresh(client: OpenSearch, index: str) -> None:
    with engine_errors(f"refreshing {index}"):
        client.indices.refresh(index=index)


def _actions(index: str, profiles: Iterable[UserProfile]) -> Iterator[dict[str, Any]]:
    """Bulk ``index`` actions with the lean document already serialised (what the bulk helper sends as is)."""
    for p in profiles:
        yield {"_op_type": "index", "_index": index, "_id": p.user_id, "_source": _dumps(profile_doc(p))}


def write_profiles(
    client: OpenSearch,
    alias: str,
    profiles: Iterable[UserProfile],
    chunk_size: int = DEFAULT_CHUNK_DOCS,
    *,
    refresh: bool = False,
    spec: MappingSpec | None = None,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    threads: int = DEFAULT_THREADS,
) -> int:
    """Upsert ``profiles`` (doc id = user id; creates the index behind ``alias`` if needed). Returns the count.

    Bulk requests hold at most ``chunk_size`` documents and about ``max_chunk_bytes``; ``threads`` of them are
    in flight while the next is encoded. ``refresh=True`` refreshes once at the end, making them searchable
    before returning (reads by id never need it). An index of an older mapping version (version 1: whole
    ``to_doc`` documents) is first replaced by a fresh one holding every stored profile as a lean document.
    """
    spec = spec or load_named_mapping(PROFILES_MAPPING)
    index = ensure_profiles_index(client, alias, spec)
    if spec.version >= LEAN_MAPPING_VERSION and (manager.mapping_version(client, index) or 0) < LEAN_MAPPING_VERSION:
        return _upgrade_and_write(client, alias, spec, profiles, chunk_size, max_chunk_bytes, threads)
    n = bulk_parallel_or_raise(
        client, _actions(index, profiles), target=index, what="profile", chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes, threads=threads,
    )  # fmt: skip
    if refresh:
        _refresh(client, index)
    return n


def _upgrade_and_write(
    client: OpenSearch,
    alias: str,
    spec: MappingSpec,
    profiles: Iterable[UserProfile],
    chunk_size: int,
    max_chunk_bytes: int,
    threads: int,
) -> int:
    """Every stored profile, with ``profiles`` replacing theirs, into a fresh index of ``spec`` (alias swap)."""
    new = {p.user_id: p for p in profiles}
    stored = read_all_profiles(client, alias)
    merged = [*(p for uid, p in stored.items() if uid not in new), *new.values()]

    def write(index: str) -> int:
        bulk_parallel_or_raise(
            client, _actions(index, merged), target=index, what="profile", chunk_size=chunk_size,
            max_chunk_bytes=max_chunk_bytes, threads=threads,
        )  # fmt: skip
        _refresh(client, index)
        return len(new)

    return manager.replace_behind_alias(client, spec, alias, write)


def read_profiles(client: OpenSearch, alias: str, user_ids: Iterable[str]) -> dict[str, UserProfile]:
    """Profiles of ``user_ids`` by id (``_mget``); users without a profile (or no index yet) are absent."""
    found = mget_found(client, alias, [str(u) for u in user_ids], "profile")
    return {str(doc["_id"]): _profile(doc["_source"]) for doc in found}


def read_profiles_versioned(
    client: OpenSearch, alias: str, user_ids: Iterable[str]
) -> tuple[dict[str, UserProfile], dict[str, Stored]]:
    """:func:`read_profiles` plus each stored document with its concurrency token (for
    :func:`update_stored_profiles`)."""
    stored = read_versioned(client, alias, [str(u) for u in user_ids], "profile")
    return {uid: _profile(doc.source) for uid, doc in stored.items()}, stored


def update_stored_profiles(
    client: OpenSearch,
    alias: str,
    user_ids: Sequence[str],
    fold: Callable[[Mapping[str, UserProfile], Sequence[str]], Mapping[str, UserProfile]],
    *,
    read: Mapping[str, Stored] | None = None,
    first: Mapping[str, UserProfile] | None = None,
    spec: MappingSpec | None = None,
    threads: int = 1,
    refresh: bool = False,
) -> int:
    """Write the profiles of ``user_ids`` as ``fold(their stored profiles, the ids)`` returns them, each only if
    the stored one did not change meanwhile; those that did are read again and folded again (a bounded number
    of times, then :class:`~fuserec_os.engine.versioned.ConcurrentUpdateError`). Returns the count written.

    ``read`` / ``first``: what :func:`read_profiles_versioned` returned and ``fold`` made of it, when the
    caller already has them (the first attempt then writes them). ``fold`` must be a function of the stored
    profiles and the caller's fixed events (see :mod:`~fuserec_os.engine.versioned`). Requests are cut like
    :func:`write_profiles`' (documents and bytes), ``threads`` of them in flight; ``refresh=True`` refreshes
    once at the end.
    """
    spec = spec or load_named_mapping(PROFILES_MAPPING)
    index = ensure_profiles_index(client, alias, spec)
    if spec.version >= LEAN_MAPPING_VERSION and (manager.mapping_version(client, index) or 0) < LEAN_MAPPING_VERSION:
        # a one-time move of every profile into a lean index: it rewrites them all, unconditionally
        current = read_profiles(client, alias, user_ids)
        return _upgrade_and_write(
            client, alias, spec, fold(current, user_ids).values(), DEFAULT_CHUNK_DOCS, DEFAULT_CHUNK_BYTES, threads
        )

    def change(pending: Sequence[str], stored: Mapping[str, Stored]) -> dict[str, str]:
        profiles = fold({uid: _profile(doc.source) for uid, doc in stored.items()}, pending)
        return {uid: _dumps(profile_doc(p)) for uid, p in profiles.items()}

    done = update_documents(
        client,
        alias=alias,
        index=index,
        ids=user_ids,
        change=change,
        what="profile",
        read=read,
        first=None if first is None else {uid: _dumps(profile_doc(p)) for uid, p in first.items()},
        chunk_size=DEFAULT_CHUNK_DOCS,
        max_chunk_bytes=DEFAULT_CHUNK_BYTES,
        threads=threads,
    )
    if refresh:
        _refresh(client, index)
    return len(done)


def _scan(client: OpenSearch, alias: str, what: str) -> Iterator[dict[str, Any]]:
    with engine_errors(f"reading {what} from {alias}"):
        if not client.indices.exists(index=alias):
            return
        yield from helpers.scan(client, index=alias, query={"query": {"match_all": {}}}, size=1000)


def read_all_profiles(client: OpenSearch, alias: str) -> dict[str, UserProfile]:
    """Every profile behind ``alias`` (scroll), by user id; {} when there is no index yet."""
    return {str(hit["_id"]): _profile(hit["_source"]) for hit in _scan(client, alias, "profiles")}


def delete_profile(client: OpenSearch, alias: str, user_id: str) -> int:
    """Delete one user's profile; returns 1 when it existed, else 0. Refreshed at once: on a real cluster a
    deleted profile would otherwise still be found by searches (scans) until the next refresh."""
    index = _live_index(client, alias)
    if index is None:
        return 0
    try:
        with engine_errors(f"deleting profile {user_id} from {alias}"):
            resp = client.delete(index=index, id=str(user_id), params={"refresh": "true"})
    except EngineError as exc:
        if isinstance(exc.__cause__, osx.NotFoundError):
            return 0
        raise
    return 1 if resp.get("result") == "deleted" else 0


def _live_index(client: OpenSearch, alias: str) -> str | None:
    targets = manager.alias_targets(client, alias)
    return targets[-1] if targets else None


def write_product_vectors(
    client: OpenSearch,
    alias: str,
    vectors: Mapping[str, np.ndarray],
    as_of: Any,
    chunk_size: int = 1000,
    *,
    spec: MappingSpec | None = None,
) -> int:
    """Replace the product vectors behind ``alias`` with ``vectors`` (fresh index, atomic alias swap).

    Returns the number written. The old index is deleted after the swap; on failure the new one is deleted
    and the live vectors are unchanged.
    """
    spec = spec or load_named_mapping(PRODUCT_VECTORS_MAPPING)
    stamp = iso_utc(to_utc(as_of))

    def write(index: str) -> int:
        actions = (
            {
                "_op_type": "index",
                "_index": index,
                "_id": pid,
                "_source": {"product_id": pid, "vector": [float(x) for x in np.asarray(vec)], "as_of": stamp},
            }
            for pid, vec in vectors.items()
        )
        n = bulk_or_raise(client, actions, target=index, what="product vector", chunk_size=chunk_size)
        _refresh(client, index)
        return n

    return manager.replace_behind_alias(client, spec, alias, write)


def read_product_vectors(client: OpenSearch, alias: str) -> dict[str, np.ndarray]:
    """Every product vector behind ``alias`` by product id (float64 arrays); {} when there is no index."""
    return {
        str(hit["_id"]): np.asarray(hit["_source"]["vector"], dtype=np.float64)
        for hit in _scan(client, alias, "product vectors")
    }


def _profile(doc: Mapping[str, Any]) -> UserProfile:
    """A stored profile, or IndexStateError (not a traceback) when it was written by another schema version."""
    try:
        return profile_from_source(doc)
    except ValueError as exc:
        raise IndexStateError(f"{exc}: rebuild the profiles with 'fuserec profiles build'.") from None
