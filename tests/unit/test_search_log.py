"""Unit tests for search-log (impression) normalisation and its DataFrame contract (no engine)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.behaviour.search_log import (
    IMPRESSION_COLUMNS,
    IMPRESSION_FIELDS,
    REQUIRED_IMPRESSION_FIELDS,
    impressions_frame,
    normalize_impression,
)
from fuserec_os.index.mappings import load_mapping
from fuserec_os.index.validate import PARSE_ERROR_KEY

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
BASE: dict[str, Any] = {
    "request_id": "r1",
    "user_id": "u1",
    "timestamp": "2024-05-01T10:00:00Z",
    "product_ids": ["P1", "P2", "P3"],
}


def ok(**fields: Any) -> dict[str, Any]:
    doc, reasons = normalize_impression({**BASE, **fields}, now=NOW)
    assert reasons == []
    assert doc is not None
    return doc


def bad(**fields: Any) -> list[str]:
    doc, reasons = normalize_impression({**BASE, **fields}, now=NOW)
    assert doc is None and reasons
    return reasons


def test_minimal_impression_keeps_the_request_id_and_the_order_shown() -> None:
    assert ok() == {
        "request_id": "r1",
        "user_id": "u1",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "product_ids": ["P1", "P2", "P3"],
        "n_shown": 3,
    }
    assert ok(product_ids=["P3", "P1", "P2"])["product_ids"] == ["P3", "P1", "P2"]  # never sorted


def test_optional_fields_and_derived_query_norm() -> None:
    doc = ok(session_id="s9", query="  Trail   Running SHOES ", user_id=42, request_id=7.0)
    assert (doc["session_id"], doc["user_id"], doc["request_id"]) == ("s9", "42", "7")
    assert doc["query"] == "Trail Running SHOES" and doc["query_norm"] == "trail running shoes"
    blank = ok(query="   ", session_id="")
    assert "query" not in blank and "query_norm" not in blank and "session_id" not in blank


def test_timestamps_parse_like_events_and_are_stored_as_utc() -> None:
    assert ok(timestamp="2024-05-01T12:00:00+02:00")["timestamp"] == "2024-05-01T10:00:00.000Z"
    assert ok(timestamp=1714557600)["timestamp"] == "2024-05-01T10:00:00.000Z"  # epoch seconds
    assert ok(timestamp="1714557600123")["timestamp"] == "2024-05-01T10:00:00.123Z"  # epoch ms as text
    assert ok(timestamp="2024-06-02T11:00:00Z")["timestamp"].startswith("2024-06-02")  # < 1 day ahead: skew
    assert any("more than 1 day after now" in r for r in bad(timestamp="2024-06-05T00:00:00Z"))
    assert any("before 1970" in r for r in bad(timestamp="1969-12-31T00:00:00Z"))


@pytest.mark.parametrize(
    "value",
    [
        ["P1", "P2", "P3"],
        ("P1", "P2", "P3"),
        np.array(["P1", "P2", "P3"]),  # Parquet list columns
        "P1|P2|P3",
        " P1 | P2|P3 ",
        '["P1", "P2", "P3"]',
        ' ["P1","P2","P3"] ',
    ],
)
def test_product_ids_forms(value: Any) -> None:
    doc = ok(product_ids=value)
    assert doc["product_ids"] == ["P1", "P2", "P3"] and doc["n_shown"] == 3


def test_numeric_product_ids_become_text_and_single_ids_are_a_list() -> None:
    assert ok(product_ids=[101, 102.0, "P3"])["product_ids"] == ["101", "102", "P3"]
    assert ok(product_ids="[5, 6]")["product_ids"] == ["5", "6"]
    assert ok(product_ids="P9")["product_ids"] == ["P9"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("P1||P3", "rank 2: empty product id"),
        (["P1", None, "P3"], "rank 2: empty product id"),
        (["P1", "", float("nan")], "rank 2: empty product id; rank 3: empty product id"),
        (["P1", {"id": 2}], "rank 2: {'id': 2} is not a valid id"),
        ("[1, 2", "is not a valid JSON array"),
        ('[["P1"]]', "rank 1: ['P1'] is not a valid id"),
        (" | ", "rank 1: empty product id"),
        ({"P1": 1}, "is not a list"),
        (12.5, "is not a list"),
    ],
)
def test_bad_product_ids_say_why(value: Any, expected: str) -> None:
    reasons = bad(product_ids=value)
    assert len(reasons) == 1 and reasons[0].startswith("product_ids: ") and expected in reasons[0], reasons


def test_every_required_field_is_reported_at_once_in_column_order() -> None:
    doc, reasons = normalize_impression({"query": "shoes", "product_ids": None}, now=NOW)
    assert doc is None
    assert reasons == [f"{name}: required, missing or empty" for name in REQUIRED_IMPRESSION_FIELDS[:3]] + [
        "product_ids: required, missing or null (a search that showed nothing is an empty list: [] or an empty cell)"
    ]
    assert list(REQUIRED_IMPRESSION_FIELDS) == ["request_id", "user_id", "timestamp", "product_ids"]


@pytest.mark.parametrize("value", [[], (), np.array([], dtype=object), "", "   ", "[]", " [ ] "])
def test_an_empty_page_is_a_search_that_showed_nothing(value: Any) -> None:
    """A search with no hits is a search: logged with nothing shown (the A/B report counts it, CTR 0)."""
    doc = ok(product_ids=value, query="zzz no such thing")
    assert doc["product_ids"] == [] and doc["n_shown"] == 0


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA])
def test_a_missing_or_null_product_ids_is_still_an_error(value: Any) -> None:
    """Only an explicit empty list is an empty page: a null (or an absent column) is a broken row."""
    assert bad(product_ids=value) == [
        "product_ids: required, missing or null (a search that showed nothing is an empty list: [] or an empty cell)"
    ]
    row = {k: v for k, v in BASE.items() if k != "product_ids"}
    doc, reasons = normalize_impression(row, now=NOW)
    assert doc is None and reasons == bad(product_ids=None)


def test_an_empty_search_under_an_experiment() -> None:
    """A/B: the variant is kept. Interleaving: an empty page has no teams either (an empty list, in line)."""
    ab = ok(product_ids=[], experiment="e", variant="treatment")
    assert (ab["experiment"], ab["variant"], ab["n_shown"]) == ("e", "treatment", 0) and "teams" not in ab
    for teams in ([], "", "[]"):
        il = ok(product_ids="", experiment="il", teams=teams)
        assert il["teams"] == [] and il["product_ids"] == [] and "variant" not in il
    # an empty teams cell of a search without an experiment (a CSV column) or of an A/B search is no teams
    assert "teams" not in ok(product_ids="P1|P2", teams="")
    assert "teams" not in ok(product_ids=[], experiment="e", variant="v", teams="")
    # still broken: an experiment without its variant or teams, teams that do not line up with the page
    assert bad(product_ids=[], experiment="e") == [
        "experiment: a search under an experiment names its variant (or its teams, interleaved)"
    ]
    assert bad(product_ids=[], experiment="e", teams=["control"]) == [
        "teams: 1 teams for 0 shown products (one per product, in order)"
    ]
    assert bad(product_ids="P1", experiment="e", teams=[]) == [
        "experiment: a search under an experiment names its variant (or its teams, interleaved)"
    ]


def test_a_row_with_every_problem_lists_every_reason() -> None:
    row = {
        "request_id": ["r"],
        "user_id": {"u": 1},
        "session_id": float("inf"),
        "timestamp": "yesterday-ish",
        "query": 42,
        "product_ids": "P1||",
        "experiment": ["e"],
        "variant": {"v": 1},
        "teams": 3.5,
        "unknown": "ignored",
    }
    doc, reasons = normalize_impression(row, now=NOW)
    assert doc is None and [r.partition(":")[0] for r in reasons] == list(IMPRESSION_FIELDS)
    assert "expected a string or integer, e.g. req-9" in reasons[0]
    assert "e.g. u-42" in reasons[1] and "s-42" in reasons[2]
    assert "'yesterday-ish' is not a date" in reasons[3]
    assert "42 is not text" in reasons[4]
    assert "rank 2: empty product id; rank 3: empty product id" in reasons[5]
    assert "e.g. mlp-vs-engine" in reasons[6] and "e.g. treatment" in reasons[7]
    assert "3.5 is not a list (expected the variant of each shown product)" in reasons[8]


def test_a_search_under_an_experiment() -> None:
    """v2 of the search log: the experiment and variant (A/B), or the teams of the shown products (interleaving)."""
    doc = ok(product_ids="P1|P2|P3", experiment="mlp-vs-engine", variant="treatment")
    assert (doc["experiment"], doc["variant"]) == ("mlp-vs-engine", "treatment") and "teams" not in doc
    doc = ok(product_ids="P1|P2|P3", experiment="il", teams=["control", "mlp", None])
    assert doc["teams"] == ["control", "mlp", ""] and "variant" not in doc
    assert ok(product_ids="P1|P2", experiment="il", teams="control|")["teams"] == ["control", ""]

    def reasons(**fields: object) -> list[str]:
        row = {"request_id": "r", "user_id": "u", "timestamp": "2024-05-01T10:00:00Z", "product_ids": "P1|P2"}
        doc, why = normalize_impression({**row, **fields}, now=NOW)
        assert doc is None
        return why

    assert reasons(variant="treatment") == [
        "variant: given without experiment (name the experiment the search was served under)"
    ]
    assert reasons(experiment="e") == [
        "experiment: a search under an experiment names its variant (or its teams, interleaved)"
    ]
    assert reasons(experiment="e", teams=["control"]) == [
        "teams: 1 teams for 2 shown products (one per product, in order)"
    ]


def test_unparseable_row_is_one_reason() -> None:
    doc, reasons = normalize_impression({PARSE_ERROR_KEY: "bad JSON at column 3"}, now=NOW)
    assert doc is None and reasons == ["row: could not be parsed (bad JSON at column 3)"]


def test_doc_id_is_the_request_id_so_reingesting_dedups() -> None:
    first = ok(product_ids="P1|P2")
    again = ok(product_ids=["P1", "P2"], timestamp="2024-05-01T12:00:00+02:00")
    assert first == again  # the same search, spelled differently, is the same document (id = request_id)


def test_mapping_matches_the_documents() -> None:
    spec = load_mapping(REPO / "mappings" / "searches.json", "searches")
    props = spec.mappings["properties"]
    assert spec.version == 2 and spec.mappings["dynamic"] == "strict"
    doc = ok(session_id="s", query="Shoes", experiment="e", variant="v", teams=["v", "w", ""])
    assert set(doc) | {"ingested_at"} == set(props)
    assert props["product_ids"]["type"] == "keyword" and props["n_shown"]["type"] == "integer"
    assert props["query"]["analyzer"] == "english" and props["query"]["fields"]["keyword"]["type"] == "keyword"
    keywords = ("request_id", "user_id", "session_id", "query_norm", "experiment", "variant", "teams")
    assert {props[f]["type"] for f in keywords} == {"keyword"}
    assert props["timestamp"]["type"] == props["ingested_at"]["type"] == "date"


def test_frame_contract_sorting_and_empty_frame() -> None:
    docs = [
        {**ok(request_id="b", query="Red Shoes"), "ingested_at": "2024-05-02T00:00:00.000Z"},
        {**ok(request_id="a", timestamp="2024-05-01T09:00:00Z"), "ingested_at": "2024-05-02T00:00:00.001Z"},
        {**ok(request_id="c", product_ids="P9"), "ingested_at": "2024-05-02T00:00:00.002Z"},
    ]
    frame = impressions_frame(docs)
    assert list(frame.columns) == list(IMPRESSION_COLUMNS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == IMPRESSION_COLUMNS
    assert list(frame["request_id"]) == ["a", "b", "c"]  # by timestamp, then request id
    assert frame["product_ids"].tolist() == [["P1", "P2", "P3"], ["P1", "P2", "P3"], ["P9"]]
    assert frame["query"].tolist() == [None, "Red Shoes", None]
    assert frame["query_norm"].tolist() == [None, "red shoes", None]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-05-01T09:00:00Z")
    empty = impressions_frame([])
    assert len(empty) == 0 and {n: str(d) for n, d in empty.dtypes.items()} == IMPRESSION_COLUMNS


def test_simulator_rows_normalise(tmp_path: Path) -> None:
    row = {
        "request_id": "q-000001",
        "user_id": "u0001",
        "session_id": "s1",
        "timestamp": "2024-05-01T10:00:00.250Z",
        "query": "running shoes",
        "product_ids": ["P000003", "P000001"],
    }
    path = tmp_path / "imp.jsonl"
    path.write_text(json.dumps(row) + "\n")
    doc = ok(**json.loads(path.read_text()))
    assert doc["timestamp"] == "2024-05-01T10:00:00.250Z" and doc["product_ids"] == ["P000003", "P000001"]


def test_the_number_of_products_shown_is_capped() -> None:
    """A search shows a page, not the catalog: thousands of ids in one row are a broken export."""
    many = [f"P{i}" for i in range(5000)]
    reasons = bad(product_ids=many)
    assert reasons == [
        "product_ids: 5000 ids, at most 1000 per search (one row is one page of results; raise the limit with "
        "--max-shown if your pages are longer)"
    ]
    assert ok(product_ids=many[:1000])["n_shown"] == 1000
    assert bad(product_ids="|".join(many))[0].startswith("product_ids: 5000 ids, at most 1000")
    doc, reasons = normalize_impression({**BASE, "product_ids": many}, now=NOW, max_shown=5000)
    assert reasons == [] and doc is not None and doc["n_shown"] == 5000


def test_deeply_nested_product_ids_are_a_reason_not_a_crash() -> None:
    reasons = bad(product_ids="[" * 10_000 + "]" * 10_000)
    assert len(reasons) == 1 and reasons[0].startswith("product_ids: ") and "nested too deeply" in reasons[0]


def test_request_id_limit_counts_bytes() -> None:
    assert bad(request_id="é" * 300)[0].startswith("request_id: 600 bytes, at most 512")


def test_the_cli_default_cap_is_the_validators() -> None:
    from fuserec_os.behaviour.search_log import MAX_SHOWN
    from fuserec_os.commands.ingest import DEFAULT_MAX_SHOWN

    assert DEFAULT_MAX_SHOWN == MAX_SHOWN
