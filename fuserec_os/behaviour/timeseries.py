"""Time-based documents in the engine: one index per UTC month behind one alias (events, the search log).

Why one index per UTC month (``<alias>-YYYY.MM``): a year of logs in one index makes every read, delete and
retention decision touch everything; months can be searched through the alias as one, and dropped as a unit.
Month indices are created on demand from the document type's mapping with the alias attached in the same
request, so an index is never visible without the alias or the other way round.

Documents are written with ``op_type: create`` and a deterministic ``_id``, and a document always lands in the
month of its own timestamp, so storing one twice is answered 409 by the engine (``already_stored``).

Within one file (or one batch of a running service) an id may repeat: an identical repeat is counted and stored
once, but the same id with other content is another record under a reused id, so it is rejected with both rows
named (:class:`RepeatedIds`) instead of vanishing as a "repeat". A file that stops parsing part way raises an
InputFileError saying what was stored before it and how to go on (:func:`partial_failure`).

Reading goes through one point in time with ``search_after`` on a unique sort, so documents written meanwhile
neither shift nor duplicate pages. Each user of this module (:mod:`~fuserec_os.behaviour.event_store`,
:mod:`~fuserec_os.behaviour.search_log`) names its documents (``what``) so errors read naturally.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.behaviour.events import format_timestamp
from fuserec_os.engine.bulk import stream_bulk
from fuserec_os.engine.client import engine_errors, error_reason
from fuserec_os.errors import EngineError, IndexStateError, InputFileError, MappingError, extended
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import fix_the_input
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, jsonable

__all__ = [
    "ALREADY",
    "PIT_KEEP_ALIVE",
    "REFUSED",
    "REPEAT",
    "STORED",
    "MonthIndices",
    "RepeatedIds",
    "bulk_create",
    "delete_by_user",
    "ensure_month_index",
    "month_index",
    "month_indices",
    "now_ms",
    "partial_failure",
    "read_pit",
    "time_filters",
]

#: How long a point in time stays open between two pages of :func:`read_pit`.
PIT_KEEP_ALIVE = "2m"

STORED, ALREADY, REFUSED = "stored", "already_stored", "refused"

#: What :meth:`RepeatedIds.see` answers for an identical repeat.
REPEAT = "repeat"


# --- indices -----------------------------------------------------------------------------------------
def month_index(alias: str, timestamp: str) -> str:
    """The concrete index of a document: ``<alias>-YYYY.MM`` from its UTC timestamp ("2024-05-..." -> 2024.05)."""
    return f"{alias}-{timestamp[0:4]}.{timestamp[5:7]}"


def month_indices(client: OpenSearch, alias: str, what: str = "events") -> list[str]:
    """Concrete indices behind ``alias``, oldest month first ([] when there is no alias yet).

    Raises IndexStateError, naming the fix, when ``alias`` is taken by a concrete index.
    """
    with engine_errors(f"reading alias {alias}"):
        if client.indices.exists_alias(name=alias):
            return sorted(client.indices.get_alias(name=alias))
        if client.indices.exists(index=alias):
            raise IndexStateError(
                f"'{alias}' is a concrete index, not the {what} alias, so monthly {what} indices cannot be put "
                f"behind it. Delete or rename '{alias}', or use another FUSEREC_INDEX_PREFIX."
            )
    return []


def ensure_month_index(client: OpenSearch, spec: MappingSpec, alias: str, name: str, what: str = "events") -> bool:
    """Make sure ``name`` exists and is behind ``alias``; create it from ``spec`` if needed. Returns created.

    Creation and alias are one request. Losing a creation race to another writer is fine (the index is then
    used). After any other failure, an index this call may have made is removed, but only while it is still
    empty: an index with documents is never deleted by cleanup code.
    """
    with engine_errors(f"checking {what} index {name}"):
        if client.indices.exists(index=name):
            _attach(client, alias, name)
            _add_new_fields(client, spec, name, what)
            return False
    body = spec.create_body()
    body["aliases"] = {alias: {}}
    try:
        client.indices.create(index=name, body=body)
    except osx.TransportError as exc:
        if _error_type(exc) == "resource_already_exists_exception":
            with engine_errors(f"attaching {name} to alias {alias}"):
                _attach(client, alias, name)
            return False
        _remove_if_empty(client, name)
        if isinstance(exc, osx.ConnectionError):
            with engine_errors(f"creating {what} index {name}"):
                raise
        if _error_type(exc) == "invalid_alias_name_exception":
            raise IndexStateError(
                f"cannot create {name} behind alias {alias}: {error_reason(exc)}. Delete or rename the index "
                f"called '{alias}', or use another FUSEREC_INDEX_PREFIX."
            ) from exc
        raise MappingError(f"{spec.path}: the engine rejected the {what} mapping: {error_reason(exc)}") from exc
    except Exception:
        _remove_if_empty(client, name)
        raise
    return True


def _add_new_fields(client: OpenSearch, spec: MappingSpec, name: str, what: str) -> None:
    """An index made from an older version of the mapping gets the fields it lacks (a month written to again
    after ``mappings/<what>.json`` gained fields: strict mappings would refuse documents carrying them).
    Fields are only added, never changed, so older documents stay valid; the index then records the new version.
    """
    with engine_errors(f"reading the mapping of {what} index {name}"):
        mapping = client.indices.get_mapping(index=name).get(name, {}).get("mappings", {})
    version = mapping.get("_meta", {}).get("mapping_version")
    if version is not None and int(version) >= spec.version:
        return
    have = mapping.get("properties", {})
    missing = {k: v for k, v in spec.mappings.get("properties", {}).items() if k not in have}
    meta = dict(mapping.get("_meta", {}))
    meta.update({"mapping_name": spec.name, "mapping_version": spec.version})
    try:
        client.indices.put_mapping(index=name, body={"properties": missing, "_meta": meta})
    except osx.TransportError as exc:
        if isinstance(exc, osx.ConnectionError):
            with engine_errors(f"adding fields to {what} index {name}"):
                raise
        raise MappingError(
            f"{spec.path}: the engine refused to add {', '.join(missing) or 'no field'} to the existing {what} "
            f"index {name} (mapping version {version} -> {spec.version}): {error_reason(exc)}"
        ) from exc


def _attach(client: OpenSearch, alias: str, name: str) -> None:
    if not client.indices.exists_alias(name=alias, index=name):
        client.indices.update_aliases(body={"actions": [{"add": {"index": name, "alias": alias}}]})


def _error_type(exc: osx.TransportError) -> str | None:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    return err.get("type") if isinstance(err, dict) else None


def _remove_if_empty(client: OpenSearch, name: str) -> None:
    with contextlib.suppress(Exception):  # cleanup after a failure: the original error matters more
        if client.indices.exists(index=name) and int(client.count(index=name)["count"]) == 0:
            client.indices.delete(index=name, params={"ignore_unavailable": "true"})


class MonthIndices:
    """Month indices of one run: each checked/created once, and the ones written to remembered for refresh."""

    def __init__(self, client: OpenSearch, spec: MappingSpec, alias: str, what: str = "events") -> None:
        self.client, self.spec, self.alias, self.what = client, spec, alias, what
        self.ready: set[str] = set()
        self.created: set[str] = set()

    def target(self, timestamp: str) -> str:
        """The index for a document with this (UTC, formatted) timestamp, created on first use."""
        name = month_index(self.alias, timestamp)
        if name not in self.ready:
            if ensure_month_index(self.client, self.spec, self.alias, name, self.what):
                self.created.add(name)
            self.ready.add(name)
        return name

    def refresh(self) -> None:
        if self.ready:
            with engine_errors(f"refreshing {', '.join(sorted(self.ready))}"):
                self.client.indices.refresh(index=",".join(sorted(self.ready)))


# --- writing -----------------------------------------------------------------------------------------
def bulk_create(
    client: OpenSearch,
    actions: Iterable[dict[str, Any]],
    *,
    what: str,
    chunk_size: int,
    max_retries: int,
    initial_backoff: float,
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Send ``create`` actions; yield (outcome, doc id, bulk item) per document, outcome STORED/ALREADY/REFUSED.

    429s are retried with backoff (per document and whole requests); an engine that cannot be reached raises
    our EngineUnavailableError rather than turning every document into a reject.
    """
    for ok, result in stream_bulk(
        client, actions, what=what, chunk_size=chunk_size, max_retries=max_retries, initial_backoff=initial_backoff
    ):
        doc_id = str(result.get("_id"))
        if ok:
            yield STORED, doc_id, result
        elif result.get("status") == 409:
            yield ALREADY, doc_id, result
        else:
            yield REFUSED, doc_id, result


class RepeatedIds:
    """The ids seen in one file or batch, each with a fingerprint of its content (8 bytes, not the document).

    :meth:`see` tells a first occurrence, an identical repeat (counted, stored once) and a conflict: the same id
    with other content, which is a different record under a reused id and must not be dropped as a repeat.
    ``where`` names a position in reasons ("row" in a file, "item" in a batch); ``advice`` says how to fix it.
    """

    def __init__(self, id_field: str, where: str, advice: str) -> None:
        self.id_field, self.where, self.advice = id_field, where, advice
        self._seen: dict[str, tuple[int, bytes]] = {}

    def see(self, key: str, doc: Mapping[str, Any], position: int) -> str | None:
        """None the first time ``key`` is seen; :data:`REPEAT` for the same content again; else the reason to
        reject this one, naming both positions."""
        fingerprint = _fingerprint(doc)
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = (position, fingerprint)
            return None
        if first[1] == fingerprint:
            return REPEAT
        w = self.where
        return (
            f"{self.id_field}: {key!r} of {w} {position} is also the {self.id_field} of {w} {first[0]}, with "
            f"different content ({w} {first[0]} was kept; {self.advice})"
        )


def _fingerprint(doc: Mapping[str, Any]) -> bytes:
    content = {k: v for k, v in doc.items() if k != "ingested_at"}
    text = json.dumps(jsonable(content), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def partial_failure(exc: InputFileError, report: LogIngestReport, rejects: RejectsWriter, what: str) -> InputFileError:
    """``exc`` (a file that stopped parsing part way) with what was stored before it and how to go on; the
    report (``as_dict()``) rides along as ``report``. ``what`` names the documents ("events", "searches")."""
    report.rejected = rejects.count
    report.rejects_path = str(rejects.path) if rejects.count else None
    report.error = str(exc)
    parts = [f"{report.stored} stored into {report.alias}"]
    if report.already_stored:
        parts.append(f"{report.already_stored} already stored")
    if report.duplicates_in_file:
        parts.append(f"{report.duplicates_in_file} identical repeat(s)")
    parts.append(f"{report.rejected} rejected (reasons in {report.rejects_path})" if report.rejected else "0 rejected")
    failure = extended(
        exc,
        f"{report.read} row(s) were read before it: {', '.join(parts)}; nothing after row {report.read} was stored.",
        f"{fix_the_input(exc)} and run the same command again: {what} already stored are recognised by their id "
        "and not stored twice.",
    )
    assert isinstance(failure, InputFileError)
    failure.report = report.as_dict()
    return failure


def now_ms() -> str:
    """Now as the stores write ``ingested_at`` (UTC, milliseconds)."""
    return format_timestamp(datetime.now(timezone.utc))


# --- reading -----------------------------------------------------------------------------------------
def time_filters(since_ingested: datetime | None, before: datetime | None) -> list[dict[str, Any]]:
    """Range filters: stored strictly after ``since_ingested``, happened strictly before ``before``."""
    filters: list[dict[str, Any]] = []
    if since_ingested is not None:
        filters.append({"range": {"ingested_at": {"gt": format_timestamp(since_ingested)}}})
    if before is not None:
        filters.append({"range": {"timestamp": {"lt": format_timestamp(before)}}})
    return filters


def read_pit(
    client: OpenSearch,
    alias: str,
    query: Mapping[str, Any],
    sort: Sequence[Mapping[str, Any]],
    *,
    page_size: int = 5000,
    what: str = "events",
) -> list[dict[str, Any]]:
    """Every ``_source`` matching ``query`` behind ``alias``, paged from one point in time with ``search_after``.

    ``sort`` must be unique per document (the tiebreaker search_after needs; a keyword id works on every
    engine, unlike ``_shard_doc``). The point in time is deleted at the end, also after an error.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    with engine_errors(f"opening a point in time on {alias}"):
        pit_id = str(client.create_pit(index=alias, params={"keep_alive": PIT_KEEP_ALIVE})["pit_id"])
    docs: list[dict[str, Any]] = []
    try:
        search_after: list[Any] | None = None
        with engine_errors(f"reading {what} from {alias}"):
            while True:
                body: dict[str, Any] = {
                    "size": page_size,
                    "query": dict(query),
                    "sort": list(sort),
                    "pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
                    "track_total_hits": False,
                }
                if search_after is not None:
                    body["search_after"] = search_after
                page = client.search(body=body)
                pit_id = str(page.get("pit_id") or pit_id)  # the engine may hand out a new id: always use the latest
                hits = page["hits"]["hits"]
                docs.extend(hit["_source"] for hit in hits)
                if len(hits) < page_size:
                    break
                search_after = hits[-1]["sort"]
    finally:
        with contextlib.suppress(Exception):  # it expires after PIT_KEEP_ALIVE anyway; the read result matters more
            client.delete_pit(body={"pit_id": [pit_id]})
    return docs


# --- erasure -----------------------------------------------------------------------------------------
def delete_by_user(client: OpenSearch, alias: str, user_id: str, what: str = "events") -> int:
    """Delete every document of ``user_id`` behind ``alias`` (right to erasure), refreshed so reads no longer
    see them. Returns how many were deleted (0 when there is no alias).

    Raises EngineError if the engine reports any failure, because a partial erasure must not look like a
    complete one.
    """
    if not month_indices(client, alias, what):
        return 0
    with engine_errors(f"deleting the {what} of user {user_id!r} from {alias}"):
        result = client.delete_by_query(
            index=alias,
            body={"query": {"term": {"user_id": user_id}}},
            params={"refresh": "true"},
            request_timeout=3600,
        )
    failures = result.get("failures") or []
    if failures:
        first = failures[0]
        raise EngineError(
            f"deleting the {what} of user {user_id!r} from {alias} failed for {len(failures)} document(s) "
            f"({result.get('deleted', 0)} deleted); first: {first.get('cause', first)}. Run it again."
        )
    return int(result.get("deleted", 0))


@dataclass
class RecordResult:
    """What :func:`record_events` did. ``rejected`` holds (position in the input, reasons) per refused event.

    ``already_stored`` also counts identical repeats within the same call (the first one is stored); a repeat
    of an id with other content is rejected, naming both positions.
    """

    accepted: int = 0
    already_stored: int = 0
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)
    #: The documents this call stored (``accepted`` of them; not the already stored ones), for the live
    #: profile update. Not part of :meth:`as_dict`.
    stored: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "already_stored": self.already_stored,
            "rejected": [{"index": i, "reasons": reasons} for i, reasons in self.rejected],
        }


def record_docs(
    client: OpenSearch,
    rows: Iterable[Mapping[str, Any]],
    months: MonthIndices,
    *,
    normalize: Callable[[Mapping[str, Any]], tuple[dict[str, Any] | None, list[str]]],
    id_field: str,
    label: str,
    what: str,
    check_alias: Callable[[], object],
    refresh: bool,
    chunk_size: int,
    max_retries: int,
    initial_backoff: float,
) -> RecordResult:
    """Validate and store documents sent by a running service (the shared body of ``record_events`` and
    ``record_impressions``): never raises for a bad row (each is reported with its position and every reason);
    identical repeats within the call count as already stored, a reused id with other content is rejected;
    engine problems raise our engine errors."""
    result = RecordResult()
    position_of: dict[str, int] = {}
    repeats = RepeatedIds(id_field, "item", f"give each {label} its own {id_field}")
    actions: list[dict[str, Any]] = []
    for position, row in enumerate(rows):
        if not isinstance(row, Mapping):
            result.rejected.append((position, [f"{label}: expected an object, got {type(row).__name__}"]))
            continue
        try:
            doc, reasons = normalize(row)
        except Exception as exc:  # a live API reports an odd row rather than failing the whole batch
            doc, reasons = None, [f"{label}: could not be validated ({type(exc).__name__}: {exc})"]
        if doc is None:
            result.rejected.append((position, reasons))
            continue
        key = str(doc[id_field])
        seen = repeats.see(key, doc, position)
        if seen == REPEAT:
            result.already_stored += 1
            continue
        if seen is not None:
            result.rejected.append((position, [seen]))
            continue
        position_of[key] = position
        doc["ingested_at"] = now_ms()
        actions.append({"_op_type": "create", "_index": "", "_id": key, "_source": doc})
    source_of = {str(a["_id"]): a["_source"] for a in actions}
    if actions:
        check_alias()  # a clear error if the alias name is taken by a concrete index
        for action in actions:
            action["_index"] = months.target(action["_source"]["timestamp"])
        for outcome, doc_id, item in bulk_create(
            client, actions, what=what, chunk_size=chunk_size, max_retries=max_retries, initial_backoff=initial_backoff
        ):
            if outcome == STORED:
                result.accepted += 1
                result.stored.append(source_of[doc_id])
            elif outcome == ALREADY:
                result.already_stored += 1
            else:
                result.rejected.append((position_of.get(doc_id, -1), [bulk_error_reason(item)]))
        if refresh:
            months.refresh()
    result.rejected.sort(key=lambda r: r[0])
    return result


@dataclass
class LogIngestReport:
    """What a file ingest of a time-series log (events, impressions) did; ``ok`` says whether to exit 0.

    ``read == stored + already_stored + duplicates_in_file + rejected``; ``rejected`` includes
    ``engine_rejected``.
    """

    source: str
    alias: str
    read: int = 0
    stored: int = 0
    already_stored: int = 0
    duplicates_in_file: int = 0
    rejected: int = 0
    engine_rejected: int = 0
    indices: list[str] = field(default_factory=list)
    created_indices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rejects_path: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    allow_rejects: bool = False
    error: str | None = None
    """Set when the ingest failed part way (the report then says what was done before the failure)."""

    @property
    def docs_per_second(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and (self.rejected == 0 or self.allow_rejects)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["docs_per_second"] = round(self.docs_per_second, 1)
        d["seconds"] = round(self.seconds, 3)
        d["ok"] = self.ok
        return d

    def finish(self, rejects: RejectsWriter, months: MonthIndices, started: float) -> None:
        """Fill in what every log ingest reports at the end (rejects file, indices touched, duration)."""
        self.rejected = rejects.count
        self.rejects_path = str(rejects.path) if rejects.count else None
        self.indices = sorted(months.ready)
        self.created_indices = sorted(months.created)
        self.seconds = time.monotonic() - started
