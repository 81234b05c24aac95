"""The embedded engine serves across CLI invocations, and stop/start keeps every index.

Also under load (issue 8): a busy engine (simulated with SIGSTOP) is busy, not gone; a starting one is
recorded at once and waited for; a dead or recycled pid is cleared; a killed engine is reported with the time
of the last save; damaged saved indices are set aside; a start fails at once when its process dies and stops
what it launched when it runs out of time. Stand-in binaries (OSMEM_SERVER_BIN) play the slow or broken engine.

These tests always run their own osmem (that is the feature under test), also when a real cluster is
configured for the rest of the suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from opensearchpy import OpenSearch
from osmem_server import resolve_binary

from fuserec_os.engine import embedded as emb

from .conftest import REPO, Cli
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


# --- under load: slow is not dead, a crash is said, a bad saved file is set aside (issue 8) -------------------

PYTHON = sys.executable
REAL_BINARY = resolve_binary()


def _record(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "engine.json").read_text()))


def _alive(pid: int) -> bool:
    return emb.pid_alive(pid)


def _process_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``T``: stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(check: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll ``check`` (a bound, not a timing assertion: it only keeps a broken build from hanging)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _fake_engine(tmp_path: Path, name: str, body: str) -> Path:
    """A stand-in for the osmem binary (OSMEM_SERVER_BIN): a shell script given the same arguments."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _process_env(cli: Cli, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
    env.update({k: v for k, v in cli.env.items() if v is not None})
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_a_busy_engine_is_busy_not_gone_commands_wait_and_stop_saves_it(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    cli("engine", "start")
    cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    pid = _record(state)["pid"]
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing: what a long ingest looks like from outside
    # the signal is delivered asynchronously: under load the engine may still answer a request or two
    _until(lambda: _process_state(pid) == "T", "the engine to be stopped by SIGSTOP")
    try:
        status = cli("engine", "status", "--json", ok=False)
        assert status.exit_code != 0
        shown = json.loads(status.stdout)
        assert shown["state"] == "busy" and shown["pid"] == pid and shown["running"] is True
        assert _record(state)["pid"] == pid  # the record stays: the engine is not gone

        cli.env["FUSEREC_ENGINE_WAIT"] = "1"
        waited = cli("index", "status", ok=False)
        assert waited.exit_code == 3, waited.stderr
        assert "waiting" in waited.stderr and "busy" in waited.stderr and f"pid {pid}" in waited.stderr
        assert "uses a temporary" not in waited.stderr  # never a throwaway engine while ours is alive

        refused = cli("engine", "stop", ok=False)  # it cannot save a frozen engine: says so and keeps it
        assert refused.exit_code != 0
        assert "not saved" in refused.stderr and "--no-save" in refused.stderr
        assert _alive(pid) and _record(state)["pid"] == pid
    finally:
        os.kill(pid, signal.SIGCONT)
    stopped = json.loads(cli("engine", "stop", "--json").stdout)
    assert stopped["stopped"] and stopped["saved"]["documents"] == 2
    assert not (state / "engine.json").exists()
    _until(lambda: not _alive(pid), "the stopped engine to exit")


def test_start_records_a_starting_engine_at_once_and_commands_wait_for_it(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    gate = tmp_path / "gate"
    # an engine that takes as long to load as we like: it starts the real one only once `gate` exists
    slow = _fake_engine(
        tmp_path, "slow-osmem", f'while [ ! -e "{gate}" ]; do sleep 0.02; done\nexec "{REAL_BINARY}" "$@"'
    )
    env = _process_env(cli, OSMEM_SERVER_BIN=str(slow), FUSEREC_ENGINE_WAIT="300")
    fuserec = [PYTHON, "-m", "fuserec_os"]
    start = subprocess.Popen([*fuserec, "engine", "start", "--json"], env=env, cwd=tmp_path, stdout=PIPE, stderr=PIPE)
    waiter: subprocess.Popen[str] | None = None
    try:
        _until(lambda: (state / "engine.json").exists(), "engine.json to be written")
        record = _record(state)
        assert record["state"] == "starting" and _alive(record["pid"])
        status = cli("engine", "status", "--json", ok=False)
        assert status.exit_code != 0 and json.loads(status.stdout)["state"] == "starting"

        waiter = subprocess.Popen(
            [*fuserec, "index", "status", "--json"], env=env, cwd=tmp_path, stdout=PIPE, stderr=PIPE, text=True
        )
        assert waiter.stderr is not None
        line = waiter.stderr.readline()
        assert "waiting" in line and "starting" in line and f"pid {record['pid']}" in line, line
        gate.touch()
        out, err = waiter.communicate(timeout=300)
        assert waiter.returncode == 0, err
        assert json.loads(out)["indices"] == []
        started_out, started_err = start.communicate(timeout=300)
        assert start.returncode == 0, started_err
        started = json.loads(started_out)
        assert started["pid"] == record["pid"] and started["state"] == "running"
        assert _record(state)["state"] == "running" and _record(state)["url"] == started["url"]
    finally:
        gate.touch()
        for proc in (start, waiter):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_a_dead_or_recycled_pid_in_the_record_is_cleared(embedded_cli: Cli, tmp_path: Path) -> None:
    state = Path(str(embedded_cli.env["FUSEREC_STATE_DIR"]))
    state.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid is free
    mine = os.getpid()  # alive, but not the process recorded: a recycled pid (its start time differs)
    for pid in (dead.pid, mine):
        (state / "engine.json").write_text(
            json.dumps(
                {
                    "url": "http://127.0.0.1:9",
                    "pid": pid,
                    "pid_start": 1,
                    "state": "running",
                    "started_at": "2026-03-01T12:00:00Z",
                    "binary": REAL_BINARY,
                }
            )
        )
        status = embedded_cli("engine", "status", "--json", ok=False)
        assert status.exit_code == 1 and json.loads(status.stdout)["state"] == "stopped", status.stdout
        assert not (state / "engine.json").exists()
        assert _alive(mine)  # ours was never touched


def test_a_killed_engine_is_reported_with_the_time_of_the_last_save(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    cli("engine", "start")
    cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    saved = json.loads(cli("engine", "stop", "--json").stdout)["saved"]
    saved_at = saved["saved_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", saved_at)
    cli("engine", "start")
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"product_id": "A3", "title": "Running socks", "price": "9"}) + "\n")
    cli("ingest", "products", str(more), "--no-progress")
    pid = _record(state)["pid"]
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not _alive(pid), "the killed engine to exit")

    status = cli("engine", "status", "--json", ok=False)
    assert status.exit_code == 1 and json.loads(status.stdout)["state"] == "stopped"
    assert "without saving" in status.stdout + status.stderr
    # saved data exists and the engine died: no command falls back to a throwaway engine
    refused = cli("search", "running", ok=False)
    assert refused.exit_code == 3 and "fuserec engine start" in refused.stderr, refused.stderr
    assert "uses a temporary" not in refused.stderr

    restarted = cli("engine", "start", "--json")
    message = restarted.stderr
    assert "stopped without saving" in message and "crashed or killed" in message and saved_at in message, message
    assert json.loads(restarted.stdout)["previous_crash"]["saved_at"] == saved_at
    hits = json.loads(cli("search", "running", "--json").stdout)
    assert [h["id"] for h in hits["hits"]] == ["A1"]  # A3 came after the save: lost, as the message says
    again = cli("engine", "stop", "--json")
    assert json.loads(again.stdout)["stopped"]
    assert "without saving" not in cli("engine", "start").stderr  # said once, by the start that found it


def test_a_truncated_saved_file_is_set_aside_and_the_other_indices_load(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    url = json.loads(cli("engine", "start", "--json").stdout)["url"]
    cli("ingest", "products", str(_catalog(tmp_path / "c.jsonl")), "--no-progress")
    other = OpenSearch([url])
    other.index(index="notes", id="n1", body={"text": "keep me"}, params={"refresh": "true"})
    other.close()
    cli("engine", "stop")
    data = state / "engine-data"
    (products,) = [p for p in data.glob("*.ndjson") if p.name.startswith("products")]
    raw = products.read_bytes()
    products.write_bytes(raw[: len(raw) // 2])  # cut mid-document, as a full disk or a kill mid-save leaves it

    started = cli("engine", "start", "--json")
    assert products.name in started.stderr and "quarantine" in started.stderr, started.stderr
    report = json.loads(started.stdout)
    (moved,) = report["quarantined"]
    assert products.name in moved["files"] and moved["reason"]
    kept = Path(moved["path"])
    assert (kept / products.name).read_bytes() == raw[: len(raw) // 2]  # kept aside, byte for byte
    assert not products.exists()
    status = json.loads(cli("engine", "status", "--json").stdout)
    assert status["state"] == "running" and status["indices"] == {"notes": 1}


def test_an_engine_that_dies_at_once_fails_the_start_at_once_with_its_log(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    broken = _fake_engine(tmp_path, "broken-osmem", 'echo "osmem-server: cannot map memory: out of luck"\nexit 1')
    cli.env["OSMEM_SERVER_BIN"] = str(broken)
    failed = cli("engine", "start", ok=False)
    assert failed.exit_code == 3
    assert "exited" in failed.stderr and "out of luck" in failed.stderr, failed.stderr
    assert "did not start within" not in failed.stderr
    assert not (state / "engine.json").exists()


def test_a_start_that_is_not_ready_in_time_stops_what_it_launched(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    state = Path(str(cli.env["FUSEREC_STATE_DIR"]))
    pid_file = tmp_path / "pid"
    stuck = _fake_engine(tmp_path, "stuck-osmem", f'echo $$ > "{pid_file}"\necho "loading"\nexec sleep 600')
    cli.env["OSMEM_SERVER_BIN"] = str(stuck)
    failed = cli("engine", "start", "--timeout", "1", ok=False)
    assert failed.exit_code == 3
    assert "not ready within 1 s" in failed.stderr and "stopped" in failed.stderr and "--timeout" in failed.stderr
    pid = int(pid_file.read_text())
    _until(lambda: not _alive(pid), "the launched engine to be stopped")
    assert not (state / "engine.json").exists()


def test_a_saved_index_the_engine_refuses_is_set_aside_and_the_start_goes_on(embedded_cli: Cli, tmp_path: Path) -> None:
    cli = embedded_cli
    data = Path(str(cli.env["FUSEREC_STATE_DIR"])) / "engine-data"
    data.mkdir(parents=True)
    # well-formed files that osmem still refuses (a field type it does not know): only the engine can tell
    (data / "odd.index.json").write_text(json.dumps({"mappings": {"properties": {"n": {"type": "bogus"}}}}))
    (data / "odd.ndjson").write_text('{"index": {"_index": "odd", "_id": "1"}}\n{"n": 1}\n')
    (data / "fine.index.json").write_text(json.dumps({"mappings": {"properties": {"t": {"type": "text"}}}}))
    (data / "fine.ndjson").write_text('{"index": {"_index": "fine", "_id": "1"}}\n{"t": "kept"}\n')

    started = cli("engine", "start", "--json")
    (moved,) = json.loads(started.stdout)["quarantined"]
    assert moved["index"] == "odd" and "bogus" in moved["reason"], moved
    assert "odd.index.json" in started.stderr and "starting again without it" in started.stderr
    status = json.loads(cli("engine", "status", "--json").stdout)
    assert status["indices"] == {"fine": 1}
