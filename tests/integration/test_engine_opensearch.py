"""``fuserec engine start --engine opensearch``: a real single-node OpenSearch, recorded like osmem (issue 9).

Starts a real JVM (5-15 s per start; the launcher is built once with Maven if ``engines/opensearch/target/``
is not current). Every command of the test finds the node through ``engine.json``; stop and start again
show that its data persists on disk. Like the osmem lifecycle tests, it always runs its own engine, also when
a cluster is configured for the rest of the suite, and the node is stopped whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuserec_os.engine import embedded as emb
from fuserec_os.engine import opensearch_node as osn

from .conftest import Cli
from .test_engine_lifecycle import _catalog


@pytest.fixture
def node_cli(tmp_path: Path) -> Iterator[Cli]:
    state = tmp_path / "state"
    cli = Cli(
        {
            "FUSEREC_OPENSEARCH_URL": None,
            "FUSEREC_STATE_DIR": str(state),
            "FUSEREC_INDEX_PREFIX": None,
            "FUSEREC_ENGINE": None,
        },
        tmp_path,
    )
    try:
        yield cli
    finally:
        emb.stop_background(state, save=False)
        node = osn.read_recorded(emb.opensearch_home(state))  # a node started but never recorded, too
        if node is not None:
            node.stop()


def test_opensearch_engine_start_use_stop_restart_keeps_data(node_cli: Cli, tmp_path: Path) -> None:
    cli = node_cli
    state = tmp_path / "state"
    started = json.loads(cli("engine", "start", "--engine", "opensearch", "--heap", "512m", "--json").stdout)
    assert started["kind"] == "opensearch" and not started["already_running"]
    assert started["url"].startswith("http://127.0.0.1:") and started["version"].startswith("3.")
    record = json.loads((state / "engine.json").read_text())
    assert record["kind"] == "opensearch" and record["state"] == "running" and record["pid_start"] is not None
    assert "-Xmx512m" in Path(f"/proc/{record['pid']}/cmdline").read_text().split("\0")

    status = json.loads(cli("engine", "status", "--json").stdout)
    assert status["kind"] == "opensearch" and status["running"] and status["state"] == "running"
    assert status["version"] == started["version"] and status["pid"] == started["pid"]

    # without --engine, another kind is not started: the running node is said, nothing changes
    again = cli("engine", "start")
    assert "OpenSearch" in again.stdout and "already running" in again.stdout
    # naming the other kind is refused (exit 2) and says what runs
    other = cli("engine", "start", "--engine", "osmem", ok=False)
    assert other.exit_code == 2 and "OpenSearch" in other.stderr and "engine stop" in other.stderr
    assert json.loads((state / "engine.json").read_text())["pid"] == record["pid"]

    # every command finds the recorded node
    assert json.loads(cli("index", "create", "--json").stdout)
    ingest = cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    assert "indexed 2" in ingest.stdout
    hits = json.loads(cli("search", "running", "--json").stdout)
    assert [h["id"] for h in hits["hits"]] == ["A1"]
    assert sum(json.loads(cli("engine", "status", "--json").stdout)["indices"].values()) == 2

    stop = cli("engine", "stop")
    assert f"stopped OpenSearch {started['version']}" in stop.stdout and "data stays in" in stop.stdout
    assert not emb.pid_alive(record["pid"]) and not (state / "engine.json").exists()
    assert emb.read_crash(state) is None  # a stopped node lost nothing
    assert cli("engine", "status", ok=False).exit_code == 1

    # real persistence: the next start (FUSEREC_ENGINE picks the kind now) finds the data on disk
    cli.env["FUSEREC_ENGINE"] = "opensearch"
    restarted = json.loads(cli("engine", "start", "--json").stdout)
    assert restarted["kind"] == "opensearch" and not restarted["already_running"]
    assert restarted["pid"] != started["pid"]
    hits = json.loads(cli("search", "coffee", "--json").stdout)
    assert [h["id"] for h in hits["hits"]] == ["A2"]
    stopped = json.loads(cli("engine", "stop", "--json").stdout)
    assert stopped["stopped"] and stopped["kind"] == "opensearch"
