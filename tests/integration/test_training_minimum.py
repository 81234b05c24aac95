"""Training refuses too little data (model.min_searches), with a message saying how much there is and how much
is needed; a lower minimum in FUSEREC_CONFIG lets the same data train. Against a real engine, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Cli
from .readable import assert_readable

pytestmark = pytest.mark.integration

# 10 events: three searches with engagement on three days (one train, one valid, one test search) and views
TEN_EVENTS = [
    {"user_id": "u1", "type": "view", "product_id": "P000001", "timestamp": "2024-05-01T09:00:00Z"},
    {"user_id": "u1", "type": "click", "product_id": "P000002", "timestamp": "2024-05-01T10:00:05Z",
     "query": "running shoes", "position": 2, "request_id": "r1"},
    {"user_id": "u1", "type": "purchase", "product_id": "P000002", "timestamp": "2024-05-01T10:05:00Z",
     "request_id": "r1", "price": 10, "quantity": 1},
    {"user_id": "u2", "type": "view", "product_id": "P000003", "timestamp": "2024-05-02T09:00:00Z"},
    {"user_id": "u2", "type": "click", "product_id": "P000004", "timestamp": "2024-05-02T10:00:05Z",
     "query": "lamp", "position": 1, "request_id": "r2"},
    {"user_id": "u2", "type": "add_to_cart", "product_id": "P000004", "timestamp": "2024-05-02T10:01:00Z",
     "request_id": "r2"},
    {"user_id": "u3", "type": "view", "product_id": "P000005", "timestamp": "2024-05-03T09:00:00Z"},
    {"user_id": "u3", "type": "click", "product_id": "P000006", "timestamp": "2024-05-03T10:00:05Z",
     "query": "shoes", "position": 3, "request_id": "r3"},
    {"user_id": "u1", "type": "view", "product_id": "P000007", "timestamp": "2024-05-03T11:00:00Z"},
    {"user_id": "u2", "type": "view", "product_id": "P000008", "timestamp": "2024-05-03T12:00:00Z"},
]  # fmt: skip


@pytest.fixture
def ten_events(cli: Cli, tmp_path: Path) -> Cli:
    """A 50-product catalog and the 10 events above, stored under this test's prefix."""
    catalog = tmp_path / "catalog.jsonl"
    cli("generate", "catalog", "--n", "50", "--seed", "3", "-o", str(catalog))
    cli("ingest", "products", str(catalog), "--no-progress")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in TEN_EVENTS))
    cli("ingest", "events", str(events), "--no-progress")
    return cli


def test_training_on_ten_events_is_refused_saying_how_much_data_there_is_and_is_needed(
    ten_events: Cli, tmp_path: Path
) -> None:
    res = ten_events("model", "train", "--report-dir", str(tmp_path / "reports"), ok=False)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert (
        "too little data to train: searches with engagement train 1, valid 1, test 1; need at least train 50, "
        "valid 20, test 20 (model.min_searches in FUSEREC_CONFIG); ingest more events or lower the minimum"
    ) in res.stderr
    assert_readable(res.stderr)
    assert "registered" not in res.stdout  # nothing was stored
    assert "no models yet" in ten_events("model", "list").stdout
    # --no-register (evaluate only) is refused the same way: its numbers would mean as little
    again = ten_events("model", "train", "--no-register", "--report-dir", str(tmp_path / "reports"), ok=False)
    assert again.exit_code == 2 and "too little data to train" in again.stderr


def test_a_lower_minimum_lets_the_same_data_train(ten_events: Cli, tmp_path: Path) -> None:
    config = tmp_path / "ranking.yaml"
    config.write_text("model:\n  hidden: [8]\n  epochs: 1\n  min_searches: {train: 1, valid: 1, test: 1}\n")
    ten_events.env["FUSEREC_CONFIG"] = str(config)
    out = ten_events("model", "train", "--report-dir", str(tmp_path / "reports")).stdout
    assert "registered v1" in out
    shown = ten_events("model", "show", "v1").stdout
    assert "min_searches (test 1, train 1, valid 1)" in shown, shown  # the stored config, keys sorted
    # one setting is enough: the others keep their defaults, and the message names the one that is short
    config.write_text("model:\n  hidden: [8]\n  epochs: 1\n  min_searches: {train: 1, valid: 1}\n")
    short = ten_events("model", "train", "--report-dir", str(tmp_path / "reports"), ok=False)
    assert short.exit_code == 2
    assert "searches with engagement train 1, valid 1, test 1; need at least train 1, valid 1, test 20" in short.stderr
