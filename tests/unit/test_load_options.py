"""Loading logs with options only: --set constants, --map a+b joins, ratings and query_time on events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fuserec_os.behaviour.config import EventsConfig, RatingRule
from fuserec_os.behaviour.events import EVENT_FIELDS, EVENT_JOINERS, NOT_SETTABLE, make_event_id, normalize_event
from fuserec_os.config import load_ranking_config
from fuserec_os.errors import ConfigError, InputFileError
from fuserec_os.index.readers import check_constants, parse_column_map, parse_constants, read_rows
from fuserec_os.index.validate import PRODUCT_FIELDS, PRODUCT_JOINERS, normalize_product

BASE = {"user_id": "u1", "product_id": "p1", "timestamp": "2024-05-01T10:00:00Z"}


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_several_columns_join_into_one_field_and_are_not_reported_as_unknown(tmp_path: Path) -> None:
    src = _csv(
        tmp_path / "c.csv",
        "sku,name,short_desc,long_desc,dept,sub\nA1,Phone,Small,A <b>great</b> phone,electronics,phones\n"
        "A2,Case,,Sturdy case,electronics,\n",
    )
    cmap = parse_column_map("product_id=sku,title=name,description=short_desc+long_desc,category=dept+sub")
    reader = read_rows(src, cmap, joiners=PRODUCT_JOINERS)
    rows = [row for _, row in reader]
    assert rows[0]["description"] == "Small A <b>great</b> phone"
    assert rows[0]["category"] == "electronics > phones"
    assert rows[1]["description"] == "Sturdy case"  # an empty part adds nothing
    assert rows[1]["category"] == "electronics"
    assert reader.unknown_columns(PRODUCT_FIELDS) == []
    doc, reasons = normalize_product(rows[0])
    assert reasons == [] and doc is not None and doc["description"] == "Small A great phone"


def test_joined_json_rows_and_all_empty_parts_are_absent(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(
        json.dumps({"sku": "A1", "name": "x", "s": "one", "l": ["two", "three"]})
        + "\n"
        + json.dumps({"sku": "A2", "name": "y", "s": None, "l": ""})
        + "\n"
    )
    rows = [row for _, row in read_rows(src, {"description": "s+l"}, joiners=PRODUCT_JOINERS)]
    assert rows[0]["description"] == "one two three"
    assert rows[1]["description"] is None


def test_a_join_names_the_missing_column_and_the_fields_that_take_several(tmp_path: Path) -> None:
    src = _csv(tmp_path / "c.csv", "sku,name,a,b\nA1,x,1,2\n")
    with pytest.raises(InputFileError, match=r"column\(s\) 'nope' not in .*its columns: sku, name, a, b"):
        read_rows(src, {"description": "a+nope"}, joiners=PRODUCT_JOINERS)
    with pytest.raises(InputFileError, match=r"price takes one column; .* can fill title, description, category, tags"):
        read_rows(src, {"price": "a+b"}, joiners=PRODUCT_JOINERS)
    with pytest.raises(InputFileError, match="can fill no field of this file"):
        read_rows(src, {"description": "a+b"})


def test_constants_fill_every_row_and_refuse_a_clash(tmp_path: Path) -> None:
    src = _csv(tmp_path / "e.csv", "visitor,sku,ts,type2\nu1,p1,2024-05-01T10:00:00Z,x\n")
    reader = read_rows(src, {"user_id": "visitor", "product_id": "sku", "timestamp": "ts"}, constants={"type": "click"})
    [(_, row)] = list(reader)
    assert row["type"] == "click" and "type" in reader.columns
    doc, reasons = normalize_event(row)
    assert reasons == [] and doc is not None and doc["type"] == "click"
    clash = _csv(tmp_path / "f.csv", "user_id,type\nu1,view\n")
    with pytest.raises(InputFileError, match="has a column 'type' already"):
        read_rows(clash, constants={"type": "click"})
    with pytest.raises(InputFileError, match="give type one source"):
        read_rows(src, {"type": "type2"}, constants={"type": "click"})


def test_set_names_an_unknown_field_a_bad_item_and_what_is_valid() -> None:
    assert parse_constants(["type=click", " source = web "], EVENT_FIELDS) == {"type": "click", "source": "web"}
    with pytest.raises(InputFileError, match=r"--set kind=click: 'kind' is not a field we know \(expected one of: "):
        parse_constants(["kind=click"], EVENT_FIELDS, not_settable=NOT_SETTABLE)
    with pytest.raises(InputFileError, match="is not field=value"):
        parse_constants(["type"], EVENT_FIELDS)
    with pytest.raises(InputFileError, match="event_id cannot be one value for every row"):
        parse_constants(["event_id=e1"], EVENT_FIELDS, not_settable=NOT_SETTABLE)
    with pytest.raises(InputFileError, match="already set"):
        parse_constants(["type=click", "type=view"], EVENT_FIELDS)


def test_a_bad_constant_value_is_refused_with_what_would_be_valid() -> None:
    check_constants({"type": "click", "source": "web"}, normalize_event)  # fine: other fields' reasons ignored
    with pytest.raises(
        InputFileError, match=r"--set type=clik: 'clik' is not a known event type \(expected one of view"
    ):
        check_constants({"type": "clik"}, normalize_event)
    with pytest.raises(InputFileError, match=r"--set price=cheap: 'cheap' is not a number"):
        check_constants({"price": "cheap"}, normalize_product)


def test_query_joins_for_events() -> None:
    assert EVENT_JOINERS == {"query": " "}


def test_a_rating_sets_the_type_by_the_rule_and_is_kept() -> None:
    doc, reasons = normalize_event({**BASE, "rating": "4.5"})
    assert reasons == [] and doc is not None and (doc["type"], doc["rating"]) == ("purchase", 4.5)
    doc, _ = normalize_event({**BASE, "rating": 3.5})
    assert doc is not None and doc["type"] == "view"
    doc, _ = normalize_event({**BASE, "rating": "2", "type": "click"})  # a given type wins
    assert doc is not None and (doc["type"], doc["rating"]) == ("click", 2.0)
    cfg = EventsConfig(ratings=RatingRule(purchase_at_least=4.5, click_at_least=3))
    assert [normalize_event({**BASE, "rating": r}, cfg)[0]["type"] for r in (5, 4, 3, 0.5)] == [  # type: ignore[index]
        "purchase",
        "click",
        "click",
        "view",
    ]


def test_a_rating_outside_the_scale_or_not_a_number_is_one_reason() -> None:
    assert normalize_event({**BASE, "rating": "7"})[1] == [
        "rating: '7' is outside the rating scale, expected a number from 0 to 5 (events.ratings.min / max)"
    ]
    _, reasons = normalize_event({**BASE, "rating": "NaN"})
    assert len(reasons) == 1 and reasons[0].startswith("rating: ")


def test_query_time_is_a_moment_before_the_event() -> None:
    doc, reasons = normalize_event({**BASE, "type": "click", "query_time": "2024-05-01T09:59:30Z"})
    assert reasons == [] and doc is not None and doc["query_time"] == "2024-05-01T09:59:30.000Z"
    _, reasons = normalize_event({**BASE, "type": "click", "query_time": "2024-05-01T10:05:00Z"})
    assert len(reasons) == 1 and "after the event's timestamp" in reasons[0]
    _, reasons = normalize_event({**BASE, "type": "click", "query_time": "yesterday"})
    assert len(reasons) == 1 and reasons[0].startswith("query_time: 'yesterday' is not a date")


def test_generated_ids_of_events_without_the_new_fields_do_not_change() -> None:
    doc, _ = normalize_event({**BASE, "type": "click"})
    assert doc is not None and doc["event_id"] == make_event_id({k: v for k, v in doc.items() if k != "event_id"})
    rated, _ = normalize_event({**BASE, "type": "click", "rating": 4})
    assert rated is not None and rated["event_id"] != doc["event_id"]
    # a plain click keeps the id it had before ratings existed: the hash of the 10 original fields only
    fields = ("user_id", "session_id", "type", "product_id", "timestamp", "query", "position", "price", "quantity")
    before = json.dumps([doc.get(f) for f in (*fields, "request_id")], ensure_ascii=False, separators=(",", ":"))
    assert doc["event_id"] == hashlib.sha1(before.encode("utf-8")).hexdigest()[:20]


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ({"purchase_at_least": 6}, "events.ratings.purchase_at_least: 6 is outside the rating scale 0..5"),
        ({"purchase_at_least": 3, "click_at_least": 4}, "events.ratings.click_at_least: 4 is above"),
        ({"otherwise": "like"}, "events.ratings.otherwise: 'like' is not an event type"),
        ({"purchase_at_least": "high"}, "events.ratings.purchase_at_least: 'high' is not a number or null"),
        ({"min": 5, "max": 1}, "events.ratings: min 5 must be below max 1"),
        ({"stars": 4}, "unknown events.ratings setting"),
    ],
)
def test_the_rating_rule_is_validated(ratings: dict[str, object], message: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"events": {"ratings": ratings}}))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_ranking_config(path)


def test_the_events_section_reads_ratings_and_the_derived_search_gap(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"events": {"ratings": {"purchase_at_least": 4.5}, "derived_search_gap_minutes": 10}}))
    events = load_ranking_config(path).events
    assert events.ratings.purchase_at_least == 4.5 and events.derived_search_gap_minutes == 10
    assert events.ratings.describe() == "rating >= 4.5 -> purchase, lower -> view"
    path.write_text(json.dumps({"events": {"derived_search_gap_minutes": 0}}))
    with pytest.raises(ConfigError, match="derived_search_gap_minutes: 0 must be above 0"):
        load_ranking_config(path)
