"""Which engine ``fuserec engine start`` runs (issue 9): FUSEREC_ENGINE, the record's ``kind``, a recorded engine
of the other kind left alone, and a clear error without Java. No engine is started here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fuserec_os.cli import cli
from fuserec_os.engine import embedded as emb
from fuserec_os.engine import opensearch_node as osn
from fuserec_os.errors import ConfigError
from fuserec_os.settings import SETTINGS, Settings


def test_engine_setting_defaults_to_osmem_and_accepts_opensearch() -> None:
    assert Settings.from_values({}).engine == "osmem"
    assert Settings.from_values({"FUSEREC_ENGINE": " OpenSearch "}).engine == "opensearch"
    assert Settings.from_values({"FUSEREC_ENGINE": ""}).engine == "osmem"
    assert "FUSEREC_ENGINE" in {s.name for s in SETTINGS}


def test_an_unknown_engine_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_values({"FUSEREC_ENGINE": "elastic"})
    assert "FUSEREC_ENGINE='elastic'" in str(err.value)
    assert "osmem" in str(err.value) and "opensearch" in str(err.value)


def _write(state: Path, record: dict[str, object]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / emb.STATE_FILE).write_text(json.dumps(record))


def test_a_record_without_kind_is_osmem(tmp_path: Path) -> None:
    _write(tmp_path, {"url": "http://127.0.0.1:1", "pid": 1, "started_at": "x", "binary": "b", "state": "running"})
    record = emb.read_state(tmp_path)
    assert record is not None and record.kind == "osmem" and record.version is None and record.home is None


def test_a_record_keeps_kind_version_and_home(tmp_path: Path) -> None:
    rec = emb.EngineState("http://127.0.0.1:1", 1, "x", "b", kind="opensearch", version="3.9.0", home="/h")
    emb._write_json(emb.state_path(tmp_path), emb.asdict(rec))
    assert emb.read_state(tmp_path) == rec


def test_a_gone_opensearch_node_is_stopped_without_a_crash_note(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = {"url": "http://127.0.0.1:1", "pid": gone.pid, "started_at": "x", "binary": "b", "state": "running"}
    _write(tmp_path, {**record, "kind": "opensearch", "version": "3.9.0"})
    assert emb.check_engine(tmp_path).state == "stopped"
    assert not (tmp_path / emb.STATE_FILE).exists()
    assert emb.read_crash(tmp_path) is None  # its data is on disk: nothing was lost


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_engine_of_the_other_kind_is_left_alone(tmp_path: Path) -> None:
    # this process plays a recorded OpenSearch node that does not answer (busy): nothing may replace it
    me = os.getpid()
    record = {
        "url": f"http://127.0.0.1:{_closed_port()}",
        "pid": me,
        "started_at": "x",
        "binary": "b",
        "state": "running",
        "pid_start": emb.process_start_time(me),
        "kind": "opensearch",
        "version": "3.9.0",
    }
    _write(tmp_path, record)
    res = emb.start_background(tmp_path, kind="osmem", timeout=1)
    assert res.already_running and res.state.kind == "opensearch" and res.status == "busy"
    with pytest.raises(ConfigError, match=r"OpenSearch 3\.9\.0 is busy .*engine stop"):
        emb.start_background(tmp_path, kind="osmem", explicit=True)
    assert json.loads((tmp_path / emb.STATE_FILE).read_text()) == record


def test_start_opensearch_without_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "jvm"
    root.mkdir()
    monkeypatch.setattr(osn, "JVM_ROOT", root)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(osn.shutil, "which", lambda name: None)
    state = tmp_path / "state"
    env = {"FUSEREC_OPENSEARCH_URL": None, "FUSEREC_STATE_DIR": str(state), "FUSEREC_ENGINE": "opensearch"}
    res = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "absent.env"), "engine", "start"], env=env)
    assert res.exit_code == 3, res.output
    assert "needs a JDK 21 or newer" in res.stderr and "found no Java at all" in res.stderr
    assert "apt-get install openjdk-21-jdk" in res.stderr
    assert not (state / emb.STATE_FILE).exists()


def test_heap_is_only_for_opensearch(tmp_path: Path) -> None:
    env = {"FUSEREC_OPENSEARCH_URL": None, "FUSEREC_STATE_DIR": str(tmp_path)}
    res = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "a.env"), "engine", "start", "--heap", "2g"], env=env)
    assert res.exit_code == 2 and "--heap is for --engine opensearch" in res.stderr
