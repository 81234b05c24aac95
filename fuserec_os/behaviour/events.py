"""Normalise and validate one behaviour event (pure: no I/O, no engine), and the events DataFrame contract.

An event says that a user did something (view, click, add_to_cart, purchase) to a product at a moment. Events
arrive from files (CSV strings, JSON types, Parquet natives) and from the live tracking API, so values are read
with the same parsers as the catalog (:mod:`fuserec_os.index.validate`) and every problem of an event is
reported at once, naming the field and what would be valid.

Why a deterministic ``event_id``: tracking pipelines replay and files get re-sent. The id is the document id
(and events are written with ``op_type: create``), so the same event stored twice is answered "already
stored" instead of counting twice in profiles. When the source has no id, one is derived from the event's
canonical content (after normalising the timestamp to UTC and the type to its canonical name), so "order at
12:00+02:00" and "purchase at 10:00Z" are the same event.

:func:`events_frame` fixes the table the profile builder consumes, whatever the source (file, engine).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from fuserec_os.behaviour.config import EVENT_TYPES, EventsConfig
from fuserec_os.index.validate import (
    MAX_PRICE,
    PARSE_ERROR_KEY,
    InvalidValue,
    check_at_most,
    is_missing,
    parse_datetime,
    parse_identifier,
    parse_non_negative,
    parse_number,
    parse_whole_number,
    show_value,
)
from fuserec_os.text import normalize_query

__all__ = [
    "CLICK_LOG_FIELDS",
    "DEFAULT_EVENTS_CONFIG",
    "EVENT_COLUMNS",
    "EVENT_FIELDS",
    "EVENT_JOINERS",
    "MAX_FUTURE",
    "MIN_TIMESTAMP",
    "NOT_SETTABLE",
    "REQUIRED_EVENT_FIELDS",
    "check_timestamp",
    "events_frame",
    "format_timestamp",
    "make_event_id",
    "normalize_event",
    "normalize_query",
    "parse_query",
]

#: Input columns we understand; anything else is ignored (and reported once per file by the caller).
#: ``query_norm`` and ``ingested_at`` are not inputs: they are derived here and set by the store.
EVENT_FIELDS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "session_id",
    "type",
    "product_id",
    "timestamp",
    "query",
    "position",
    "price",
    "quantity",
    "request_id",
    "rating",
    "query_time",
    "source",
)

#: The fields of a shop's own click log, the ones the simulator writes on every event row; ``rating``,
#: ``query_time`` and ``source`` come with other logs (a rating log, a log from another system).
CLICK_LOG_FIELDS: tuple[str, ...] = EVENT_FIELDS[: EVENT_FIELDS.index("request_id") + 1]

#: Fields that several source columns can fill (``--map query=genre+tag``), with what goes between the values.
EVENT_JOINERS: dict[str, str] = {"query": " "}

#: Fields ``--set`` cannot fill with one value for every row, and why.
NOT_SETTABLE: dict[str, str] = {
    "event_id": "an id must differ on every row; leave it out to derive one from the content",
    "request_id": "it ties the events of one search; leave it out to derive searches from user, query and time",
}

#: Without these an event says nothing about anyone's taste.
REQUIRED_EVENT_FIELDS: tuple[str, ...] = ("user_id", "type", "product_id", "timestamp")

#: How far ahead of "now" a timestamp may be: clock skew, not a wrong timezone or epoch unit.
MAX_FUTURE = timedelta(days=1)

#: Earliest timestamp accepted: anything before is a unit or parsing mistake (and outside what the
#: nanosecond timestamps of :func:`events_frame` can hold for far-off years).
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: The built-in type aliases, used when no ranking config is given.
DEFAULT_EVENTS_CONFIG = EventsConfig()

#: Columns of :func:`events_frame`, in order, with their dtypes.
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "str",
    "user_id": "str",
    "session_id": "object",
    "type": "str",
    "product_id": "str",
    "timestamp": "datetime64[ns, UTC]",
    "query": "object",
    "query_norm": "object",
    "position": "Int64",
    "price": "float64",
    "quantity": "Int64",
    "request_id": "object",
    "rating": "float64",
    "query_time": "datetime64[ns, UTC]",
    "ingested_at": "datetime64[ns, UTC]",
    "applied_live": "bool",
}

# Fields hashed into a generated event id, in this fixed order (changing it changes every generated id).
_ID_FIELDS = (
    "user_id",
    "session_id",
    "type",
    "product_id",
    "timestamp",
    "query",
    "position",
    "price",
    "quantity",
    "request_id",
)
# Hashed after _ID_FIELDS only when one of them is present, so the ids of events without them stay as they were.
_ID_FIELDS_V2 = ("rating", "query_time", "source")
_ID_EXAMPLES = {
    "event_id": "evt-123",
    "user_id": "u-42",
    "session_id": "s-42",
    "product_id": "SKU-123",
    "request_id": "req-9",
    "source": "web",
}
_EXPECT_TYPE = f"expected one of {', '.join(EVENT_TYPES)}, or an alias from events.type_aliases"


def format_timestamp(moment: datetime) -> str:
    """UTC with milliseconds, ``2024-05-01T10:00:00.123Z``: what the store writes and range queries use.

    Naive datetimes are taken as UTC (like the catalog's dates).
    """
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    elif moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - as in validate._format_utc, for speed
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def make_event_id(doc: Mapping[str, Any]) -> str:
    """20 hex chars of the SHA-1 of the event's canonical fields (a normalised doc, see :func:`normalize_event`).

    80 bits: a collision is not expected before ~10^12 events. Absent fields hash as null, so adding a field
    to an event (e.g. a session id) makes it a different event.
    """
    values = [doc.get(f) for f in _ID_FIELDS]
    extra = [doc.get(f) for f in _ID_FIELDS_V2]
    if any(v is not None for v in extra):
        values += extra
    canonical = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:20]


def _parse_id(field: str) -> Callable[[Any], str | None]:
    example = _ID_EXAMPLES[field]
    return lambda value: parse_identifier(value, example)


def parse_query(value: Any) -> str | None:
    """Search text with whitespace collapsed (None when blank); InvalidValue when it is not text."""
    if isinstance(value, str):
        return " ".join(value.split()) or None
    raise InvalidValue(f"{show_value(value)} is not text (expected the search text, e.g. 'running shoes')")


def _parse_position(value: Any) -> int:
    return parse_whole_number(value, minimum=1)


_PRICE_HINT = "usually a unit or export mistake; --max-price raises the limit"

# field -> (parser, number). Number fields treat words like "null"/"N/A" as absent but reject NaN (any spelling).
_PARSERS: tuple[tuple[str, Callable[[Any], Any], bool], ...] = (
    ("event_id", _parse_id("event_id"), False),
    ("user_id", _parse_id("user_id"), False),
    ("session_id", _parse_id("session_id"), False),
    ("product_id", _parse_id("product_id"), False),
    ("query", parse_query, False),
    ("position", _parse_position, True),
    ("price", parse_non_negative, True),
    ("quantity", _parse_position, True),
    ("request_id", _parse_id("request_id"), False),
    ("source", _parse_id("source"), False),
)


def normalize_event(
    row: Mapping[str, Any],
    cfg: EventsConfig = DEFAULT_EVENTS_CONFIG,
    now: datetime | None = None,
    *,
    max_price: float = MAX_PRICE,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Turn one input row into an event document, or explain every reason it cannot be one.

    Returns ``(doc, [])`` or ``(None, reasons)``. The doc has ``event_id`` (given, or generated by
    :func:`make_event_id`), the canonical ``type``, ``timestamp`` as UTC milliseconds and, with a query,
    ``query_norm``; absent optional fields are left out. ``rating`` (within ``cfg.ratings`` min..max) is kept
    as a value and, when the row has no type, sets it by ``cfg.ratings`` (e.g. >= 4 purchase, lower view).
    ``query_time`` (when the search was made) is a moment like ``timestamp`` and not after it. ``now``
    (default: the current UTC time) bounds timestamps: more than :data:`MAX_FUTURE` ahead is rejected, as it
    means a wrong timezone or epoch unit.
    Numbers must be finite (NaN is rejected, not dropped) and ``price`` at most ``max_price`` (default
    :data:`~fuserec_os.index.validate.MAX_PRICE`, as for the catalog).
    """
    parse_error = row.get(PARSE_ERROR_KEY)
    if parse_error is not None:
        return None, [f"row: could not be parsed ({parse_error})"]
    doc: dict[str, Any] = {}
    reasons: list[str] = []
    for field, parse, number in _PARSERS:
        raw = row.get(field)
        if is_missing(raw, number=number):
            continue
        try:
            value = parse(raw)
            if field == "price":
                check_at_most(value, raw, max_price, _PRICE_HINT)
        except InvalidValue as exc:
            reasons.append(f"{field}: {exc}")
            continue
        if value is not None:
            doc[field] = value
    _check_rating(row.get("rating"), cfg, doc, reasons)
    _check_type(row.get("type"), cfg, doc, reasons)
    check_timestamp(row.get("timestamp"), now, doc, reasons)
    _check_query_time(row.get("query_time"), now, doc, reasons)
    for field in REQUIRED_EVENT_FIELDS:
        if field not in doc and not any(r.startswith(f"{field}:") for r in reasons):
            if field == "type" and any(r.startswith("rating:") for r in reasons):
                continue  # the rating that would set it is wrong: that is the reason to fix
            hint = _MISSING_TYPE if field == "type" else ""
            reasons.append(f"{field}: required, missing or empty{hint}")
    if reasons:
        return None, _in_field_order(reasons)
    if "query" in doc:
        doc["query_norm"] = normalize_query(doc["query"])
    if "event_id" not in doc:
        doc["event_id"] = make_event_id(doc)
    return doc, []


_MISSING_TYPE = " (give a type column, a rating column that sets it, or one type for every row: --set type=click)"


def _check_rating(raw: Any, cfg: EventsConfig, doc: dict[str, Any], reasons: list[str]) -> None:
    if is_missing(raw, number=True):
        return
    rule = cfg.ratings
    scale = f"{rule.min:g} to {rule.max:g} (events.ratings.min / max)"
    try:
        value = parse_number(raw)
    except InvalidValue as exc:
        reasons.append(f"rating: {exc}; expected a number from {scale}")
        return
    if not rule.min <= value <= rule.max:
        reasons.append(f"rating: {show_value(raw)} is outside the rating scale, expected a number from {scale}")
        return
    doc["rating"] = value


def _check_type(raw: Any, cfg: EventsConfig, doc: dict[str, Any], reasons: list[str]) -> None:
    if is_missing(raw):
        if "rating" in doc:  # a rating log: the rating says how strong a signal the event is
            doc["type"] = cfg.ratings.event_type(doc["rating"])
        return
    if not isinstance(raw, str):
        reasons.append(f"type: {show_value(raw)} is not an event type name ({_EXPECT_TYPE})")
        return
    canonical = cfg.canonical_type(raw)
    if canonical is None:
        reasons.append(f"type: {show_value(raw)} is not a known event type ({_EXPECT_TYPE})")
        return
    doc["type"] = canonical


def check_timestamp(raw: Any, now: datetime | None, doc: dict[str, Any], reasons: list[str]) -> None:
    """Parse ``raw`` into ``doc["timestamp"]`` (UTC milliseconds), or append the reason it is not a valid moment
    (unparseable, more than :data:`MAX_FUTURE` after ``now``, before 1970). Absent values add nothing."""
    if is_missing(raw, typed=True):
        return
    try:
        moment = parse_datetime(raw)
    except InvalidValue as exc:
        reasons.append(f"timestamp: {exc}")
        return
    current = now if now is not None else datetime.now(timezone.utc)
    if current.utcoffset() is None:
        current = current.replace(tzinfo=timezone.utc)
    if moment > current + MAX_FUTURE:
        reasons.append(
            f"timestamp: {show_value(raw)} is {format_timestamp(moment)}, more than 1 day after now "
            f"({format_timestamp(current)}); expected a past moment (check the timezone, and seconds vs milliseconds)"
        )
        return
    if moment < MIN_TIMESTAMP:
        reasons.append(
            f"timestamp: {show_value(raw)} is {format_timestamp(moment)}, before 1970-01-01 "
            "(expected ISO 8601 e.g. 2024-05-01T12:00:00Z, or epoch seconds/milliseconds)"
        )
        return
    doc["timestamp"] = format_timestamp(moment)


def _check_query_time(raw: Any, now: datetime | None, doc: dict[str, Any], reasons: list[str]) -> None:
    """``query_time``: when the search that led to the event was made, checked like the timestamp and not after it."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    check_timestamp(raw, now, found, problems)
    if problems:
        reasons.extend("query_time:" + problem.partition(":")[2] for problem in problems)
        return
    moment = found.get("timestamp")
    if moment is None:
        return
    if "timestamp" in doc and moment > doc["timestamp"]:
        reasons.append(
            f"query_time: {show_value(raw)} is {moment}, after the event's timestamp {doc['timestamp']}; expected "
            "the moment of the search, before the click it led to (are the two columns swapped?)"
        )
        return
    doc["query_time"] = moment


_FIELD_ORDER = {field: i for i, field in enumerate(EVENT_FIELDS)}


def _in_field_order(reasons: list[str]) -> list[str]:
    """Reasons in column order, so a report reads left to right like the file."""
    return sorted(reasons, key=lambda r: _FIELD_ORDER.get(r.partition(":")[0], len(_FIELD_ORDER)))


# --- the DataFrame contract -------------------------------------------------------------------------
def _utc_column(values: list[Any]) -> pd.Series:
    series = pd.to_datetime(pd.Series(values, dtype="object"), utc=True, format="ISO8601")
    return series.astype("datetime64[ns, UTC]")


def events_frame(docs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Event documents (as stored, or from :func:`normalize_event`) as a typed DataFrame.

    Columns and dtypes are :data:`EVENT_COLUMNS` exactly: ids and type are ``str``; session_id, query,
    query_norm and request_id are ``object`` holding None when absent; position and quantity nullable
    ``Int64``; price ``float64`` (NaN when absent); timestamp and ingested_at ``datetime64[ns, UTC]`` (NaT
    when absent). Rows are sorted by (timestamp, event_id), so equal input gives an equal frame. Empty input
    gives an empty frame with the same columns and dtypes, so callers never special-case it.
    """
    columns: dict[str, list[Any]] = {name: [] for name in EVENT_COLUMNS}
    for doc in docs:
        for name, values in columns.items():
            values.append(doc.get(name))
    data: dict[str, Any] = {}
    for name, dtype in EVENT_COLUMNS.items():
        values = columns[name]
        if dtype == "datetime64[ns, UTC]":
            data[name] = _utc_column(values)
        elif dtype == "object":
            data[name] = pd.Series(values, dtype="object")
        elif dtype == "Int64":
            data[name] = pd.Series(values, dtype="object").astype("Int64")
        elif dtype == "float64":
            data[name] = pd.Series([np.nan if v is None else v for v in values], dtype="float64")
        elif dtype == "bool":
            data[name] = pd.Series([bool(v) for v in values], dtype="bool")
        else:
            data[name] = pd.Series([str(v) for v in values], dtype="str")
    frame = pd.DataFrame(data, columns=list(EVENT_COLUMNS))
    frame = frame.sort_values(["timestamp", "event_id"], kind="mergesort", na_position="last")
    return frame.reset_index(drop=True)
