"""The embedded engine serves across CLI invocations, and stop/start keeps every index.

This test always runs its own osmem (that is the feature under test), also when a real cluster is
configured for the rest of the suite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuserec_os.engine import embedded as emb

from .conftest import Cli
from .readable import assert_readable


@pytest.fixture
def embedded_cli(tmp_path: Path) -> Iterator[Cli]:
    state = tmp_path / "state"
    cli = Cli(
        {"FUSEREC_OPENSEARCH_URL": None, "FUSEREC_STATE_DIR": str(state), "FUSEREC_INDEX_PREFIX": None},
        tmp_path,
    )
    yield cli
    emb.stop_background(state, save=False)


def _catalog(path: Path) -> Path:
    rows = [
        {
            "product_id": "A1",
            "title": "Trail running shoes",
            "brand": "Acme",
            "price": "89.90",
            "in_stock": "yes",
        },
        {
            "product_id": "A2",
            "title": "Espresso coffee maker",
            "brand": "Brewco",
            "price": "149",
            "in_stock": "no",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_start_ingest_search_stop_restart(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    status = cli("engine", "status", "--json", ok=False)
    assert status.exit_code == 1 and json.loads(status.stdout)["running"] is False

    start = cli("engine", "start", "--json")
    started = json.loads(start.stdout)
    assert started["url"].startswith("http://127.0.0.1:") and not started["already_running"]
    assert "embedded in-memory dev engine" in start.stderr  # said loudly, on stderr, once per start
    again = cli("engine", "start", "--json")
    assert json.loads(again.stdout)["already_running"] is True
    assert "embedded in-memory dev engine" not in again.stderr

    ingest = cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    assert "indexed 2" in ingest.stdout
    assert ingest.stderr.strip() == ""  # not on every command that uses the running engine

    # a separate invocation finds the same engine and the data
    hits = json.loads(cli("search", "running", "--json").stdout)
    assert [h["id"] for h in hits["hits"]] == ["A1"]

    stopped = json.loads(cli("engine", "stop", "--json").stdout)
    assert stopped["stopped"] and stopped["saved"]["documents"] == 2
    assert emb.running_engine(tmp_path / "state") is None

    restarted = json.loads(cli("engine", "start", "--json").stdout)
    assert restarted["url"]
    hits = json.loads(cli("search", "coffee", "--json").stdout)
    assert [h["id"] for h in hits["hits"]] == ["A2"]
    status = json.loads(cli("engine", "status", "--json").stdout)
    assert status["running"] and sum(status["indices"].values()) == 2
    text = cli("engine", "status").stdout
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", text) and status["started_at"] in text, text
    assert_readable(text)
    # aliases came back too: the index status sees the alias pointing at the saved index
    idx = json.loads(cli("index", "status", "--json").stdout)
    assert len(idx["live"]) == 1 and idx["indices"][0]["docs"] == 2


def test_without_engine_a_temporary_one_is_used_and_says_so(embedded_cli: Cli, tmp_path: Path) -> None:
    first = embedded_cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    # one quiet line, and nothing from the engine process itself (no "osmem-server: exiting: stdin closed")
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and "temporary" in lines[0] and "nothing" in lines[0] and "kept" in lines[0], lines
    assert "osmem" not in first.stderr
    again = embedded_cli("search", "running", "--json", ok=False)
    # the temporary engine is gone: the next command starts empty and explains what to do
    assert again.exit_code != 0
    assert "fuserec index create" in again.stderr
