"""The embedded engine's bookkeeping, without an engine: liveness, saved-file checks, start limits, crash notes.

The same behaviour against a real osmem process is in tests/integration/test_engine_lifecycle.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import fuserec_os.engine as engine_mod
from fuserec_os.engine import embedded as emb
from fuserec_os.engine import saved
from fuserec_os.errors import EngineUnavailableError
from fuserec_os.settings import Settings


@pytest.mark.parametrize(
    ("recorded", "alive", "probe", "expected"),
    [
        ("running", False, "ok", "gone"),  # the process is what counts, not the port
        ("starting", False, "none", "gone"),
        ("running", True, "ok", "running"),
        ("running", True, "timeout", "busy"),  # slow is not dead
        ("running", True, "refused", "busy"),
        ("running", True, "error", "busy"),
        ("starting", True, "none", "starting"),
        ("starting", True, "refused", "starting"),
        ("starting", True, "timeout", "starting"),
        ("starting", True, "ok", "running"),
    ],
)
def test_classify_looks_at_the_process_first(recorded: str, alive: bool, probe: str, expected: str) -> None:
    assert emb.classify(recorded, alive=alive, probe=probe) == expected


def test_a_process_is_ours_only_with_the_recorded_start_time() -> None:
    me = os.getpid()
    started = emb.process_start_time(me)
    assert started is not None and started > 0
    assert emb.process_matches(me, started)
    assert not emb.process_matches(me, started + 1)  # same pid, another process: recycled
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not emb.process_matches(gone.pid, None)
    assert emb.process_matches(me, None)  # an old record without a start time: the pid alone


def _save(folder: Path, name: str, docs: list[dict[str, Any]], manifest: dict[str, int] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.index.json").write_text(json.dumps({"settings": {"index": {}}, "mappings": {}, "aliases": {}}))
    lines = []
    for i, doc in enumerate(docs):
        lines += [json.dumps({"index": {"_index": name, "_id": str(i)}}), json.dumps(doc)]
    (folder / f"{name}.ndjson").write_text("".join(line + "\n" for line in lines))
    if manifest is not None:
        path = folder / saved.MANIFEST
        old = json.loads(path.read_text()) if path.exists() else {"saved_at": "2026-03-01T12:00:00Z", "indices": {}}
        old["indices"].update(manifest)
        path.write_text(json.dumps(old))


def test_intact_saved_indices_pass(tmp_path: Path) -> None:
    _save(tmp_path, "a", [{"t": "x"}, {"t": "y"}], manifest={"a": 2})
    _save(tmp_path, "b", [])
    assert saved.check_saved_data(tmp_path) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-5]), "line 4"),  # cut mid-document
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "newline"),  # the last line lost its newline
        (lambda p: p.write_text(p.read_text() + '{"index": {"_id": "9"}}\n'), "no document"),  # action, no source
        (lambda p: p.write_text('["not", "an", "action"]\n{}\n'), "line 1"),
        (lambda p: p.write_text("".join(p.read_text().splitlines(True)[:2])), "manifest"),  # cut on a line end
    ],
)
def test_a_damaged_ndjson_is_named_with_its_reason(tmp_path: Path, damage: Any, reason: str) -> None:
    _save(tmp_path, "good", [{"t": "x"}], manifest={"good": 1})
    _save(tmp_path, "bad", [{"t": "x"}, {"t": "y"}], manifest={"bad": 2})
    damage(tmp_path / "bad.ndjson")
    (problem,) = saved.check_saved_data(tmp_path)
    assert problem.index == "bad" and sorted(problem.files) == ["bad.index.json", "bad.ndjson"]
    assert reason in problem.reason, problem.reason


def test_a_damaged_index_file_is_named(tmp_path: Path) -> None:
    _save(tmp_path, "bad", [{"t": "x"}])
    (tmp_path / "bad.index.json").write_text('{"settings": {"ind')
    (problem,) = saved.check_saved_data(tmp_path)
    assert problem.files == ["bad.index.json", "bad.ndjson"] and "bad.index.json" in problem.reason


def test_set_aside_moves_both_files_and_keeps_the_rest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = saved.data_path(state)
    _save(data, "good", [{"t": "x"}])
    _save(data, "bad", [{"t": "x"}])
    (data / "bad.ndjson").write_text('{"index": {}}\n{"t": ')
    (moved,) = saved.set_aside_damaged(state)
    assert sorted(p.name for p in data.iterdir()) == ["good.index.json", "good.ndjson"]
    assert moved.path.parent == state / saved.QUARANTINE_DIR
    assert sorted(p.name for p in moved.path.iterdir()) == ["bad.index.json", "bad.ndjson"]
    assert saved.set_aside_damaged(state) == []  # nothing left to move


def test_the_start_limit_grows_with_the_saved_data() -> None:
    assert emb.default_start_timeout(0) == emb.START_BASE_S
    small, big = emb.default_start_timeout(1_000_000), emb.default_start_timeout(60_000_000)
    assert emb.START_BASE_S < small < big
    assert big >= 4 * 51  # 60 MB: far beyond the 40-51 s a loaded machine took for ~16 MB


def test_the_crash_note_names_the_last_save_or_says_there_was_none() -> None:
    note = emb.crash_message({"pid": 7, "started_at": "2026-03-01T11:00:00Z", "saved_at": "2026-03-01T10:00:00Z"})
    assert "pid 7" in note and "crashed or killed" in note
    assert "anything written after the last save (2026-03-01T10:00:00Z) was lost" in note
    never = emb.crash_message({"pid": 7, "started_at": "2026-03-01T11:00:00Z", "saved_at": None})
    assert "since it started (2026-03-01T11:00:00Z)" in never and "no save" in never


def _no_temporary(*_: object, **__: object) -> Any:
    raise AssertionError("a temporary engine was started")


def test_saved_data_without_an_engine_is_an_error_not_a_temporary_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    _save(saved.data_path(state), "products-v1", [{"t": "x"}])
    monkeypatch.setattr(engine_mod, "start_temporary", _no_temporary)
    with pytest.raises(EngineUnavailableError, match="run 'fuserec engine start'"):
        engine_mod.open_engine(Settings.from_values({"FUSEREC_STATE_DIR": str(state)}), notify=lambda m: None)


def test_a_busy_engine_is_waited_for_then_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = emb.EngineState(
        url="http://127.0.0.1:9", pid=4242, started_at="2026-03-01T12:00:00Z", binary="osmem", state="running"
    )
    checks: list[float] = []

    def busy(state_dir: Path, probe_timeout: float = 2.0) -> emb.Liveness:
        checks.append(probe_timeout)
        return emb.Liveness("busy", record, "it did not answer within 2 s")

    monkeypatch.setattr(engine_mod, "check_engine", busy)
    monkeypatch.setattr(emb, "check_engine", busy)
    monkeypatch.setattr(engine_mod, "start_temporary", _no_temporary)
    said: list[str] = []
    settings = Settings.from_values({"FUSEREC_STATE_DIR": str(tmp_path), "FUSEREC_ENGINE_WAIT": "1"})
    with pytest.raises(EngineUnavailableError) as err:
        engine_mod.open_engine(settings, notify=said.append)
    assert "pid 4242" in str(err.value) and "busy" in str(err.value) and "FUSEREC_ENGINE_WAIT" in str(err.value)
    assert len(said) == 1 and "waiting" in said[0]
    assert checks  # it looked


def test_engine_wait_setting_is_a_whole_number_of_seconds() -> None:
    assert Settings.from_values({}).engine_wait == 120
    assert Settings.from_values({"FUSEREC_ENGINE_WAIT": "0"}).engine_wait == 0
    with pytest.raises(Exception, match="FUSEREC_ENGINE_WAIT"):
        Settings.from_values({"FUSEREC_ENGINE_WAIT": "soon"})
