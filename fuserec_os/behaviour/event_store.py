"""Behaviour events in the engine: monthly indices behind one alias; file ingest, live recording, reading, erasure.

Why one index per UTC month (``<alias>-YYYY.MM``): a year of events in one index makes every read, delete and
retention decision touch everything; months can be searched through the alias as one, and dropped as a unit.
Month indices are created on demand from ``mappings/events.json`` with the alias attached in the same request,
so an index is never visible without the alias or the other way round. The machinery is shared with the search
log (:mod:`fuserec_os.behaviour.timeseries`).

Why ``op_type: create`` with ``_id = event_id``: the id is deterministic (see :mod:`fuserec_os.behaviour.events`)
and an event always lands in the month of its own timestamp, so storing an event twice is answered 409 by the
engine and counted as ``already_stored``: re-ingesting a file or replaying a tracking batch stores no duplicates.

Nothing is dropped silently: invalid rows and engine refusals go to the rejects file with every reason; identical
repeats within one file, events already stored and events about products missing from the catalog are counted.
An event_id reused within a file for other content (a click, then a purchase) is rejected, naming both rows.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
from opensearchpy import OpenSearch, helpers

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.events import (
    DEFAULT_EVENTS_CONFIG,
    EVENT_FIELDS,
    EVENT_JOINERS,
    events_frame,
    normalize_event,
)
from fuserec_os.behaviour.timeseries import (
    ALREADY,
    PIT_KEEP_ALIVE,
    REPEAT,
    STORED,
    LogIngestReport,
    MonthIndices,
    RecordResult,
    RepeatedIds,
    bulk_create,
    delete_by_user,
    month_index,
    month_indices,
    now_ms,
    partial_failure,
    read_pit,
    record_docs,
    time_filters,
)
from fuserec_os.behaviour.timeseries import ensure_month_index as _ensure_month_index
from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import InputFileError
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import check_constants, progress_bar, read_rows
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, default_rejects_path
from fuserec_os.index.validate import MAX_PRICE

__all__ = [
    "PIT_KEEP_ALIVE",
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

#: Unknown product ids quoted in a report (the count is always complete).
MAX_UNKNOWN_EXAMPLES = 5
# Sort for paging: timestamp, then event_id, unique, as the tiebreaker search_after needs. Not ``_shard_doc``:
# it came with Elasticsearch 7.12, after OpenSearch forked, so support varies by engine; osmem accepts it under a
# PIT but numbers documents per index (values repeat across monthly indices). A keyword sort works everywhere.
_READ_SORT = [{"timestamp": {"order": "asc"}}, {"event_id": {"order": "asc"}}]
_TERMS_CHUNK = 10_000  # ids per terms clause, well under index.max_terms_count (65536)
_WHAT = "events"


# --- indices -----------------------------------------------------------------------------------------
def event_indices(client: OpenSearch, alias: str) -> list[str]:
    """Concrete indices behind the events alias, oldest month first ([] when there is no alias yet)."""
    return month_indices(client, alias, _WHAT)


def ensure_month_index(client: OpenSearch, spec: MappingSpec, alias: str, name: str) -> bool:
    """Make sure the events index ``name`` exists and is behind ``alias`` (see
    :func:`fuserec_os.behaviour.timeseries.ensure_month_index`). Returns created."""
    return _ensure_month_index(client, spec, alias, name, _WHAT)


# --- file ingest -------------------------------------------------------------------------------------
@dataclass
class EventIngestReport(LogIngestReport):
    """What an events ingest did (see :class:`LogIngestReport`). ``catalog_products`` is how many product ids
    the unknown-product check used (None: not checked, because no products alias was given or it does not exist).
    """

    unknown_products: int = 0
    unknown_product_examples: list[str] = field(default_factory=list)
    catalog_products: int | None = None


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
    constants: Mapping[str, str] | None = None,
    rejects_path: str | Path | None = None,
    allow_rejects: bool = False,
    chunk_size: int = 1000,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    progress: bool = True,
    progress_file: IO[str] | None = None,
    max_price: float = MAX_PRICE,
) -> EventIngestReport:
    """Validate an events file and store its events in monthly indices behind ``alias`` (see the module doc).

    ``column_map`` is ``{our_field: their_column}`` (from ``parse_column_map(..., allowed=EVENT_FIELDS)``);
    ``query`` may take several columns joined with ``+``. ``constants`` (``{field: value}``, the CLI's ``--set``)
    fills a field the file has no column for (``type: click``), checked like a cell before anything is read.
    With ``products_alias`` (existing), events about products not in the catalog are counted and quoted
    (up to 5 ids) but stored anyway: the catalog may simply be older than the events. A price above
    ``max_price`` (default 10,000,000) is rejected. A file that stops parsing part way raises an
    InputFileError saying what was stored before it.
    """
    started = time.monotonic()
    source = Path(source)
    consts = dict(constants or {})
    check_constants(consts, lambda row: normalize_event(row, cfg, max_price=max_price))
    reader = read_rows(source, column_map, joiners=EVENT_JOINERS, constants=consts)
    event_indices(client, alias)  # fails early, naming the fix, if the alias name is taken by an index
    rejects = RejectsWriter(Path(rejects_path) if rejects_path else default_rejects_path(source), "event_id")
    rejects.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    report = EventIngestReport(
        source=str(source),
        alias=alias,
        allow_rejects=allow_rejects,
        ignored_columns=reader.unknown_columns(EVENT_FIELDS),
    )
    catalog = catalog_product_ids(client, products_alias) if products_alias else None
    report.catalog_products = len(catalog) if catalog is not None else None
    months = MonthIndices(client, spec, alias, _WHAT)
    bar = progress_bar(reader, source, progress, progress_file)
    repeats = RepeatedIds(
        "event_id", "row", "give each event its own event_id, or leave the column empty to derive one from the content"
    )
    examples: dict[str, None] = {}
    # Events sent but not yet acknowledged, by id (unique: repeats are not sent), for reporting refusals.
    in_flight: dict[str, tuple[int, dict[str, Any]]] = {}

    def actions() -> Iterator[dict[str, Any]]:
        for row_number, row in reader:
            report.read += 1
            bar.update(1)
            doc, reasons = normalize_event(row, cfg, max_price=max_price)
            if doc is None:
                rejects.add(row_number, row, reasons)
                continue
            event_id = doc["event_id"]
            seen = repeats.see(event_id, doc, row_number)
            if seen == REPEAT:
                report.duplicates_in_file += 1
                continue
            if seen is not None:
                rejects.add(row_number, row, [seen], record_id=event_id)
                continue
            if catalog is not None and doc["product_id"] not in catalog:
                report.unknown_products += 1
                if len(examples) < MAX_UNKNOWN_EXAMPLES:
                    examples[doc["product_id"]] = None
            doc["ingested_at"] = now_ms()
            in_flight[event_id] = (row_number, row)
            yield {"_op_type": "create", "_index": months.target(doc["timestamp"]), "_id": event_id, "_source": doc}

    try:
        for outcome, event_id, result in bulk_create(
            client,
            actions(),
            what=f"storing events into {alias}",
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
        ):
            row_number, row = in_flight.pop(event_id, (0, {}))
            if outcome == STORED:
                report.stored += 1
            elif outcome == ALREADY:
                report.already_stored += 1
            else:
                report.engine_rejected += 1
                rejects.add(row_number or None, row, [bulk_error_reason(result)], record_id=event_id)
        months.refresh()
    except InputFileError as exc:
        raise partial_failure(exc, report, rejects, "events") from exc
    finally:
        bar.close()
        rejects.close()
    report.unknown_product_examples = list(examples)
    report.finish(rejects, months, started)
    return report


# --- live recording ----------------------------------------------------------------------------------


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
    applied_live: bool = False,
) -> RecordResult:
    """Validate and store events sent by an application (the tracking API); the same rules as a file ingest.

    Never raises for a bad event: each one is reported in ``rejected`` with its position and every reason.
    Engine problems (unreachable, refusing a request as a whole) raise our EngineUnavailableError/EngineError.
    ``refresh=True`` makes the events searchable before returning (slower; for tests and tools).
    ``applied_live=True`` stores each event with ``applied_live: true``: the caller folds the stored ones
    (``RecordResult.stored``) into the profiles and statistics itself (:mod:`fuserec_os.profiles.live`), so the
    profile job skips them.
    """

    def normalize(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        doc, reasons = normalize_event(row, cfg)
        if doc is not None and applied_live:
            doc["applied_live"] = True
        return doc, reasons

    return record_docs(
        client,
        events,
        MonthIndices(client, spec, alias, _WHAT),
        normalize=normalize,
        id_field="event_id",
        label="event",
        what=f"recording events into {alias}",
        check_alias=lambda: event_indices(client, alias),
        refresh=refresh,
        chunk_size=chunk_size,
        max_retries=max_retries,
        initial_backoff=initial_backoff,
    )


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
    """Events behind ``alias`` as an :func:`~fuserec_os.behaviour.events.events_frame` (sorted by time, event id).

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
    return events_frame(read_pit(client, alias, query, _READ_SORT, page_size=page_size, what=_WHAT))


def _read_query(
    since_ingested: datetime | None, before: datetime | None, user_ids: Collection[str] | None
) -> dict[str, Any]:
    filters = time_filters(since_ingested, before)
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
    return delete_by_user(client, alias, user_id, _WHAT)
