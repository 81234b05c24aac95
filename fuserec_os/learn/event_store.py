"""Behaviour events in the engine: monthly indices behind one alias; file ingest, live recording, reading, erasure.

Why one index per UTC month (``<alias>-YYYY.MM``): a year of events in one index makes every read, delete and
retention decision touch everything; months can be searched through the alias as one, and dropped as a unit.
Month indices are created on demand from ``mappings/events.json`` with the alias attached in the same request,
so an index is never visible without the alias or the other way round.

Why ``op_type: create`` with ``_id = event_id``: the id is deterministic (see :mod:`fuserec_os.learn.events`)
and an event always lands in the month of its own timestamp, so storing an event twice is answered 409 by the
engine and counted as ``already_stored``: re-ingesting a file or replaying a tracking batch stores no duplicates.

Nothing is dropped silently: invalid rows and engine refusals go to the rejects file with every reason; repeats
within one file, events already stored and events about products missing from the catalog are counted.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pandas as pd
from opensearchpy import OpenSearch, helpers
from opensearchpy import exceptions as osx
from tqdm import tqdm

from fuserec_os.engine.bulk import stream_bulk
from fuserec_os.engine.client import engine_errors, error_reason
from fuserec_os.errors import EngineError, IndexStateError, MappingError
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import estimate_rows, read_rows
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, default_rejects_path
from fuserec_os.learn.config import EventsConfig
from fuserec_os.learn.events import (
    DEFAULT_EVENTS_CONFIG,
    EVENT_FIELDS,
    events_frame,
    format_timestamp,
    normalize_event,
)

__all__ = [
    "EventIngestReport",
    "RecordResult",
    "delete_user_events",
    "ensure_month_index",
    "event_indices",
    "ingest_events",
    "month_index",
    "read_events",
    "record_events",
]

#: How long a point in time stays open between two pages of :func:`read_events`.
PIT_KEEP_ALIVE = "2m"
#: Unknown product ids quoted in a report (the count is always complete).
MAX_UNKNOWN_EXAMPLES = 5
# Sort for paging: timestamp, then event_id, unique, as the tiebreaker search_after needs. Not ``_shard_doc``:
# it came with Elasticsearch 7.12, after OpenSearch forked, so support varies by engine; osmem accepts it under a
# PIT but numbers documents per index (values repeat across monthly indices). A keyword sort works everywhere.
_READ_SORT = [{"timestamp": {"order": "asc"}}, {"event_id": {"order": "asc"}}]
_TERMS_CHUNK = 10_000  # ids per terms clause, well under index.max_terms_count (65536)

_STORED, _ALREADY, _REFUSED = "stored", "already_stored", "refused"


# --- indices -----------------------------------------------------------------------------------------
def month_index(alias: str, timestamp: str) -> str:
    """The concrete index of an event: ``<alias>-YYYY.MM`` from its UTC timestamp ("2024-05-..." -> 2024.05)."""
    return f"{alias}-{timestamp[0:4]}.{timestamp[5:7]}"


def event_indices(client: OpenSearch, alias: str) -> list[str]:
    """Concrete indices behind the events alias, oldest month first ([] when there is no alias yet)."""
    with engine_errors(f"reading alias {alias}"):
        if client.indices.exists_alias(name=alias):
            return sorted(client.indices.get_alias(name=alias))
        if client.indices.exists(index=alias):
            raise IndexStateError(
                f"'{alias}' is a concrete index, not the events alias, so monthly event indices cannot be put "
                f"behind it. Delete or rename '{alias}', or use another FUSEREC_INDEX_PREFIX."
            )
    return []


def ensure_month_index(client: OpenSearch, spec: MappingSpec, alias: str, name: str) -> bool:
    """Make sure ``name`` exists and is behind ``alias``; create it from ``spec`` if needed. Returns created.

    Creation and alias are one request. Losing a creation race to another writer is fine (the index is then
    used). After any other failure, an index this call may have made is removed, but only while it is still
    empty: an events index with documents is never deleted by cleanup code.
    """
    with engine_errors(f"checking events index {name}"):
        if client.indices.exists(index=name):
            _attach(client, alias, name)
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
            with engine_errors(f"creating events index {name}"):
                raise
        if _error_type(exc) == "invalid_alias_name_exception":
            raise IndexStateError(
                f"cannot create {name} behind alias {alias}: {error_reason(exc)}. Delete or rename the index "
                f"called '{alias}', or use another FUSEREC_INDEX_PREFIX."
            ) from exc
        raise MappingError(f"{spec.path}: the engine rejected the events mapping: {error_reason(exc)}") from exc
    except Exception:
        _remove_if_empty(client, name)
        raise
    return True


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


class _Months:
    """Month indices of one run: each checked/created once, and the ones written to remembered for refresh."""

    def __init__(self, client: OpenSearch, spec: MappingSpec, alias: str) -> None:
        self.client, self.spec, self.alias = client, spec, alias
        self.ready: set[str] = set()
        self.created: set[str] = set()

    def target(self, timestamp: str) -> str:
        name = month_index(self.alias, timestamp)
        if name not in self.ready:
            if ensure_month_index(self.client, self.spec, self.alias, name):
                self.created.add(name)
            self.ready.add(name)
        return name

    def refresh(self) -> None:
        if self.ready:
            with engine_errors(f"refreshing {', '.join(sorted(self.ready))}"):
                self.client.indices.refresh(index=",".join(sorted(self.ready)))


def _bulk_create(
    client: OpenSearch,
    actions: Iterable[dict[str, Any]],
    *,
    what: str,
    chunk_size: int,
    max_retries: int,
    initial_backoff: float,
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Send ``create`` actions; yield (outcome, event id, bulk item) per event, outcome stored/already/refused.

    429s are retried with backoff (per document and whole requests); an engine that cannot be reached raises
    our EngineUnavailableError rather than turning every document into a reject.
    """
    for ok, result in stream_bulk(
        client, actions, what=what, chunk_size=chunk_size, max_retries=max_retries, initial_backoff=initial_backoff
    ):
        event_id = str(result.get("_id"))
        if ok:
            yield _STORED, event_id, result
        elif result.get("status") == 409:
            yield _ALREADY, event_id, result
        else:
            yield _REFUSED, event_id, result


def _now_ms() -> str:
    return format_timestamp(datetime.now(timezone.utc))


# --- file ingest -------------------------------------------------------------------------------------
@dataclass
class EventIngestReport:
    """What an events ingest did; ``ok`` says whether the CLI should exit 0.

    ``read == stored + already_stored + duplicates_in_file + rejected``; ``rejected`` includes
    ``engine_rejected``. ``catalog_products`` is how many product ids the unknown-product check used
    (None: not checked, because no products alias was given or it does not exist).
    """

    source: str
    alias: str
    read: int = 0
    stored: int = 0
    already_stored: int = 0
    duplicates_in_file: int = 0
    rejected: int = 0
    engine_rejected: int = 0
    unknown_products: int = 0
    unknown_product_examples: list[str] = field(default_factory=list)
    catalog_products: int | None = None
    indices: list[str] = field(default_factory=list)
    created_indices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rejects_path: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    allow_rejects: bool = False

    @property
    def docs_per_second(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.rejected == 0 or self.allow_rejects

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["docs_per_second"] = round(self.docs_per_second, 1)
        d["seconds"] = round(self.seconds, 3)
        d["ok"] = self.ok
        return d


def catalog_product_ids(client: OpenSearch, products_alias: str) -> set[str] | None:
    """Every product id behind ``products_alias`` (ids only, no sources), or None when it does not exist."""
    with engine_errors(f"reading product ids of {products_alias}"):
        if not client.indices.exists(index=products_alias):
            return None
        return {
            str(hit["_id"])
            for hit in helpers.scan(
                client, index=products_alias, query={"_source": False, "query": {"match_all": {}}}, size=5000
            )
        }


def ingest_events(
    client: OpenSearch,
    source: str | Path,
    spec: MappingSpec,
    alias: str,
    *,
    cfg: EventsConfig = DEFAULT_EVENTS_CONFIG,
    products_alias: str | None = None,
    column_map: Mapping[str, str] | None = None,
    rejects_path: str | Path | None = None,
    allow_rejects: bool = False,
    chunk_size: int = 1000,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    progress: bool = True,
    progress_file: IO[str] | None = None,
) -> EventIngestReport:
    """Validate an events file and store its events in monthly indices behind ``alias`` (see the module doc).

    ``column_map`` is ``{our_field: their_column}`` (from ``parse_column_map(..., allowed=EVENT_FIELDS)``).
    With ``products_alias`` (existing), events about products not in the catalog are counted and quoted
    (up to 5 ids) but stored anyway: the catalog may simply be older than the events.
    """
    started = time.monotonic()
    source = Path(source)
    reader = read_rows(source, column_map)
    event_indices(client, alias)  # fails early, naming the fix, if the alias name is taken by an index
    rejects = RejectsWriter(Path(rejects_path) if rejects_path else default_rejects_path(source), "event_id")
    rejects.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    report = EventIngestReport(
        source=str(source),
        alias=alias,
        allow_rejects=allow_rejects,
        ignored_columns=sorted(set(reader.columns) - set(EVENT_FIELDS)),
    )
    catalog = catalog_product_ids(client, products_alias) if products_alias else None
    report.catalog_products = len(catalog) if catalog is not None else None
    months = _Months(client, spec, alias)
    bar = tqdm(
        total=reader.total_rows or estimate_rows(source, reader.format),
        unit="rows",
        desc=f"ingest {source.name}",
        disable=not progress,
        file=progress_file or sys.stderr,
        mininterval=0.2,
    )
    seen: set[str] = set()
    examples: dict[str, None] = {}
    # Events sent but not yet acknowledged, by id (unique: repeats are not sent), for reporting refusals.
    in_flight: dict[str, tuple[int, dict[str, Any]]] = {}

    def actions() -> Iterator[dict[str, Any]]:
        for row_number, row in reader:
            report.read += 1
            bar.update(1)
            doc, reasons = normalize_event(row, cfg)
            if doc is None:
                rejects.add(row_number, row, reasons)
                continue
            event_id = doc["event_id"]
            if event_id in seen:
                report.duplicates_in_file += 1
                continue
            seen.add(event_id)
            if catalog is not None and doc["product_id"] not in catalog:
                report.unknown_products += 1
                if len(examples) < MAX_UNKNOWN_EXAMPLES:
                    examples[doc["product_id"]] = None
            doc["ingested_at"] = _now_ms()
            in_flight[event_id] = (row_number, row)
            yield {"_op_type": "create", "_index": months.target(doc["timestamp"]), "_id": event_id, "_source": doc}

    try:
        for outcome, event_id, result in _bulk_create(
            client,
            actions(),
            what=f"storing events into {alias}",
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
        ):
            row_number, row = in_flight.pop(event_id, (0, {}))
            if outcome == _STORED:
                report.stored += 1
            elif outcome == _ALREADY:
                report.already_stored += 1
            else:
                report.engine_rejected += 1
                rejects.add(row_number or None, row, [bulk_error_reason(result)], record_id=event_id)
        months.refresh()
    finally:
        bar.close()
        rejects.close()
    report.rejected = rejects.count
    report.rejects_path = str(rejects.path) if rejects.count else None
    report.unknown_product_examples = list(examples)
    report.indices = sorted(months.ready)
    report.created_indices = sorted(months.created)
    report.seconds = time.monotonic() - started
    return report


# --- live recording ----------------------------------------------------------------------------------
@dataclass
class RecordResult:
    """What :func:`record_events` did. ``rejected`` holds (position in the input, reasons) per refused event.

    ``already_stored`` also counts repeats within the same call (the first one is stored).
    """

    accepted: int = 0
    already_stored: int = 0
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "already_stored": self.already_stored,
            "rejected": [{"index": i, "reasons": reasons} for i, reasons in self.rejected],
        }


def record_events(
    client: OpenSearch,
    events: Iterable[Mapping[str, Any]],
    spec: MappingSpec,
    alias: str,
    *,
    cfg: EventsConfig = DEFAULT_EVENTS_CONFIG,
    refresh: bool = False,
    chunk_size: int = 1000,
    max_retries: int = 3,
    initial_backoff: float = 0.5,
) -> RecordResult:
    """Validate and store events sent by an application (the tracking API); the same rules as a file ingest.

    Never raises for a bad event: each one is reported in ``rejected`` with its position and every reason.
    Engine problems (unreachable, refusing a request as a whole) raise our EngineUnavailableError/EngineError.
    ``refresh=True`` makes the events searchable before returning (slower; for tests and tools).
    """
    result = RecordResult()
    months = _Months(client, spec, alias)
    position_of: dict[str, int] = {}
    actions: list[dict[str, Any]] = []
    for position, event in enumerate(events):
        if not isinstance(event, Mapping):
            result.rejected.append((position, [f"event: expected an object, got {type(event).__name__}"]))
            continue
        try:
            doc, reasons = normalize_event(event, cfg)
        except Exception as exc:  # a live API reports an odd event rather than failing the whole batch
            doc, reasons = None, [f"event: could not be validated ({type(exc).__name__}: {exc})"]
        if doc is None:
            result.rejected.append((position, reasons))
            continue
        if doc["event_id"] in position_of:
            result.already_stored += 1
            continue
        position_of[doc["event_id"]] = position
        doc["ingested_at"] = _now_ms()
        actions.append({"_op_type": "create", "_index": "", "_id": doc["event_id"], "_source": doc})
    if actions:
        event_indices(client, alias)  # a clear error if the alias name is taken by a concrete index
        for action in actions:
            action["_index"] = months.target(action["_source"]["timestamp"])
        for outcome, event_id, item in _bulk_create(
            client,
            actions,
            what=f"recording events into {alias}",
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
        ):
            if outcome == _STORED:
                result.accepted += 1
            elif outcome == _ALREADY:
                result.already_stored += 1
            else:
                result.rejected.append((position_of.get(event_id, -1), [bulk_error_reason(item)]))
        if refresh:
            months.refresh()
    result.rejected.sort(key=lambda r: r[0])
    return result


# --- reading -----------------------------------------------------------------------------------------
def read_events(
    client: OpenSearch,
    alias: str,
    *,
    since_ingested: datetime | None = None,
    before: datetime | None = None,
    user_ids: Collection[str] | None = None,
    page_size: int = 5000,
) -> pd.DataFrame:
    """Events behind ``alias`` as an :func:`~fuserec_os.learn.events.events_frame` (sorted by time, event id).

    ``since_ingested``: only events stored strictly after it (the incremental profile update's watermark; on a
    real cluster a document becomes visible up to a refresh interval after its ``ingested_at``, so keep the
    watermark a little behind the newest value read). ``before``: only events that happened strictly before it.
    ``user_ids``: only these users (an empty collection reads nothing). Naive datetimes are taken as UTC.

    Pages are read from one point in time with ``search_after``, so events written meanwhile neither shift
    nor duplicate pages; the point in time is deleted at the end, also after an error.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    if isinstance(user_ids, str):
        raise ValueError(f"user_ids must be a collection of user ids, not one string (use [{user_ids!r}])")
    if (user_ids is not None and len(user_ids) == 0) or not event_indices(client, alias):
        return events_frame([])
    query = _read_query(since_ingested, before, user_ids)
    with engine_errors(f"opening a point in time on {alias}"):
        pit_id = str(client.create_pit(index=alias, params={"keep_alive": PIT_KEEP_ALIVE})["pit_id"])
    docs: list[dict[str, Any]] = []
    try:
        search_after: list[Any] | None = None
        with engine_errors(f"reading events from {alias}"):
            while True:
                body: dict[str, Any] = {
                    "size": page_size,
                    "query": query,
                    "sort": _READ_SORT,
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
    return events_frame(docs)


def _read_query(
    since_ingested: datetime | None, before: datetime | None, user_ids: Collection[str] | None
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if since_ingested is not None:
        filters.append({"range": {"ingested_at": {"gt": format_timestamp(since_ingested)}}})
    if before is not None:
        filters.append({"range": {"timestamp": {"lt": format_timestamp(before)}}})
    if user_ids is not None:
        ids = sorted({str(u) for u in user_ids})
        clauses = [{"terms": {"user_id": ids[i : i + _TERMS_CHUNK]}} for i in range(0, len(ids), _TERMS_CHUNK)]
        filters.append(clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}})
    if not filters:
        return {"match_all": {}}
    return {"bool": {"filter": filters}}


# --- erasure -----------------------------------------------------------------------------------------
def delete_user_events(client: OpenSearch, alias: str, user_id: str) -> int:
    """Delete every event of ``user_id`` (right to erasure), refreshed so reads no longer see them.

    Returns how many were deleted. Raises EngineError if the engine reports any failure, because a partial
    erasure must not look like a complete one.
    """
    if not event_indices(client, alias):
        return 0
    with engine_errors(f"deleting the events of user {user_id!r} from {alias}"):
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
            f"deleting the events of user {user_id!r} from {alias} failed for {len(failures)} document(s) "
            f"({result.get('deleted', 0)} deleted); first: {first.get('cause', first)}. Run it again."
        )
    return int(result.get("deleted", 0))
