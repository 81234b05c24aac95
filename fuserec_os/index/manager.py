"""Concrete indices behind an alias: create, migrate (reindex + atomic swap), status, prune.

Searches always go through the alias (``products``). Concrete indices are named
``<alias>-v<mapping version>-<UTC timestamp>``, so their order and origin read from the name. Every alias
change is one ``_aliases`` call, which OpenSearch applies atomically: a search sees the old index or the
new one, never none. Anything a failed operation created is deleted before the error is raised.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors, error_reason
from fuserec_os.errors import FuserecError, IndexStateError, MappingError, extended
from fuserec_os.index.mappings import MappingSpec


@dataclass(frozen=True)
class IndexInfo:
    name: str
    mapping_version: int | None
    docs: int
    live: bool
    created: str


@dataclass(frozen=True)
class IndexStatus:
    alias: str
    live: tuple[str, ...]
    indices: tuple[IndexInfo, ...]
    file_version: int

    @property
    def live_version(self) -> int | None:
        versions = [i.mapping_version for i in self.indices if i.live]
        return versions[0] if versions else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "live": list(self.live),
            "live_mapping_version": self.live_version,
            "file_mapping_version": self.file_version,
            "indices": [i.__dict__ for i in self.indices],
        }


@dataclass(frozen=True)
class MigrationReport:
    alias: str
    old_index: str
    new_index: str
    old_docs: int
    new_docs: int
    old_version: int | None
    new_version: int
    seconds: float


def new_index_name(alias: str, version: int) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
    return f"{alias}-v{version}-{stamp}"


def _name_pattern(alias: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(alias)}-v(\d+)-(\d{{20}})$")


def alias_targets(client: OpenSearch, alias: str) -> list[str]:
    """Concrete indices the alias points at ([] when the alias does not exist)."""
    with engine_errors(f"reading alias {alias}"):
        if not client.indices.exists_alias(name=alias):
            if client.indices.exists(index=alias):
                raise IndexStateError(
                    f"'{alias}' is a concrete index, not an alias, so it cannot be swapped. Reindex it into a "
                    f"managed index: 'fuserec index create' needs the name free (delete or rename '{alias}')."
                )
            return []
        return sorted(client.indices.get_alias(name=alias))


def managed_indices(client: OpenSearch, alias: str) -> list[str]:
    """Concrete indices created for this alias, oldest first."""
    pattern = _name_pattern(alias)
    with engine_errors(f"listing indices of {alias}"):
        names = client.indices.get(index=f"{alias}-v*", params={"ignore_unavailable": "true"})
    managed = [(m.group(2), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(managed)]


def create_index(client: OpenSearch, spec: MappingSpec, alias: str, attach: bool) -> str:
    """Create a new concrete index from ``spec``; point ``alias`` at it when ``attach``. Returns its name."""
    name = new_index_name(alias, spec.version)
    try:
        client.indices.create(index=name, body=spec.create_body())
    except osx.TransportError as exc:
        if isinstance(exc, osx.ConnectionError):
            with engine_errors(f"creating index {name}"):
                raise
        raise MappingError(f"{spec.path}: the engine rejected the mapping: {error_reason(exc)}") from exc
    if attach:
        try:
            with engine_errors(f"pointing alias {alias} at {name}"):
                client.indices.update_aliases(body={"actions": [{"add": {"index": name, "alias": alias}}]})
        except Exception:
            _delete_quietly(client, name)
            raise
    return name


def ensure_index(client: OpenSearch, spec: MappingSpec, alias: str) -> tuple[str, bool]:
    """The live index behind ``alias``, creating one when there is none. Returns (name, created)."""
    live = alias_targets(client, alias)
    if live:
        return live[-1], False
    return create_index(client, spec, alias, attach=True), True


def swap_alias(client: OpenSearch, alias: str, new_index: str) -> list[str]:
    """Point ``alias`` at ``new_index`` only, in one atomic ``_aliases`` call. Returns the indices it left."""
    old = [i for i in alias_targets(client, alias) if i != new_index]
    actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": alias}} for i in old]
    actions.append({"add": {"index": new_index, "alias": alias}})
    with engine_errors(f"swapping alias {alias} to {new_index}"):
        client.indices.update_aliases(body={"actions": actions})
    return old


def count(client: OpenSearch, index: str) -> int:
    with engine_errors(f"counting documents of {index}"):
        client.indices.refresh(index=index)
        return int(client.count(index=index)["count"])


def migrate(client: OpenSearch, spec: MappingSpec, alias: str, force: bool = False) -> MigrationReport:
    """Build a new index from ``spec``, reindex the live one into it, check counts, swap atomically."""
    started = time.monotonic()
    live = alias_targets(client, alias)
    if not live:
        raise IndexStateError(f"alias '{alias}' does not exist yet: run 'fuserec index create' first.")
    if len(live) > 1:
        raise IndexStateError(
            f"alias '{alias}' points at {len(live)} indices ({', '.join(live)}); migrate needs exactly one. "
            "Repair it with an _aliases call that removes all but one."
        )
    old = live[0]
    old_version = mapping_version(client, old)
    if old_version == spec.version and not force:
        raise IndexStateError(
            f"'{alias}' is already at mapping version {spec.version} ({old}). Bump 'version' in {spec.path} "
            "after changing it, or pass --force to rebuild anyway."
        )
    new = create_index(client, spec, alias, attach=False)
    try:
        with engine_errors(f"reindexing {old} into {new}"):
            result = client.reindex(
                body={"source": {"index": old}, "dest": {"index": new}},
                params={"wait_for_completion": "true", "refresh": "true"},
                request_timeout=3600,
            )
        failures = result.get("failures") or []
        if failures:
            first = failures[0]
            raise IndexStateError(
                f"reindex into {new} had {len(failures)} failed document(s); first: id {first.get('id')}: "
                f"{(first.get('cause') or {}).get('reason', first)}. The live index is unchanged."
            )
        old_docs, new_docs = count(client, old), count(client, new)
        if old_docs != new_docs:
            raise IndexStateError(
                f"doc counts differ after reindex ({old}: {old_docs}, {new}: {new_docs}); alias not swapped, "
                "the live index is unchanged. Were documents written during the migration? Run it again."
            )
        swap_alias(client, alias, new)
    except Exception:
        _delete_quietly(client, new)
        raise
    return MigrationReport(alias, old, new, old_docs, new_docs, old_version, spec.version, time.monotonic() - started)


def status(client: OpenSearch, spec: MappingSpec, alias: str) -> IndexStatus:
    live = set(alias_targets(client, alias))
    names = managed_indices(client, alias)
    for name in live:
        if name not in names:
            names.append(name)
    infos = []
    with engine_errors(f"reading status of {alias}"):
        for name in names:
            described = client.indices.get(index=name)[name]
            meta = described.get("mappings", {}).get("_meta", {})
            created_ms = described.get("settings", {}).get("index", {}).get("creation_date")
            created = (
                datetime.fromtimestamp(int(created_ms) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                if created_ms
                else ""
            )
            docs = int(client.count(index=name)["count"])
            version = meta.get("mapping_version")
            infos.append(IndexInfo(name, int(version) if version is not None else None, docs, name in live, created))
    return IndexStatus(alias, tuple(sorted(live)), tuple(infos), spec.version)


def prune(client: OpenSearch, alias: str, keep: int = 2) -> list[str]:
    """Delete managed indices of ``alias`` except the newest ``keep`` and any live one. Returns deleted names."""
    if keep < 1:
        raise IndexStateError(f"--keep must be at least 1 (got {keep}): the live index is never deleted.")
    live = set(alias_targets(client, alias))
    names = managed_indices(client, alias)
    kept = set(names[-keep:]) | live
    doomed = [n for n in names if n not in kept]
    with engine_errors(f"deleting old indices of {alias}"):
        for name in doomed:
            client.indices.delete(index=name)
    return doomed


def delete_index(client: OpenSearch, name: str) -> None:
    with engine_errors(f"deleting index {name}"):
        client.indices.delete(index=name, params={"ignore_unavailable": "true"})


def discard_unfinished(client: OpenSearch, index: str, failure: FuserecError) -> FuserecError:
    """Delete ``index`` after ``failure`` left it unfinished; the error to raise, the original failure first.

    A cleanup that fails too (the engine died) is added after the original message, never instead of it.
    """
    try:
        delete_index(client, index)
    except FuserecError as err:
        return extended(failure, f"Then removing the unfinished index {index} failed too: {err}")
    return failure


def replace_behind_alias(client: OpenSearch, spec: MappingSpec, alias: str, write: Callable[[str], int]) -> int:
    """Fill a fresh index with ``write(index)``, point ``alias`` at it in one atomic call, delete the old ones.

    For stores rebuilt whole (product vectors, query statistics): readers see the old data until the swap and
    never a mix. On failure the new index is deleted and the live data is unchanged; a cleanup that fails too
    is reported after the original failure (:func:`discard_unfinished`). Returns what ``write`` returned.
    """
    index = create_index(client, spec, alias, attach=False)
    try:
        n = write(index)
        old = swap_alias(client, alias, index)
    except FuserecError as exc:
        raise discard_unfinished(client, index, exc) from exc
    except Exception:
        with contextlib.suppress(Exception):  # a bug, not an engine failure: its traceback matters more
            delete_index(client, index)
        raise
    for name in old:
        with contextlib.suppress(Exception):  # the swap succeeded; a leftover index is only clutter
            delete_index(client, name)
    return n


def mapping_version(client: OpenSearch, index: str) -> int | None:
    """The mapping version recorded in ``index``'s ``_meta`` (None when it has none)."""
    with engine_errors(f"reading mapping of {index}"):
        meta = client.indices.get_mapping(index=index)[index].get("mappings", {}).get("_meta", {})
    version = meta.get("mapping_version")
    return int(version) if version is not None else None


def _delete_quietly(client: OpenSearch, name: str) -> None:
    with contextlib.suppress(Exception):  # cleanup after a failure: the original error matters more
        client.indices.delete(index=name, params={"ignore_unavailable": "true"})
