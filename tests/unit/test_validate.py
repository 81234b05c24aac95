"""Unit tests for row normalisation: each rule is pinned so a regression shows up as a bad doc."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.index.validate import (
    PARSE_ERROR_KEY,
    PRODUCT_FIELDS,
    REQUIRED_FIELDS,
    normalize_product,
)


def ok(**fields: Any) -> dict[str, Any]:
    """Normalise a minimal valid row plus ``fields`` and insist it is accepted."""
    row = {"product_id": "p1", "title": "Thing", **fields}
    doc, reasons = normalize_product(row)
    assert reasons == []
    assert doc is not None
    return doc


def bad(**fields: Any) -> list[str]:
    """Normalise a row that must be rejected and return its reasons."""
    row = {"product_id": "p1", "title": "Thing", **fields}
    doc, reasons = normalize_product(row)
    assert doc is None
    assert reasons
    return reasons


def test_field_lists() -> None:
    assert set(REQUIRED_FIELDS) == {"product_id", "title"}
    assert "category_path" not in PRODUCT_FIELDS
    assert {"price", "tags", "attributes", "created_at", "popularity"} <= set(PRODUCT_FIELDS)


def test_minimal_row_has_only_given_keys() -> None:
    assert ok() == {"product_id": "p1", "title": "Thing"}


def test_full_row() -> None:
    doc = ok(
        description="Nice",
        brand="Acme",
        category="A > B",
        price="19.99",
        currency="usd",
        rating="4.5",
        review_count="12",
        in_stock="yes",
        tags="x|y",
        attributes="color=red",
        image_url="https://example.com/a.jpg",
        created_at="2024-05-01",
        popularity="0.5",
    )
    assert doc == {
        "product_id": "p1",
        "title": "Thing",
        "description": "Nice",
        "brand": "Acme",
        "category": "A > B",
        "category_path": ["A", "A > B"],
        "price": 19.99,
        "currency": "USD",
        "rating": 4.5,
        "review_count": 12,
        "in_stock": True,
        "tags": ["x", "y"],
        "attributes": ["color:red"],
        "image_url": "https://example.com/a.jpg",
        "created_at": "2024-05-01T00:00:00Z",
        "popularity": 0.5,
    }


# --- text -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Red   shoe\n\tdeluxe ", "Red shoe deluxe"),
        ("<p>Hello</p><p>World</p>", "Hello World"),
        ("line1<br>line2<br/>line3", "line1 line2 line3"),
        ("<ul><li>one</li><li>two</li></ul>", "one two"),
        ("<b>Blue</b>berry <i>jam</i>", "Blueberry jam"),
        ('<a href="x.html" class="c">link</a> text', "link text"),
        ("Tom &amp; Jerry&nbsp;&quot;DVD&quot; &#169;", 'Tom & Jerry "DVD" ©'),
        ("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>"),
        ("a < b and 5<6", "a < b and 5<6"),
        ("x<!-- hidden -->y", "x y"),
        ("<script>alert(1)</script>Safe<style>p{}</style>", "Safe"),
    ],
)
def test_text_html_and_whitespace(raw: str, expected: str) -> None:
    assert ok(description=raw)["description"] == expected


def test_title_and_brand_cleaned_too() -> None:
    doc = ok(title=" <h1>Big&amp;Tall</h1> ", brand="<span>ACME</span>  Inc")
    assert doc["title"] == "Big&Tall"
    assert doc["brand"] == "ACME Inc"


def test_empty_optional_text_is_omitted() -> None:
    doc = ok(description="   ", brand="<br>")
    assert "description" not in doc
    assert "brand" not in doc


def test_numeric_title_becomes_text() -> None:
    assert ok(title=1984)["title"] == "1984"


# --- required fields / product_id ---------------------------------------------------------------
@pytest.mark.parametrize("missing", [None, "", "   ", float("nan"), pd.NA])
def test_required_fields_missing(missing: Any) -> None:
    doc, reasons = normalize_product({"product_id": missing, "title": missing})
    assert doc is None
    assert reasons == ["product_id: required, missing or empty", "title: required, missing or empty"]


def test_required_fields_absent_keys() -> None:
    doc, reasons = normalize_product({"brand": "Acme"})
    assert doc is None
    assert "product_id: required, missing or empty" in reasons
    assert "title: required, missing or empty" in reasons


def test_title_only_html_is_rejected() -> None:
    reasons = bad(title="<p> </p>")
    assert len(reasons) == 1
    assert reasons[0].startswith("title: '<p> </p>' is empty")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (123, "123"),
        (123.0, "123"),
        (np.int64(7), "7"),
        (np.float64(8.0), "8"),
        ("  SKU-1 ", "SKU-1"),
        (12.5, "12.5"),
        (Decimal("42"), "42"),
    ],
)
def test_product_id_forms(raw: Any, expected: str) -> None:
    assert ok(product_id=raw)["product_id"] == expected


def test_product_id_too_long() -> None:
    reasons = bad(product_id="x" * 513)
    assert len(reasons) == 1
    assert reasons[0].startswith("product_id: 513 bytes, at most 512")
    assert "'xxx" in reasons[0]
    assert len(reasons[0]) < 200  # the value is truncated, not dumped whole
    assert ok(product_id="x" * 512)["product_id"] == "x" * 512


def test_product_id_limit_counts_utf8_bytes_not_characters() -> None:
    """The engine limits ids to 512 bytes: 300 accented letters are 600 bytes, one bad row, not a failed chunk."""
    reasons = bad(product_id="é" * 300)
    assert len(reasons) == 1
    assert reasons[0].startswith("product_id: 600 bytes, at most 512")
    assert "300 characters" in reasons[0] and len(reasons[0]) < 250
    assert ok(product_id="é" * 256)["product_id"] == "é" * 256  # exactly 512 bytes
    assert bad(product_id="😀" * 129)[0].startswith("product_id: 516 bytes, at most 512")


def test_product_id_not_scalar() -> None:
    assert bad(product_id=["a"])[0].startswith("product_id: ['a'] is not a valid id")


# --- numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19.99", 19.99),
        (" 7 ", 7.0),
        ("1,299.00", 1299.0),
        ("1,234,567.5", 1234567.5),
        ("$19.99", 19.99),
        ("€ 5", 5.0),
        ("£1,000", 1000.0),
        ("1e2", 100.0),
        (0, 0.0),
        (12, 12.0),
        (3.5, 3.5),
        (np.float32(2.5), 2.5),
        (np.int64(3), 3.0),
        (Decimal("9.95"), 9.95),
    ],
)
def test_price_parsing(raw: Any, expected: float) -> None:
    value = ok(price=raw)["price"]
    assert isinstance(value, float)
    assert value == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["abc", "19.99 USD", "1,29", "12,34,567", "1_000", "inf", True, [1]])
def test_price_not_a_number(raw: Any) -> None:
    assert bad(price=raw) == [f"price: {raw!r} is not a number (expected e.g. 19.99)"]


def test_price_infinite() -> None:
    assert bad(price=float("inf")) == ["price: inf is not a finite number (expected e.g. 19.99)"]


def test_price_negative_and_absent() -> None:
    assert bad(price="-5") == ["price: '-5' is negative (expected a number >= 0, e.g. 19.99)"]
    assert "price" not in ok(price="N/A")
    assert "price" not in ok(price="null")
    assert "price" not in ok(price="")
    assert "price" not in ok(price=None)


@pytest.mark.parametrize("raw", [float("nan"), np.float64("nan"), "NaN", "nan"])
@pytest.mark.parametrize("field", ["price", "rating", "review_count", "popularity"])
def test_nan_in_a_number_field_is_rejected_not_dropped(field: str, raw: Any) -> None:
    """NaN is a value someone wrote (JSON NaN, a NaN in Parquet, "NaN" in a cell), not an empty cell."""
    reasons = bad(**{field: raw})
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{field}: ") and "not a finite number" in reasons[0]
    assert "leave it empty" in reasons[0]


@pytest.mark.parametrize("raw", [1e308, "1e308", 10_000_000.01, "$20,000,000", np.float64(1e300)])
def test_absurd_price_is_rejected_with_the_bound(raw: Any) -> None:
    reasons = bad(price=raw)
    assert len(reasons) == 1
    assert reasons[0].startswith("price: ") and "above the maximum 10,000,000" in reasons[0]
    assert ok(price=10_000_000)["price"] == 10_000_000.0


def test_bounds_are_keyword_arguments() -> None:
    row = {"product_id": "p1", "title": "Thing", "price": "2e7", "popularity": "5e12"}
    doc, reasons = normalize_product(row)
    assert doc is None and [r.split(":")[0] for r in reasons] == ["price", "popularity"]
    assert "above the maximum 1,000,000,000,000" in reasons[1]
    doc, reasons = normalize_product(row, max_price=1e8, max_popularity=1e13)
    assert reasons == [] and doc is not None and doc["price"] == 2e7 and doc["popularity"] == 5e12
    assert normalize_product(dict(row, popularity=1), max_price=100)[1][0].startswith(
        "price: '2e7' is above the maximum 100"
    )


def test_absurd_counts_and_popularity_are_rejected() -> None:
    assert bad(review_count=1e308)[0].startswith("review_count: 1e+308 is too large")
    assert bad(popularity=1e308)[0].startswith("popularity: 1e+308 is above the maximum")
    assert ok(popularity=1e12)["popularity"] == 1e12


def test_deeply_nested_json_in_a_cell_is_a_reason_not_a_crash() -> None:
    deep = "[" * 10_000 + "]" * 10_000
    assert bad(attributes=deep)[0].startswith("attributes: ")
    assert bad(tags=deep)[0].startswith("tags: ")


def test_rating_range() -> None:
    assert ok(rating="5")["rating"] == 5.0
    assert ok(rating=0)["rating"] == 0.0
    assert bad(rating=5.1)[0].startswith("rating: 5.1 is out of range")
    assert bad(rating="-1")[0].startswith("rating: '-1' is out of range")


def test_review_count() -> None:
    assert ok(review_count="1,234")["review_count"] == 1234
    assert ok(review_count=12.0)["review_count"] == 12
    assert ok(review_count=np.int64(5))["review_count"] == 5
    assert isinstance(ok(review_count="3")["review_count"], int)
    assert bad(review_count="12.5")[0].startswith("review_count: '12.5' is not a whole number")
    assert bad(review_count=-1)[0].startswith("review_count: -1 is negative")
    assert bad(review_count=2**31)[0].startswith("review_count: 2147483648 is too large")


def test_popularity() -> None:
    assert ok(popularity="0")["popularity"] == 0.0
    assert bad(popularity=-0.1)[0].startswith("popularity: -0.1 is negative")


def test_currency() -> None:
    assert ok(currency=" eur ")["currency"] == "EUR"
    assert bad(currency="$") == ["currency: '$' is not a 3-letter currency code (expected e.g. USD, EUR)"]
    assert bad(currency="EURO")[0].startswith("currency: 'EURO'")


# --- booleans ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (1.0, True),
        (np.bool_(True), True),
        ("yes", True),
        ("NO", False),
        ("True", True),
        ("false", False),
        ("y", True),
        ("N", False),
        ("1", True),
        ("0", False),
        (" Yes ", True),
    ],
)
def test_booleans(raw: Any, expected: bool) -> None:
    assert ok(in_stock=raw)["in_stock"] is expected


@pytest.mark.parametrize("raw", ["maybe", 2, "2", "on"])
def test_not_booleans(raw: Any) -> None:
    assert bad(in_stock=raw) == [f"in_stock: {raw!r} is not a boolean (expected yes/no/true/false/1/0)"]


# --- dates ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01", "2024-05-01T00:00:00Z"),
        ("20240501", "2024-05-01T00:00:00Z"),
        ("2024-05-01T12:30:45", "2024-05-01T12:30:45Z"),
        ("2024-05-01 12:30:45", "2024-05-01T12:30:45Z"),
        ("2024-05-01T12:30:45Z", "2024-05-01T12:30:45Z"),
        ("2024-05-01T12:30:45.123456z", "2024-05-01T12:30:45Z"),
        ("2024-05-01T12:30:45+02:00", "2024-05-01T10:30:45Z"),
        ("2024-05-01T01:00:00-05:00", "2024-05-01T06:00:00Z"),
        ("2024-05-01 12:30:45 UTC", "2024-05-01T12:30:45Z"),
        (1714566645, "2024-05-01T12:30:45Z"),
        ("1714566645", "2024-05-01T12:30:45Z"),
        (1714566645000, "2024-05-01T12:30:45Z"),
        ("1714566645000", "2024-05-01T12:30:45Z"),
        (1714566645.9, "2024-05-01T12:30:45Z"),
        (np.int64(1714566645), "2024-05-01T12:30:45Z"),
        (datetime(2024, 5, 1, 12, 30, 45), "2024-05-01T12:30:45Z"),
        (datetime(2024, 5, 1, 12, 30, 45, tzinfo=timezone(timedelta(hours=9))), "2024-05-01T03:30:45Z"),
        (pd.Timestamp("2024-05-01 12:30:45", tz="America/New_York"), "2024-05-01T16:30:45Z"),
        (pd.Timestamp("2024-05-01 12:30:45"), "2024-05-01T12:30:45Z"),
        (np.datetime64("2024-05-01T12:30:45"), "2024-05-01T12:30:45Z"),
    ],
)
def test_dates_to_utc(raw: Any, expected: str) -> None:
    assert ok(created_at=raw)["created_at"] == expected


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-01", "01/05/2024", True])
def test_bad_dates(raw: Any) -> None:
    reasons = bad(created_at=raw)
    assert len(reasons) == 1
    assert reasons[0].startswith(f"created_at: {raw!r} is not a date (expected ISO 8601")


def test_absent_dates() -> None:
    assert "created_at" not in ok(created_at=pd.NaT)
    assert "created_at" not in ok(created_at="")


# --- category ---------------------------------------------------------------------------------
def test_category_normalised_and_path_derived() -> None:
    doc = ok(category="  Home >Kitchen   Tools>> Knives > ")
    assert doc["category"] == "Home > Kitchen Tools > Knives"
    assert doc["category_path"] == ["Home", "Home > Kitchen Tools", "Home > Kitchen Tools > Knives"]


def test_category_slash_is_not_a_separator() -> None:
    doc = ok(category="Electronics > TV/Audio")
    assert doc["category_path"] == ["Electronics", "Electronics > TV/Audio"]


def test_category_entities_and_list_form() -> None:
    assert ok(category="Home &amp; Garden &gt; Tools")["category"] == "Home & Garden > Tools"
    assert ok(category=["A", " B ", ""])["category_path"] == ["A", "A > B"]


def test_category_path_never_taken_from_input() -> None:
    doc = ok(category_path=["bogus"])
    assert "category_path" not in doc
    assert ok(category=" > > ").keys() == {"product_id", "title"}


# --- tags ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "red|blue| red |",
        "red, blue,red",
        ["red", " blue ", "red", ""],
        ("red", "blue", None),
        np.array(["red", "blue", "red"]),
        '["red", "blue", "red"]',
    ],
)
def test_tags_forms(raw: Any) -> None:
    assert ok(tags=raw)["tags"] == ["red", "blue"]


def test_tags_keep_order_and_case() -> None:
    assert ok(tags="b|a|B|a")["tags"] == ["b", "a", "B"]
    assert "tags" not in ok(tags=" | , ")
    assert "tags" not in ok(tags=[])


def test_tags_bad_item() -> None:
    assert bad(tags=["ok", {"x": 1}])[0].startswith("tags: item {'x': 1} is not text")


# --- attributes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        {"Color": "Red", " Size ": ["S", "M"]},
        ["color:Red", "size=S", "SIZE: M"],
        "Color=Red|size=S|size=M",
        "color:Red; size:S ;size:M",
        '{"color": "Red", "size": ["S", "M"]}',
        [("color", "Red"), ("size", "S"), ("size", "M")],
    ],
)
def test_attribute_forms(raw: Any) -> None:
    assert ok(attributes=raw)["attributes"] == ["color:Red", "size:S", "size:M"]


def test_attribute_values_trimmed_and_typed() -> None:
    doc = ok(attributes={"weight": 1.0, "waterproof": True, "note": "  a   b ", "empty": None})
    assert doc["attributes"] == ["weight:1", "waterproof:true", "note:a b"]
    assert ok(attributes="url=http://x.com/a")["attributes"] == ["url:http://x.com/a"]


def test_attribute_malformed_items_all_named() -> None:
    reasons = bad(attributes="color=red|nokey|=x|size:")
    assert len(reasons) == 1
    assert reasons[0].startswith("attributes: ")
    for item in ("'nokey'", "'=x'", "'size:'"):
        assert f"item {item} is malformed" in reasons[0]
    assert "'color=red'" not in reasons[0]
    assert reasons[0].count("expected key:value") == 1


def test_attribute_bad_json_and_type() -> None:
    assert bad(attributes='{"a": ')[0].startswith("attributes: '{\"a\": ' is not valid JSON")
    assert bad(attributes=42)[0].startswith("attributes: 42 is not a set of attributes")
    assert "value {'deep': 1}" in bad(attributes={"a": {"deep": 1}})[0]


# --- image url --------------------------------------------------------------------------------
def test_image_url() -> None:
    assert ok(image_url=" https://cdn.example.com/a.jpg ")["image_url"] == "https://cdn.example.com/a.jpg"
    assert ok(image_url="HTTP://x.org/i.png")["image_url"] == "HTTP://x.org/i.png"
    for raw in ("ftp://x.org/a.png", "//cdn/a.jpg", "https://", "https://a b.com/x"):
        assert bad(image_url=raw)[0].startswith(f"image_url: {raw!r} is not an http(s) URL")


# --- whole rows ---------------------------------------------------------------------------------
def test_all_problems_of_a_row_are_reported() -> None:
    doc, reasons = normalize_product(
        {
            "product_id": "",
            "title": "ok",
            "price": "abc",
            "in_stock": "maybe",
            "rating": "9",
            "created_at": "soon",
            "attributes": "broken",
            "image_url": "file:///x",
        }
    )
    assert doc is None
    fields = [reason.split(":", 1)[0] for reason in reasons]
    assert fields == ["product_id", "price", "rating", "in_stock", "attributes", "image_url", "created_at"]
    assert "price: 'abc' is not a number (expected e.g. 19.99)" in reasons
    assert "in_stock: 'maybe' is not a boolean (expected yes/no/true/false/1/0)" in reasons


def test_long_bad_value_is_truncated() -> None:
    reason = bad(price="x" * 500)[0]
    assert "x" * 58 not in reason
    assert "...'" in reason


def test_unknown_keys_ignored() -> None:
    doc = ok(color="red", **{"Unnamed: 0": 3, "category_path": "x"})
    assert doc == {"product_id": "p1", "title": "Thing"}


def test_parse_error_row_rejected() -> None:
    doc, reasons = normalize_product({PARSE_ERROR_KEY: "line 3: Expecting value at column 1"})
    assert doc is None
    assert reasons == ["row: could not be parsed (line 3: Expecting value at column 1)"]


def test_input_row_not_mutated() -> None:
    row = {"product_id": 5, "title": "<b>x</b>", "tags": ["a", "a"]}
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in row.items()}
    ok(**{k: v for k, v in row.items() if k not in ("product_id", "title")})
    normalize_product(row)
    assert row == before


def test_output_is_json_serialisable() -> None:
    import json

    doc = ok(price=np.float32(1.5), review_count=np.int64(2), in_stock=np.bool_(False), rating=Decimal("4"))
    text = json.dumps(doc)
    assert json.loads(text)["review_count"] == 2
    assert type(doc["in_stock"]) is bool
    assert not math.isnan(doc["price"])


def test_the_cli_default_bound_is_the_validators() -> None:
    from fuserec_os.commands.ingest import DEFAULT_MAX_PRICE
    from fuserec_os.index.validate import MAX_PRICE

    assert DEFAULT_MAX_PRICE == MAX_PRICE
