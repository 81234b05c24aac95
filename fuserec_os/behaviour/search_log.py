"""The search log (impressions) in the engine: what each search showed, in order; file ingest, live recording,
reading, erasure.

One impression is one search request: who searched (user, session), when, the query, and the product ids shown
in display order (rank = index + 1). A search that found nothing is a search too: it is logged with an empty
list (``n_shown`` 0), so an experiment's report counts it (a variant that finds nothing more often must not look
better for it); it adds no candidate and no examination anywhere the log is read. Training takes its candidates
and the position-debiased query statistics (examinations: how likely each shown product was even looked at) from
it; the stored query statistics that serving reads are built from the same log (:mod:`fuserec_os.profiles.jobs`),
so training and serving see the same data.

Storage is the events' (:mod:`fuserec_os.behaviour.timeseries`): one index per UTC month behind the ``searches``
alias, from ``mappings/searches.json``. The document id is the ``request_id`` and documents are written with
``op_type: create``, so re-ingesting a file or replaying a batch stores nothing twice (``already_stored``), as
long as a request keeps its timestamp's month. ``product_ids`` is a keyword array: ``_source`` keeps its order.

Nothing is dropped silently: invalid rows and engine refusals go to the rejects file with every reason; identical
repeats of a request within one file are counted (the first one is stored), and a request id reused with other
content is rejected, naming both rows. A search shows one page of results, so a row naming more than
:data:`MAX_SHOWN` products (default 1,000; ``max_shown=``, the CLI's ``--max-shown``) is rejected as a broken export.

Empty or missing ``product_ids``: an explicit empty value is an empty page (``[]`` in JSON or Parquet, ``"[]"`` or
an empty/blank cell in CSV, where ``"a|b"`` is the list form); a null or an absent ``product_ids`` (no such
column, ``null`` in JSON) is an error naming the row and the field, as for any required field. The ingest report
counts the stored empty searches (``empty``), so a file whose product_ids column came out blank is visible.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.behaviour.events import check_timestamp, normalize_query, parse_query
from fuserec_os.behaviour.timeseries import (
    ALREADY,
    REPEAT,
    STORED,
    LogIngestReport,
    MonthIndices,
    RecordResult,
    RepeatedIds,
    bulk_create,
    delete_by_user,
    month_indices,
    now_ms,
    partial_failure,
    read_pit,
    record_docs,
    time_filters,
)
from fuserec_os.errors import InputFileError
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import progress_bar, read_rows
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, default_rejects_path
from fuserec_os.index.validate import (
    PARSE_ERROR_KEY,
    InvalidValue,
    is_missing,
    parse_identifier,
    show_value,
)

__all__ = [
    "IMPRESSION_COLUMNS",
    "IMPRESSION_FIELDS",
    "MAX_SHOWN",
    "REQUIRED_IMPRESSION_FIELDS",
    "ImpressionIngestReport",
    "delete_user_impressions",
    "impressions_frame",
    "ingest_impressions",
    "normalize_impression",
    "read_impressions",
    "record_impressions",
    "search_indices",
]

#: Input columns we understand; anything else is ignored (and reported once per file). ``experiment``,
#: ``variant`` and ``teams`` (interleaving: the variant that drafted each shown product, parallel to
#: ``product_ids``) say the search was served under an experiment (:mod:`fuserec_os.experiments`).
IMPRESSION_FIELDS: tuple[str, ...] = (
    "request_id",
    "user_id",
    "session_id",
    "timestamp",
    "query",
    "product_ids",
    "experiment",
    "variant",
    "teams",
)

#: Without these an impression says nothing about what whom was shown when (``product_ids`` may be an explicit
#: empty list: a search that found nothing; see the module doc).
REQUIRED_IMPRESSION_FIELDS: tuple[str, ...] = ("request_id", "user_id", "timestamp", "product_ids")

#: Columns of :func:`impressions_frame`, in order, with their dtypes (product_ids holds lists).
IMPRESSION_COLUMNS: dict[str, str] = {
    "request_id": "str",
    "user_id": "str",
    "session_id": "object",
    "timestamp": "datetime64[ns, UTC]",
    "query": "object",
    "query_norm": "object",
    "product_ids": "object",
    "ingested_at": "datetime64[ns, UTC]",
    "experiment": "object",
    "variant": "object",
    "teams": "object",
}

#: Default cap on the product ids of one logged search: one row is one page of results, not the catalog.
MAX_SHOWN = 1000

_WHAT = "impressions"
_READ_SORT = [{"timestamp": {"order": "asc"}}, {"request_id": {"order": "asc"}}]
_EXPECT_IDS = 'expected a list of product ids in the order shown, e.g. ["SKU-1", "SKU-2"], or "SKU-1|SKU-2"'
_MISSING_IDS = "required, missing or null (a search that showed nothing is an empty list: [] or an empty cell)"
_FIELD_ORDER = {name: i for i, name in enumerate(IMPRESSION_FIELDS)}


# --- normalisation (pure) ----------------------------------------------------------------------------
def _is_empty_list(value: Any) -> bool:
    """An explicit empty list of a list-valued column: ``[]`` (JSON, Parquet), or text that is blank or ``[]``
    (CSV). A null is not one: it is a missing value."""
    if isinstance(value, str):
        text = value.strip()
        return not text or (text.startswith("[") and text[1:].strip() == "]")
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return False


def _parse_id(example: str) -> Callable[[Any], str | None]:
    return lambda value: parse_identifier(value, example)


def _as_items(value: Any, expect: str) -> list[Any]:
    """The entries of a list-valued column: a list (JSON, Parquet), or text "a|b|c" or a JSON array (CSV);
    ``expect`` says what would be valid in the error."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return text.split("|")
        try:
            items = json.loads(text)
        except RecursionError:
            raise InvalidValue(f"{show_value(value)} is JSON nested too deeply ({expect})") from None
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"{show_value(value)} is not a valid JSON array ({exc.msg}; {expect})") from None
        if not isinstance(items, list):
            raise InvalidValue(f"{show_value(value)} is not a list ({expect})")
        return items
    if isinstance(value, np.ndarray):
        return list(value.tolist())
    if not isinstance(value, (list, tuple)):
        raise InvalidValue(f"{show_value(value)} is not a list ({expect})")
    return list(value)


def _parse_product_ids(value: Any, max_shown: int = MAX_SHOWN) -> list[str]:
    """Product ids in the order shown: a list (JSON, Parquet), or text "a|b|c" or a JSON array (CSV); at most
    ``max_shown`` of them; an explicit empty list (:func:`_is_empty_list`) is a search that showed nothing."""
    if _is_empty_list(value):
        return []
    items = _as_items(value, _EXPECT_IDS)
    if len(items) > max_shown:
        raise InvalidValue(
            f"{len(items)} ids, at most {max_shown} per search (one row is one page of results; raise the limit "
            "with --max-shown if your pages are longer)"
        )
    out: list[str] = []
    problems: list[str] = []
    for rank, item in enumerate(items, start=1):
        try:
            pid = None if is_missing(item) else parse_identifier(item, "SKU-123")
        except InvalidValue as exc:
            problems.append(f"rank {rank}: {exc}")
            continue
        if pid is None:
            problems.append(f"rank {rank}: empty product id")
            continue
        out.append(pid)
    if problems:
        raise InvalidValue("; ".join(problems) + " (every shown product needs its id, or the ranks shift)")
    return out


def _parse_teams(value: Any) -> list[str]:
    """The team of each shown product (a variant name, or empty: drafted by no team), like product_ids: a list,
    or text "a|b|c" or a JSON array. Empty entries stay (positions must line up with product_ids); an explicit
    empty list is no teams (an interleaved search that showed nothing)."""
    if _is_empty_list(value):
        return []
    items = _as_items(value, "expected the variant of each shown product")
    out: list[str] = []
    for rank, item in enumerate(items, start=1):
        if is_missing(item) or item == "":
            out.append("")
            continue
        try:
            out.append(parse_identifier(item, "control") or "")
        except InvalidValue as exc:
            raise InvalidValue(f"rank {rank}: {exc}") from None
    return out


#: List-valued fields, where an explicit empty list (a blank cell) is a value, not a missing one.
_LIST_FIELDS = frozenset({"product_ids", "teams"})

# field -> parser (product_ids: see normalize_impression, for its cap)
_PARSERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("request_id", _parse_id("req-9")),
    ("user_id", _parse_id("u-42")),
    ("session_id", _parse_id("s-42")),
    ("query", parse_query),
    ("product_ids", _parse_product_ids),
    ("experiment", _parse_id("mlp-vs-engine")),
    ("variant", _parse_id("treatment")),
    ("teams", _parse_teams),
)


def normalize_impression(
    row: Mapping[str, Any], now: datetime | None = None, *, max_shown: int = MAX_SHOWN
) -> tuple[dict[str, Any] | None, list[str]]:
    """Turn one input row into a search-log document, or explain every reason it cannot be one.

    Returns ``(doc, [])`` or ``(None, reasons)``. Required: ``request_id`` (the document id), ``user_id``,
    ``timestamp`` (parsed like an event's: ISO 8601 with any offset or epoch seconds/ms, stored as UTC
    milliseconds, at most a day in the future) and ``product_ids`` (a list, or text ``"a|b|c"`` or a JSON
    array; every item must be an id; at most ``max_shown``, default :data:`MAX_SHOWN`). An explicit empty
    ``product_ids`` (``[]``, ``"[]"``, a blank cell) is a search that found nothing: valid, ``n_shown`` 0; a
    null or absent one is an error ("required, missing or null"). Optional:
    ``session_id``, ``query`` (whitespace collapsed; adds ``query_norm``), and for a search served under an
    experiment ``experiment`` with ``variant`` (A/B) or ``teams`` (interleaving: one variant name per shown
    product, empty for a product no team drafted; an empty list for an interleaved search that showed nothing).
    An empty ``teams`` is kept only there: elsewhere (a blank CSV cell of an A/B row) it is left out. The doc
    also gets ``n_shown``; absent optional fields are left out.
    """
    parse_error = row.get(PARSE_ERROR_KEY)
    if parse_error is not None:
        return None, [f"row: could not be parsed ({parse_error})"]
    doc: dict[str, Any] = {}
    reasons: list[str] = []
    for name, parse in _PARSERS:
        raw = row.get(name)
        if is_missing(raw) and not (name in _LIST_FIELDS and _is_empty_list(raw)):
            continue
        try:
            value = _parse_product_ids(raw, max_shown) if name == "product_ids" else parse(raw)
        except InvalidValue as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if value is not None:
            doc[name] = value
    check_timestamp(row.get("timestamp"), now, doc, reasons)
    for name in REQUIRED_IMPRESSION_FIELDS:
        if name not in doc and not any(r.startswith(f"{name}:") for r in reasons):
            reasons.append(f"{name}: {_MISSING_IDS if name == 'product_ids' else 'required, missing or empty'}")
    if doc.get("teams") == [] and not ("experiment" in doc and "variant" not in doc and doc.get("product_ids") == []):
        del doc["teams"]  # a blank teams cell is no teams, except for an interleaved search that showed nothing
    _check_experiment(doc, reasons)
    if reasons:
        return None, sorted(reasons, key=lambda r: _FIELD_ORDER.get(r.partition(":")[0], len(_FIELD_ORDER)))
    if "query" in doc:
        doc["query_norm"] = normalize_query(doc["query"])
    doc["n_shown"] = len(doc["product_ids"])
    return doc, []


def _check_experiment(doc: dict[str, Any], reasons: list[str]) -> None:
    """A search under an experiment names the experiment and its variant, or its teams (interleaving), one per
    shown product."""
    if "experiment" not in doc:
        for name in ("variant", "teams"):
            if name in doc:
                reasons.append(f"{name}: given without experiment (name the experiment the search was served under)")
        return
    if "variant" not in doc and "teams" not in doc:
        reasons.append("experiment: a search under an experiment names its variant (or its teams, interleaved)")
    teams, shown = doc.get("teams"), doc.get("product_ids")
    if teams is not None and shown is not None and len(teams) != len(shown):
        reasons.append(f"teams: {len(teams)} teams for {len(shown)} shown products (one per product, in order)")


# --- the DataFrame contract --------------------------------------------------------------------------
def _utc_column(values: list[Any]) -> pd.Series:
    series = pd.to_datetime(pd.Series(values, dtype="object"), utc=True, format="ISO8601")
    return series.astype("datetime64[ns, UTC]")


def impressions_frame(docs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Search-log documents as a typed DataFrame: exactly :data:`IMPRESSION_COLUMNS`, sorted by (timestamp,
    request_id). ``product_ids`` holds lists (display order); session_id, query, query_norm, experiment,
    variant and teams (a list) hold None when absent. Empty input gives an empty frame with the same columns
    and dtypes."""
    columns: dict[str, list[Any]] = {name: [] for name in IMPRESSION_COLUMNS}
    for doc in docs:
        for name, values in columns.items():
            values.append(doc.get(name))
    data: dict[str, Any] = {}
    for name, dtype in IMPRESSION_COLUMNS.items():
        values = columns[name]
        if dtype == "datetime64[ns, UTC]":
            data[name] = _utc_column(values)
        elif name == "product_ids":
            data[name] = pd.Series([[str(p) for p in v or []] for v in values], dtype="object")
        elif dtype == "object":
            data[name] = pd.Series(values, dtype="object")
        else:
            data[name] = pd.Series([str(v) for v in values], dtype="str")
    frame = pd.DataFrame(data, columns=list(IMPRESSION_COLUMNS))
    frame = frame.sort_values(["timestamp", "request_id"], kind="mergesort", na_position="last")
    return frame.reset_index(drop=True)


# --- indices -----------------------------------------------------------------------------------------
def search_indices(client: OpenSearch, alias: str) -> list[str]:
    """Concrete indices behind the searches alias, oldest month first ([] when there is no alias yet)."""
    return month_indices(client, alias, _WHAT)


# --- file ingest -------------------------------------------------------------------------------------
@dataclass
class ImpressionIngestReport(LogIngestReport):
    """What an impressions ingest did (see :class:`LogIngestReport`); ``shown`` counts the stored searches'
    product ids, ``empty`` the stored searches that showed nothing (found no product)."""

    shown: int = 0
    empty: int = 0


def ingest_impressions(
    client: OpenSearch,
    source: str | Path,
    spec: MappingSpec,
    alias: str,
    *,
    column_map: Mapping[str, str] | None = None,
    rejects_path: str | Path | None = None,
    allow_rejects: bool = False,
    chunk_size: int = 1000,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    progress: bool = True,
    progress_file: IO[str] | None = None,
    max_shown: int = MAX_SHOWN,
) -> ImpressionIngestReport:
    """Validate a search-log file and store it in monthly indices behind ``alias`` (see the module doc).

    ``column_map`` is ``{our_field: their_column}`` (from ``parse_column_map(..., allowed=IMPRESSION_FIELDS)``).
    ``shown`` in the report counts the product ids of the stored searches and ``empty`` the stored searches
    that showed nothing (valid: see :func:`normalize_impression`); a row showing more than ``max_shown``
    products is rejected. A file that stops parsing part way raises an InputFileError saying
    what was stored before it.
    """
    started = time.monotonic()
    source = Path(source)
    reader = read_rows(source, column_map)
    search_indices(client, alias)  # fails early, naming the fix, if the alias name is taken by an index
    rejects = RejectsWriter(Path(rejects_path) if rejects_path else default_rejects_path(source), "request_id")
    rejects.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    report = ImpressionIngestReport(
        source=str(source),
        alias=alias,
        allow_rejects=allow_rejects,
        ignored_columns=reader.unknown_columns(IMPRESSION_FIELDS),
    )
    months = MonthIndices(client, spec, alias, _WHAT)
    bar = progress_bar(reader, source, progress, progress_file)
    repeats = RepeatedIds("request_id", "row", "give each search its own request_id")
    # Searches sent but not yet acknowledged, by id (unique: repeats are not sent), for reporting refusals.
    in_flight: dict[str, tuple[int, dict[str, Any], int]] = {}

    def actions() -> Iterator[dict[str, Any]]:
        for row_number, row in reader:
            report.read += 1
            bar.update(1)
            doc, reasons = normalize_impression(row, max_shown=max_shown)
            if doc is None:
                rejects.add(row_number, row, reasons)
                continue
            request_id = doc["request_id"]
            seen = repeats.see(request_id, doc, row_number)
            if seen == REPEAT:
                report.duplicates_in_file += 1
                continue
            if seen is not None:
                rejects.add(row_number, row, [seen])
                continue
            doc["ingested_at"] = now_ms()
            in_flight[request_id] = (row_number, row, doc["n_shown"])
            yield {"_op_type": "create", "_index": months.target(doc["timestamp"]), "_id": request_id, "_source": doc}

    try:
        for outcome, request_id, result in bulk_create(
            client,
            actions(),
            what=f"storing impressions into {alias}",
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
        ):
            row_number, row, n_shown = in_flight.pop(request_id, (0, {}, 0))
            if outcome == STORED:
                report.stored += 1
                report.shown += n_shown
                report.empty += n_shown == 0
            elif outcome == ALREADY:
                report.already_stored += 1
            else:
                report.engine_rejected += 1
                rejects.add(row_number or None, row, [bulk_error_reason(result)], record_id=request_id)
        months.refresh()
    except InputFileError as exc:
        raise partial_failure(exc, report, rejects, "searches") from exc
    finally:
        bar.close()
        rejects.close()
    report.finish(rejects, months, started)
    return report


# --- live recording ----------------------------------------------------------------------------------
def record_impressions(
    client: OpenSearch,
    rows: Iterable[Mapping[str, Any]],
    spec: MappingSpec,
    alias: str,
    refresh: bool = False,
    *,
    chunk_size: int = 1000,
    max_retries: int = 3,
    initial_backoff: float = 0.5,
) -> RecordResult:
    """Validate and store searches logged by a running service (the proxy); the same rules as a file ingest.

    Never raises for a bad row: each one is reported in ``rejected`` with its position and every reason.
    Engine problems raise our EngineUnavailableError/EngineError. ``refresh=True`` makes the searches readable
    before returning (slower; for tests and tools). ``already_stored`` also counts repeats within the call.
    """
    return record_docs(
        client,
        rows,
        MonthIndices(client, spec, alias, _WHAT),
        normalize=normalize_impression,
        id_field="request_id",
        label="impression",
        what=f"recording impressions into {alias}",
        check_alias=lambda: search_indices(client, alias),
        refresh=refresh,
        chunk_size=chunk_size,
        max_retries=max_retries,
        initial_backoff=initial_backoff,
    )


# --- reading -----------------------------------------------------------------------------------------
def read_impressions(
    client: OpenSearch,
    alias: str,
    *,
    since_ingested: datetime | None = None,
    before: datetime | None = None,
    experiment: str | None = None,
    page_size: int = 5000,
) -> pd.DataFrame:
    """The search log behind ``alias`` as an :func:`impressions_frame` (sorted by time, request id).

    ``since_ingested``: only searches stored strictly after it (the profile update's watermark).
    ``before``: only searches that happened strictly before it. ``experiment``: only searches served under
    that experiment. Naive datetimes are taken as UTC. Read from
    one point in time with ``search_after`` (see :func:`fuserec_os.behaviour.timeseries.read_pit`). No alias
    yet gives an empty frame.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    if not search_indices(client, alias):
        return impressions_frame([])
    filters = time_filters(since_ingested, before)
    if experiment is not None:
        filters.append({"term": {"experiment": experiment}})
    query: dict[str, Any] = {"bool": {"filter": filters}} if filters else {"match_all": {}}
    return impressions_frame(read_pit(client, alias, query, _READ_SORT, page_size=page_size, what=_WHAT))


# --- erasure -----------------------------------------------------------------------------------------
def delete_user_impressions(client: OpenSearch, alias: str, user_id: str) -> int:
    """Delete every logged search of ``user_id`` (right to erasure), refreshed. Returns how many were deleted.

    Raises EngineError if the engine reports any failure: a partial erasure must not look like a complete one.
    """
    return delete_by_user(client, alias, user_id, _WHAT)
