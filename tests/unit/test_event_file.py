"""Held-out events read from a file (``model evaluate --test-file``): the ingest's reader and validator, nothing
stored, a bad row refused by number, identical repeats counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuserec_os.behaviour.event_file import read_event_file
from fuserec_os.errors import InputFileError


def test_a_clean_file_reads_like_an_ingest_with_map_and_set(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv"
    path.write_text(
        "visitor,sku,ts,term\n"
        "u1,P1,2024-04-01T10:00:00Z,Trail  Shoes\n"
        "u2,P2,1711965600,boots\n"
        "u1,P1,2024-04-01T10:00:00Z,Trail  Shoes\n"  # an identical repeat: kept once, counted
    )
    got = read_event_file(
        path,
        column_map={"user_id": "visitor", "product_id": "sku", "timestamp": "ts", "query": "term"},
        constants={"type": "click"},
    )
    assert got.read == 3 and got.repeats == 1 and len(got.events) == 2
    assert list(got.events["type"]) == ["click", "click"] and set(got.events["user_id"]) == {"u1", "u2"}
    assert "trail shoes" in set(got.events["query_norm"]) and got.events["event_id"].is_unique
    assert not (tmp_path / "clicks.csv.rejects.jsonl").exists()


def test_any_invalid_row_refuses_the_file_naming_rows_and_the_rejects_file(tmp_path: Path) -> None:
    path = tmp_path / "held.jsonl"
    rows = [
        {"user_id": "u1", "product_id": "P1", "type": "click", "timestamp": "2024-04-01T10:00:00Z"},
        {"user_id": "u2", "product_id": "P2", "type": "clack", "timestamp": "2024-04-01T10:00:00Z"},
        {"user_id": "u3", "product_id": "P3", "type": "click", "timestamp": "not a time"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputFileError) as err:
        read_event_file(path)
    message = str(err.value)
    assert message.startswith(f"--test-file {path}: 2 of 3 row(s) invalid, e.g. row 2: type:")
    assert "row 3: timestamp" in message and "'fuserec ingest events'" in message
    rejects = [json.loads(line) for line in (tmp_path / "held.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 3] and all(r["reasons"] for r in rejects)


def test_a_reused_event_id_is_a_rejected_row_not_a_repeat(tmp_path: Path) -> None:
    path = tmp_path / "held.csv"
    path.write_text(
        "event_id,user_id,product_id,type,timestamp\n"
        "e1,u1,P1,click,2024-04-01T10:00:00Z\n"
        "e1,u1,P1,purchase,2024-04-01T10:05:00Z\n"
    )
    with pytest.raises(InputFileError, match=r"1 of 2 row\(s\) invalid, e.g. row 2: event_id: 'e1' of row 2 is also"):
        read_event_file(path)


def test_a_bad_constant_or_a_missing_file_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="input file not found"):
        read_event_file(tmp_path / "nope.csv")
    path = tmp_path / "held.csv"
    path.write_text("user_id,product_id,timestamp\nu1,P1,2024-04-01T10:00:00Z\n")
    with pytest.raises(InputFileError, match="--set type=clack"):
        read_event_file(path, constants={"type": "clack"})
