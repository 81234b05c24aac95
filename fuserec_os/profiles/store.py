"""Profiles and product latent vectors in the engine (mappings/profiles.json, mappings/product_vectors.json).

One document per user, doc id = user id, written whole (bulk ``index``: create or replace, so no stale keys of
an older profile survive). Callers pass the alias with the tenant prefix applied (``settings.alias("profiles")``).
Indices are managed like the products index: concrete ``<alias>-v<version>-<timestamp>`` behind the alias.

Product vectors belong to one factorisation: :func:`write_product_vectors` loads them into a fresh index and
swaps the alias in one atomic call (then deletes the old index), so vectors of two builds never mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from opensearchpy import OpenSearch, helpers
from opensearchpy import exceptions as osx

from fuserec_os.engine.bulk import bulk_or_raise
from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineError, IndexStateError
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_named_mapping
from fuserec_os.profiles.compute import UserProfile, iso_utc, to_utc

__all__ = [
    "PRODUCT_VECTORS_MAPPING",
    "PROFILES_MAPPING",
    "delete_profile",
    "ensure_profiles_index",
    "read_all_profiles",
    "read_product_vectors",
    "read_profiles",
    "write_product_vectors",
    "write_profiles",
]

PROFILES_MAPPING = "profiles"
PRODUCT_VECTORS_MAPPING = "product_vectors"
_MGET_CHUNK = 1000
_MAX_RETRIES = 5  # 429 (too many requests) retries per bulk chunk, with exponential back-off
_INITIAL_BACKOFF = 1.0


def ensure_profiles_index(client: OpenSearch, alias: str, spec: MappingSpec | None = None) -> str:
    """The live profiles index behind ``alias``, created (with the alias) when there is none."""
    name, _ = manager.ensure_index(client, spec or load_named_mapping(PROFILES_MAPPING), alias)
    return name


def _refresh(client: OpenSearch, index: str) -> None:
    with engine_errors(f"refreshing {index}"):
        client.indices.refresh(index=index)


def write_profiles(
    client: OpenSearch,
    alias: str,
    profiles: Iterable[UserProfile],
    chunk_size: int = 500,
    *,
    refresh: bool = False,
    spec: MappingSpec | None = None,
) -> int:
    """Upsert ``profiles`` (doc id = user id; creates the index behind ``alias`` if needed). Returns the count.

    ``refresh=True`` makes them searchable before returning (reads by id never need it).
    """
    index = ensure_profiles_index(client, alias, spec)
    actions = ({"_op_type": "index", "_index": index, "_id": p.user_id, "_source": p.to_doc()} for p in profiles)
    n = bulk_or_raise(client, actions, target=index, what="profile", chunk_size=chunk_size)
    if refresh:
        _refresh(client, index)
    return n


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _missing_index(error: Any) -> bool:
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def read_profiles(client: OpenSearch, alias: str, user_ids: Iterable[str]) -> dict[str, UserProfile]:
    """Profiles of ``user_ids`` by id (``_mget``); users without a profile (or no index yet) are absent."""
    ids = list(dict.fromkeys(str(u) for u in user_ids))
    out: dict[str, UserProfile] = {}
    for chunk in _chunks(ids, _MGET_CHUNK):
        try:
            with engine_errors(f"reading profiles from {alias}"):
                resp = client.mget(index=alias, body={"ids": list(chunk)})
        except EngineError as exc:
            if isinstance(exc.__cause__, osx.NotFoundError):
                return {}
            raise
        for doc in resp.get("docs", []):
            error = doc.get("error")
            if error is not None:
                if _missing_index(error):
                    return {}
                raise EngineError(f"OpenSearch refused reading profile {doc.get('_id')} from {alias}: {error}")
            if doc.get("found"):
                out[str(doc["_id"])] = _profile(doc["_source"])
    return out


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
        return UserProfile.from_doc(doc)
    except ValueError as exc:
        raise IndexStateError(f"{exc}: rebuild the profiles with 'fuserec profiles build'.") from None
