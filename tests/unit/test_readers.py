"""Unit tests for input readers: every format round-trips through a real file in tmp_path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fuserec_os.errors import InputFileError
from fuserec_os.index.readers import PARSE_ERROR_KEY, detect_format, parse_column_map, read_rows
from fuserec_os.index.rejects import RejectsWriter
from fuserec_os.index.validate import PRODUCT_FIELDS, RAW_LINE_KEY, normalize_product

ROWS = [
    {"product_id": "1", "name": "Red shoe", "price": "19.99", "extra": "x"},
    {"product_id": "2", "name": "Blue hat", "price": "", "extra": "y"},
    {"product_id": "3", "name": 'Green, "big" bag', "price": "1,299.00", "extra": "z"},
]


def write_csv(path: Path, rows: list[dict[str, Any]], sep: str = ",") -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, sep=sep)
    return path


def write_jsonl(path: Path, lines: list[str], compress: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def collect(path: Path, column_map: dict[str, str] | None = None, **kw: Any) -> list[tuple[int, dict[str, Any]]]:
    return list(read_rows(path, column_map, **kw))


# --- parse_column_map ---------------------------------------------------------------------------
def test_parse_column_map() -> None:
    assert parse_column_map(None) == {}
    assert parse_column_map("  ") == {}
    assert parse_column_map("title=name, brand = manufacturer,") == {"title": "name", "brand": "manufacturer"}
    assert parse_column_map("title=a=b") == {"title": "a=b"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("title", "--map item 'title' is not field=column"),
        ("title=", "--map item 'title=' is not field=column"),
        ("=name", "--map item '=name' is not field=column"),
        ("colour=name", "'colour' is not a field we know"),
        ("title=a,title=b", "field 'title' is already mapped to column 'a'"),
    ],
)
def test_parse_column_map_errors(spec: str, fragment: str) -> None:
    with pytest.raises(InputFileError) as info:
        parse_column_map(spec)
    assert fragment in str(info.value)
    if "not field=column" in fragment:
        assert "e.g. --map title=name" in str(info.value)
    if "not a field we know" in fragment:
        assert ", ".join(PRODUCT_FIELDS) in str(info.value)


def test_parse_column_map_custom_allowed() -> None:
    assert parse_column_map("user_id=uid", allowed=["user_id", "item_id"]) == {"user_id": "uid"}
    with pytest.raises(InputFileError, match="expected one of: user_id, item_id"):
        parse_column_map("title=name", allowed=["user_id", "item_id"])


# --- detect_format ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.csv.gz", "csv"),
        ("a.jsonl.gz", "jsonl"),
        ("my.data.tsv.gz", "tsv"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


@pytest.mark.parametrize(("name", "shown"), [("a.xlsx", "'.xlsx'"), ("catalog", "'(none)'"), ("a.txt.gz", "'.txt.gz'")])
def test_detect_format_unknown(name: str, shown: str) -> None:
    with pytest.raises(InputFileError) as info:
        detect_format(name)
    message = str(info.value)
    assert shown in message
    assert ".csv" in message and ".parquet" in message and ".jsonl" in message


def test_detect_format_gz_parquet() -> None:
    with pytest.raises(InputFileError, match="cannot be gzip-compressed"):
        detect_format("a.parquet.gz")


# --- missing / bad files ----------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputFileError, match="not found") as info:
        read_rows(path)
    assert str(path) in str(info.value)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not a file"):
        read_rows(tmp_path)


def test_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputFileError, match="has no rows"):
        read_rows(path)


def _write_parquet_without_rows(path: Path) -> None:
    pd.DataFrame({"product_id": pd.Series([], dtype="str"), "title": pd.Series([], dtype="str")}).to_parquet(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.csv", b""),
        ("empty.tsv", b""),
        ("empty.jsonl", b""),
        ("empty.ndjson", b""),
        ("empty.json", b""),
        ("header-only.csv", b"product_id,title\n"),
        ("blank-lines.jsonl", b"\n  \n\n"),
        ("empty-array.json", b"[]"),
        ("empty.jsonl.gz", gzip.compress(b"")),
        ("header-only.csv.gz", gzip.compress(b"product_id,title\n")),
        ("no-rows.parquet", None),
    ],
)
def test_no_rows_is_one_error_for_every_format(tmp_path: Path, name: str, content: bytes | None) -> None:
    """One rule for empty input: whatever the format, a file without a single row is an input error (exit 8)."""
    path = tmp_path / name
    if content is None:
        _write_parquet_without_rows(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        read_rows(path)
    assert str(info.value).startswith(f"{path} has no rows")
    assert info.value.exit_code == 8


def test_broken_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputFileError, match="cannot read Parquet file"):
        read_rows(path)


# --- CSV / TSV --------------------------------------------------------------------------------
def test_csv_round_trip(tmp_path: Path) -> None:
    reader = read_rows(write_csv(tmp_path / "c.csv", ROWS))
    assert reader.columns == ["product_id", "name", "price", "extra"]
    assert reader.total_rows is None
    rows = list(reader)
    assert [number for number, _ in rows] == [1, 2, 3]
    assert [row for _, row in rows] == ROWS  # raw strings, "" kept, quotes/commas intact
    assert list(reader) == rows  # re-iterable


def test_csv_keeps_raw_strings(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    path.write_text("product_id,title,price\n007,NA,N/A\n1.0,null,\n", encoding="utf-8")
    rows = [row for _, row in collect(path)]
    assert rows == [
        {"product_id": "007", "title": "NA", "price": "N/A"},
        {"product_id": "1.0", "title": "null", "price": ""},
    ]


def test_csv_short_row_and_bom_and_header_spaces(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffproduct_id, title ,price\n1,Hat\n".encode())
    reader = read_rows(path)
    assert reader.columns == ["product_id", "title", "price"]
    assert [row for _, row in reader] == [{"product_id": "1", "title": "Hat", "price": ""}]


def test_tsv_and_gz(tmp_path: Path) -> None:
    tsv = write_csv(tmp_path / "c.tsv", ROWS, sep="\t")
    assert [row for _, row in collect(tsv)] == ROWS
    gz = tmp_path / "c.csv.gz"
    pd.DataFrame(ROWS).to_csv(gz, index=False, compression="gzip")
    assert [row for _, row in collect(gz)] == ROWS


def test_csv_chunks_keep_counting(tmp_path: Path) -> None:
    rows = [{"product_id": str(i), "title": f"t{i}"} for i in range(1, 12)]
    got = collect(write_csv(tmp_path / "many.csv", rows), chunk_size=4)
    assert [number for number, _ in got] == list(range(1, 12))
    assert [row["product_id"] for _, row in got] == [str(i) for i in range(1, 12)]


def test_csv_malformed_line_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="line 3"):
        collect(path)


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("product_id,title\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        collect(path)


# --- column map -------------------------------------------------------------------------------
def test_column_map_renames(tmp_path: Path) -> None:
    reader = read_rows(write_csv(tmp_path / "c.csv", ROWS), {"title": "name"})
    assert reader.columns == ["product_id", "title", "price", "extra"]
    first = next(iter(reader))
    assert first == (1, {"product_id": "1", "title": "Red shoe", "price": "19.99", "extra": "x"})
    doc, reasons = normalize_product(first[1])
    assert reasons == [] and doc is not None and doc["title"] == "Red shoe"


def test_column_map_shadowed_and_copied(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [{"title": "old", "name": "new", "sku": "9"}])
    reader = read_rows(path, {"title": "name", "product_id": "sku", "description": "name"})
    assert reader.columns == ["title", "description", "product_id"]
    assert [row for _, row in reader] == [{"title": "new", "description": "new", "product_id": "9"}]


def test_column_map_missing_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ROWS)
    with pytest.raises(InputFileError) as info:
        read_rows(path, {"title": "heading"})
    message = str(info.value)
    assert "'heading'" in message
    assert "product_id, name, price, extra" in message


def test_column_map_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [json.dumps({"id": 1, "name": "A", "title": "ignored"})])
    rows = collect(path, {"product_id": "id", "title": "name"})
    assert rows == [(1, {"product_id": 1, "title": "A"})]


# --- JSON Lines / JSON ------------------------------------------------------------------------
def test_jsonl_round_trip_with_types(tmp_path: Path) -> None:
    lines = [
        json.dumps({"product_id": 1, "title": "A", "tags": ["x", "y"], "attributes": {"c": "r"}}),
        "",
        json.dumps({"product_id": "2", "title": "B", "price": None, "in_stock": True}),
    ]
    reader = read_rows(write_jsonl(tmp_path / "p.jsonl", lines))
    assert reader.columns == ["product_id", "title", "tags", "attributes", "price", "in_stock"]
    assert reader.total_rows == 2
    rows = list(reader)
    assert rows == [
        (1, {"product_id": 1, "title": "A", "tags": ["x", "y"], "attributes": {"c": "r"}}),
        (2, {"product_id": "2", "title": "B", "price": None, "in_stock": True}),
    ]


def test_jsonl_nan_reaches_the_validator_which_rejects_it(tmp_path: Path) -> None:
    """A JSON NaN is a value someone wrote, not an absent one: it must not vanish before validation."""
    path = write_jsonl(tmp_path / "n.ndjson", ['{"product_id": "1", "title": "A", "price": NaN}'])
    ((number, row),) = collect(path)
    assert number == 1 and row["price"] != row["price"]
    doc, reasons = normalize_product(row)
    assert doc is None and reasons[0].startswith("price: nan is not a finite number")


def test_jsonl_deeply_nested_line_is_a_parse_error_row_with_its_raw_text(tmp_path: Path) -> None:
    deep = '{"product_id": "2", "title": ' + "[" * 10_000 + "]" * 10_000 + "}"
    lines = ['{"product_id": "1", "title": "A"}', deep, '{"product_id": "3", "title": "C"}']
    rows = collect(write_jsonl(tmp_path / "deep.jsonl", lines))
    assert [number for number, _ in rows] == [1, 2, 3]
    assert rows[1][1][PARSE_ERROR_KEY].startswith("line 2: nested too deeply")
    assert rows[1][1][RAW_LINE_KEY] == deep
    doc, reasons = normalize_product(rows[1][1])
    assert doc is None and reasons[0].startswith("row: could not be parsed (line 2: nested too deeply")
    assert rows[2][1] == {"product_id": "3", "title": "C"}


def test_deeply_nested_json_array_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('[{"product_id": "1", "title": ' + "[" * 10_000 + "]" * 10_000 + "}]")
    with pytest.raises(InputFileError, match="nested too deeply"):
        read_rows(path)


def test_jsonl_malformed_line_does_not_kill_file(tmp_path: Path) -> None:
    lines = [
        '{"product_id": "1", "title": "A"}',
        '{"product_id": "2", "title": ',
        "[1, 2]",
        '{"product_id": "4", "title": "D"}',
    ]
    rows = collect(write_jsonl(tmp_path / "p.jsonl", lines))
    assert [number for number, _ in rows] == [1, 2, 3, 4]
    assert rows[0][1] == {"product_id": "1", "title": "A"}
    assert set(rows[1][1]) == {PARSE_ERROR_KEY, RAW_LINE_KEY}
    assert rows[1][1][PARSE_ERROR_KEY].startswith("line 2: Expecting value at column")
    assert rows[1][1][RAW_LINE_KEY] == '{"product_id": "2", "title": '  # kept for the rejects file
    assert rows[2][1] == {PARSE_ERROR_KEY: "line 3: expected a JSON object, got list", RAW_LINE_KEY: "[1, 2]"}
    assert rows[3][1] == {"product_id": "4", "title": "D"}
    doc, reasons = normalize_product(rows[1][1])
    assert doc is None and reasons[0].startswith("row: could not be parsed (line 2:")


def test_jsonl_bad_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n{"a": "ok"}\n')
    rows = collect(path)
    assert rows[0][1][PARSE_ERROR_KEY].startswith("line 1: not UTF-8")
    assert rows[1] == (2, {"a": "ok"})


def test_jsonl_beyond_first_chunk(tmp_path: Path) -> None:
    lines = [json.dumps({"product_id": str(i)}) for i in range(1, 8)]
    lines.insert(5, "")  # a blank line is not a row but still counts as a line
    lines.insert(6, "{oops")
    reader = read_rows(write_jsonl(tmp_path / "big.jsonl", lines), chunk_size=3)
    assert reader.total_rows is None
    rows = list(reader)
    assert [number for number, _ in rows] == list(range(1, 9))
    assert rows[5][1][PARSE_ERROR_KEY].startswith("line 7:")
    assert [row.get("product_id") for _, row in rows] == ["1", "2", "3", "4", "5", None, "6", "7"]
    assert list(reader) == rows


def test_jsonl_gz(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl.gz", ['{"product_id": "1"}', '{"product_id": "2"}'], compress=True)
    assert collect(path) == [(1, {"product_id": "1"}), (2, {"product_id": "2"})]


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"product_id": "1", "title": "A"}, 5, {"product_id": "3"}]))
    reader = read_rows(path, {"product_id": "product_id"})
    assert reader.total_rows == 3
    assert reader.columns == ["product_id", "title"]
    rows = list(reader)
    assert rows[0] == (1, {"product_id": "1", "title": "A"})
    assert rows[1] == (2, {PARSE_ERROR_KEY: "item 2: expected a JSON object, got int", RAW_LINE_KEY: "5"})
    assert rows[2] == (3, {"product_id": "3"})


def test_json_file_of_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.json", ['{"product_id": "1"}', '{"product_id": "2"}'])
    assert [row for _, row in collect(path)] == [{"product_id": "1"}, {"product_id": "2"}]


def test_json_array_invalid(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('[{"product_id": "1"},')
    with pytest.raises(InputFileError, match="invalid JSON at line 1"):
        read_rows(path)


# --- Parquet ----------------------------------------------------------------------------------
def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "product_id": [1, 2, 3],
            "title": ["A", None, "C"],
            "price": [1.5, float("nan"), 3.0],
            "tags": [["x"], [], ["y", "z"]],
            "created_at": pd.to_datetime(["2024-05-01T12:00:00Z"] * 3),
        }
    )
    path = tmp_path / "p.parquet"
    frame.to_parquet(path, index=False)
    reader = read_rows(path, chunk_size=2)
    assert reader.total_rows == 3
    assert reader.columns == ["product_id", "title", "price", "tags", "created_at"]
    rows = list(reader)
    assert [number for number, _ in rows] == [1, 2, 3]
    assert rows[1][1]["title"] is None
    assert rows[1][1]["price"] is None  # NaN -> None
    assert rows[0][1]["price"] == 1.5
    assert rows[2][1]["tags"] == ["y", "z"]
    doc, reasons = normalize_product(rows[0][1])
    assert reasons == [] and doc is not None
    assert doc["created_at"] == "2024-05-01T12:00:00Z"
    assert doc["product_id"] == "1"


def test_parquet_column_map(tmp_path: Path) -> None:
    path = tmp_path / "p.pq"
    pd.DataFrame({"sku": ["a"], "name": ["N"]}).to_parquet(path, index=False)
    assert collect(path, {"product_id": "sku", "title": "name"}) == [(1, {"product_id": "a", "title": "N"})]
    with pytest.raises(InputFileError, match="'brand_name' is not in"):
        read_rows(path, {"brand": "brand_name"})


# --- the rejects file -------------------------------------------------------------------------
def _strict_json(line: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in the rejects file: {line}")

    return json.loads(line, parse_constant=refuse)


def test_rejects_file_is_strict_json_and_keeps_raw_lines(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "in.jsonl"
    bad_line = '{"product_id": "2", "title": '
    path.write_text(
        '{"product_id": "1", "title": "A", "price": NaN, "rating": Infinity, "popularity": -Infinity}\n'
        + bad_line
        + "\n"
    )
    writer = RejectsWriter(tmp_path / "rejects.jsonl")
    for number, row in read_rows(path):
        doc, reasons = normalize_product(row)
        assert doc is None
        writer.add(number, row, reasons)
    writer.add(3, {"product_id": "4", "price": np.float32("nan"), "nested": {"x": [float("inf")]}}, ["made up"])
    writer.close()
    records = [_strict_json(line) for line in writer.path.read_text(encoding="utf-8").splitlines()]
    assert records[0]["record"] == {
        "product_id": "1",
        "title": "A",
        "price": "NaN",
        "rating": "Infinity",
        "popularity": "-Infinity",
    }
    assert [r.split(":")[0] for r in records[0]["reasons"]] == ["price", "rating", "popularity"]
    assert records[1]["row"] == 2 and records[1]["raw"] == bad_line and records[1]["product_id"] is None
    assert records[1]["reasons"][0].startswith("row: could not be parsed (line 2:")
    assert "record" not in records[1]
    assert records[2]["record"] == {"product_id": "4", "price": "NaN", "nested": {"x": ["Infinity"]}}
