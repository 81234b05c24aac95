"""Unit tests for event normalisation and the events DataFrame contract (no engine)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opensearchpy.serializer import JSONSerializer

from fuserec_os.behaviour.config import EVENT_TYPES, EventsConfig
from fuserec_os.behaviour.event_store import record_events
from fuserec_os.behaviour.events import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    REQUIRED_EVENT_FIELDS,
    events_frame,
    make_event_id,
    normalize_event,
    normalize_query,
)
from fuserec_os.errors import ConfigError
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.validate import PARSE_ERROR_KEY

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
BASE = {"user_id": "u1", "type": "view", "product_id": "p1", "timestamp": "2024-05-01T10:00:00Z"}


def ok(**fields: Any) -> dict[str, Any]:
    doc, reasons = normalize_event({**BASE, **fields}, now=NOW)
    assert reasons == []
    assert doc is not None
    return doc


def bad(**fields: Any) -> list[str]:
    doc, reasons = normalize_event({**BASE, **fields}, now=NOW)
    assert doc is None and reasons
    return reasons


def test_minimal_event_is_normalised_with_a_generated_id() -> None:
    doc = ok()
    assert doc == {
        "user_id": "u1",
        "type": "view",
        "product_id": "p1",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "event_id": make_event_id(doc),
    }
    assert len(doc["event_id"]) == 20 and int(doc["event_id"], 16) >= 0


_TYPE_HINT = " (give a type column, a rating column that sets it, or one type for every row: --set type=click)"


def test_required_fields_are_all_reported_at_once() -> None:
    doc, reasons = normalize_event({"query": "shoes"}, now=NOW)
    assert doc is None
    assert reasons == [
        f"{f}: required, missing or empty" + (_TYPE_HINT if f == "type" else "")
        for f in ("user_id", "type", "product_id", "timestamp")
    ]
    assert set(REQUIRED_EVENT_FIELDS) <= set(EVENT_FIELDS)
    assert bad(user_id="   ") == ["user_id: required, missing or empty"]
    assert bad(timestamp="NaN") == ["timestamp: required, missing or empty"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T05:30:00.250-04:30", "2024-05-01T10:00:00.250Z"),
        ("2024-05-01 10:00:00", "2024-05-01T10:00:00.000Z"),  # naive is UTC
        ("2024-05-01 10:00 UTC", "2024-05-01T10:00:00.000Z"),
        (datetime(2024, 5, 1, 19, 0, tzinfo=timezone(timedelta(hours=9))), "2024-05-01T10:00:00.000Z"),
        (pd.Timestamp("2024-05-01T10:00:00.123456Z"), "2024-05-01T10:00:00.123Z"),
        (np.datetime64("2024-05-01T10:00:00.5"), "2024-05-01T10:00:00.500Z"),
    ],
)
def test_timezones_are_normalised_to_utc_with_milliseconds(raw: Any, expected: str) -> None:
    assert ok(timestamp=raw)["timestamp"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1714557600, "2024-05-01T10:00:00.000Z"),  # epoch seconds
        ("1714557600", "2024-05-01T10:00:00.000Z"),
        (1714557600.25, "2024-05-01T10:00:00.250Z"),
        (1714557600123, "2024-05-01T10:00:00.123Z"),  # epoch milliseconds
        ("1714557600123", "2024-05-01T10:00:00.123Z"),
    ],
)
def test_epoch_seconds_and_milliseconds(raw: Any, expected: str) -> None:
    assert ok(timestamp=raw)["timestamp"] == expected


def test_future_timestamps_are_rejected_beyond_one_day() -> None:
    assert ok(timestamp=(NOW + timedelta(hours=23)).isoformat())["timestamp"] == "2024-06-02T11:00:00.000Z"
    reasons = bad(timestamp=(NOW + timedelta(days=1, seconds=1)).isoformat())
    assert len(reasons) == 1 and reasons[0].startswith("timestamp:") and "1 day" in reasons[0]
    assert "timezone" in reasons[0]  # says what to check
    # the default "now" is the real clock
    far = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    assert normalize_event({**BASE, "timestamp": far})[0] is None


def test_unparseable_and_too_old_timestamps_are_rejected() -> None:
    assert bad(timestamp="yesterday")[0].startswith("timestamp: 'yesterday' is not a date (expected ISO 8601")
    assert "before 1970" in bad(timestamp="1969-12-31T23:59:59Z")[0]
    assert "out of range" in bad(timestamp=1e20)[0]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("view", "view"),
        ("CLICK", "click"),
        (" Add_To_Cart ", "add_to_cart"),
        ("purchase", "purchase"),
        ("page_view", "view"),
        ("Order", "purchase"),
        ("add-to-cart", "add_to_cart"),
        ("checkout", "purchase"),
    ],
)
def test_type_aliases_and_case(raw: str, canonical: str) -> None:
    assert ok(type=raw)["type"] == canonical


def test_unknown_type_names_the_valid_ones() -> None:
    (reason,) = bad(type="wishlist")
    assert reason.startswith("type: 'wishlist' is not a known event type")
    assert all(t in reason for t in EVENT_TYPES)
    assert "type_aliases" in reason
    assert bad(type=3)[0].startswith("type: 3 is not an event type name")


def test_configured_type_aliases_apply() -> None:
    cfg = EventsConfig.from_dict({"type_aliases": {"wishlist": "add_to_cart"}})
    doc, reasons = normalize_event({**BASE, "type": "WishList"}, cfg, now=NOW)
    assert reasons == [] and doc is not None and doc["type"] == "add_to_cart"
    with pytest.raises(ConfigError, match="wishlist"):
        EventsConfig(type_aliases={"wishlist": "like"})


def test_optional_fields_are_parsed() -> None:
    doc = ok(
        event_id=" e-1 ",
        session_id=17.0,
        query="  Running   SHOES ",
        position="3",
        price="$1,299.50",
        quantity=2,
        request_id="req-9",
    )
    assert doc["event_id"] == "e-1"  # a given id is kept (trimmed), not regenerated
    assert doc["session_id"] == "17"
    assert doc["query"] == "Running SHOES" and doc["query_norm"] == "running shoes"
    assert (doc["position"], doc["price"], doc["quantity"], doc["request_id"]) == (3, 1299.5, 2, "req-9")


def test_blank_and_null_words_in_optional_fields_are_absent() -> None:
    doc = ok(session_id="", query="   ", position="N/A", price="null", quantity=None, request_id=float("nan"))
    assert set(doc) == {"user_id", "type", "product_id", "timestamp", "event_id"}


def test_every_bad_optional_field_is_reported_in_column_order() -> None:
    reasons = bad(position="0", price="-1", quantity="1.5", query=["a"], session_id={"x": 1})
    assert [r.partition(":")[0] for r in reasons] == ["session_id", "query", "position", "price", "quantity"]
    assert "expected an integer >= 1" in reasons[2]
    assert "expected a number >= 0" in reasons[3]
    assert "not a whole number" in reasons[4]


def test_unknown_columns_are_ignored_and_parse_errors_rejected() -> None:
    assert "extra" not in ok(extra="x")
    doc, reasons = normalize_event({PARSE_ERROR_KEY: "line 3: Expecting value"}, now=NOW)
    assert doc is None and reasons == ["row: could not be parsed (line 3: Expecting value)"]


def test_generated_ids_are_deterministic_and_content_based() -> None:
    a = ok(timestamp="2024-05-01T12:00:00+02:00", type="order")
    b = ok(timestamp=1714557600, type="purchase")  # the same moment and canonical type, other spellings
    assert a["event_id"] == b["event_id"]
    assert ok()["event_id"] == ok()["event_id"]
    others = {
        ok(user_id="u2")["event_id"],
        ok(product_id="p2")["event_id"],
        ok(type="click")["event_id"],
        ok(timestamp="2024-05-01T10:00:00.001Z")["event_id"],
        ok(session_id="s1")["event_id"],
        ok(query="shoes")["event_id"],
        ok(position=2)["event_id"],
        ok(request_id="r1")["event_id"],
    }
    assert ok()["event_id"] not in others and len(others) == 8


def test_normalize_query() -> None:
    assert normalize_query("  Running\tSHOES \n") == "running shoes"
    assert normalize_query("") == ""


# --- events_frame ------------------------------------------------------------------------------------
def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def test_events_frame_columns_dtypes_and_order() -> None:
    late = ok(timestamp="2024-05-02T00:00:00Z", query="Shoes", position=1, price=9.5, quantity=2, session_id="s")
    early = ok()
    stored = dict(early, ingested_at="2024-06-01T00:00:00.000Z")
    frame = events_frame([late, stored])
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert _dtypes(frame) == EVENT_COLUMNS
    assert list(frame["event_id"]) == [early["event_id"], late["event_id"]]  # sorted by timestamp
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["session_id"] is None and first["query"] is None and first["request_id"] is None
    assert first["position"] is pd.NA and np.isnan(first["price"]) and first["quantity"] is pd.NA
    assert first["ingested_at"] == pd.Timestamp("2024-06-01T00:00:00Z")
    assert pd.isna(second["ingested_at"])
    assert second["timestamp"] == pd.Timestamp("2024-05-02T00:00:00Z")
    assert (second["query"], second["query_norm"], second["position"], second["price"]) == ("Shoes", "shoes", 1, 9.5)
    assert isinstance(second["user_id"], str) and second["type"] == "view"


def test_events_frame_ties_sort_by_event_id_and_empty_keeps_dtypes() -> None:
    docs = [ok(product_id=f"p{i}") for i in range(5)]
    frame = events_frame(reversed(docs))
    assert list(frame["event_id"]) == sorted(d["event_id"] for d in docs)
    assert list(frame.index) == list(range(5))
    empty = events_frame([])
    assert len(empty) == 0 and list(empty.columns) == list(EVENT_COLUMNS)
    assert _dtypes(empty) == EVENT_COLUMNS


# --- record_events against a fake transport ----------------------------------------------------------
class _FakeIndices:
    def __init__(self) -> None:
        self.created: list[str] = []

    def exists_alias(self, name: str, index: str | None = None) -> bool:
        return index is None or index in self.created

    def get_alias(self, name: str) -> dict[str, Any]:
        return {i: {"aliases": {name: {}}} for i in self.created}

    def exists(self, index: str) -> bool:
        return index in self.created

    def create(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        assert body["aliases"] == {"ev": {}} and body["mappings"]["_meta"]["mapping_version"] == 1
        self.created.append(index)
        return {"acknowledged": True}

    def refresh(self, index: str) -> dict[str, Any]:
        return {}


class _Transport:
    serializer = JSONSerializer()


class FakeClient:
    """_bulk answers 429 for everything first, then 201, except a 409 for id "dup" and a 400 for id "odd"."""

    def __init__(self) -> None:
        self.indices = _FakeIndices()
        self.transport = _Transport()
        self.bulk_calls: list[list[str]] = []

    def bulk(self, body: str, **kwargs: Any) -> dict[str, Any]:
        lines = body.strip().split("\n")
        ids = [json.loads(line)["create"]["_id"] for line in lines[::2]]
        self.bulk_calls.append(ids)
        if len(self.bulk_calls) == 1:
            return {"errors": True, "items": [{"create": {"_id": i, "status": 429, "error": "busy"}} for i in ids]}
        status = {"dup": 409, "odd": 400}
        items = [
            {"create": {"_id": i, "status": status.get(i, 201), "error": {"type": "x", "reason": "y"}}} for i in ids
        ]
        for item in items:
            if item["create"]["status"] == 201:
                del item["create"]["error"]
        return {"errors": True, "items": items}


def test_record_events_retries_429_and_never_raises_for_bad_events(tmp_path: Path) -> None:
    spec = MappingSpec("events", 1, {}, {"properties": {}}, tmp_path / "events.json")
    client = FakeClient()
    events: list[Any] = [
        dict(BASE, event_id="a"),
        dict(BASE, event_id="dup"),
        {"user_id": "u1"},  # invalid
        dict(BASE, event_id="odd", timestamp="2024-04-30T23:59:59Z"),
        "not an event",
        dict(BASE, event_id="a"),  # repeat within the call
    ]
    res = record_events(client, events, spec, "ev", initial_backoff=0.001)  # type: ignore[arg-type]
    assert client.bulk_calls == [["a", "dup", "odd"], ["a", "dup", "odd"]]  # all retried after the 429
    assert client.indices.created == ["ev-2024.05", "ev-2024.04"]
    assert (res.accepted, res.already_stored) == (1, 2)
    assert [i for i, _ in res.rejected] == [2, 3, 4]
    assert any("type: required" in r for r in res.rejected[0][1])
    assert "engine rejected the document (400): x: y" in res.rejected[1][1][0]
    assert "expected an object" in res.rejected[2][1][0]
    assert res.as_dict()["rejected"][0]["index"] == 2


# --- absurd values and conflicting ids (issue 8) ---------------------------------------------------
@pytest.mark.parametrize("raw", [float("nan"), "NaN", 1e308, "1e308", float("inf")])
def test_non_finite_and_absurd_prices_are_rejected(raw: Any) -> None:
    reasons = bad(price=raw)
    assert len(reasons) == 1 and reasons[0].startswith("price: ")
    assert "not a finite number" in reasons[0] or "above the maximum 10,000,000" in reasons[0]


def test_the_price_bound_is_a_keyword_argument() -> None:
    row = {**BASE, "price": "2e7"}
    assert normalize_event(row, now=NOW)[0] is None
    doc, reasons = normalize_event(row, now=NOW, max_price=1e8)
    assert reasons == [] and doc is not None and doc["price"] == 2e7


def test_event_id_limit_counts_bytes() -> None:
    reasons = bad(event_id="é" * 300)
    assert len(reasons) == 1 and reasons[0].startswith("event_id: 600 bytes, at most 512")
    assert ok(event_id="é" * 256)["event_id"] == "é" * 256


def test_record_events_rejects_a_conflicting_repeat_and_counts_an_identical_one(tmp_path: Path) -> None:
    """The same event_id with other content is another event under a reused id: rejected, naming both."""
    spec = MappingSpec("events", 1, {}, {"properties": {}}, tmp_path / "events.json")
    client = FakeClient()
    events = [
        dict(BASE, event_id="e1", type="click"),
        dict(BASE, event_id="e1", type="purchase"),  # conflict
        dict(BASE, event_id="e1", type="click"),  # identical repeat
    ]
    res = record_events(client, events, spec, "ev", initial_backoff=0.001)  # type: ignore[arg-type]
    assert (res.accepted, res.already_stored) == (1, 1)
    assert [i for i, _ in res.rejected] == [1]
    reason = res.rejected[0][1][0]
    assert reason.startswith("event_id: 'e1' of item 1 is also the event_id of item 0, with different content")
