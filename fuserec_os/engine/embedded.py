"""The embedded dev engine: osmem-server (in-memory, OpenSearch-compatible) run in the background.

Why this exists: a newcomer should get a working ``fuserec ingest`` then ``fuserec search`` without Docker.
osmem keeps everything in memory, so one process must outlive single CLI invocations:
``fuserec engine start`` launches it detached on a loopback port and records the address in
``<state_dir>/engine.json``; later commands find it there. ``fuserec engine stop`` first saves every index
(settings, mappings, aliases, documents) in osmem's seed format under ``<state_dir>/engine-data/`` and the next
``start`` loads it back (``-seed``). Nothing here is for production: no persistence between saves, no auth,
and search latency grows with index size.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineUnavailableError

STATE_FILE = "engine.json"
DATA_DIR = "engine-data"
LOG_FILE = "engine.log"
EMBEDDED_NOTICE = (
    "using the embedded in-memory dev engine at {url}: for development and demos only (data lives in memory, "
    "slow past ~10k docs). For a real cluster set FUSEREC_OPENSEARCH_URL=https://host:9200."
)
# Settings that the engine reports but refuses (or must not get) at index creation.
_READ_ONLY_SETTINGS = {
    "uuid",
    "creation_date",
    "provided_name",
    "version",
    "replication",
    "resize",
    "routing",
}


@dataclass(frozen=True)
class EngineState:
    """What ``engine.json`` records about a background engine."""

    url: str
    pid: int
    started_at: str
    binary: str


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def data_path(state_dir: Path) -> Path:
    return state_dir / DATA_DIR


def read_state(state_dir: Path) -> EngineState | None:
    """The recorded engine, or None when there is none (or the record is unreadable)."""
    try:
        raw = json.loads(state_path(state_dir).read_text())
        return EngineState(url=raw["url"], pid=int(raw["pid"]), started_at=raw["started_at"], binary=raw["binary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) still answers kill(0): look at /proc where we can.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_engine(state_dir: Path) -> EngineState | None:
    """The recorded engine if its process is alive and answers HTTP; clears a stale record."""
    state = read_state(state_dir)
    if state is None:
        return None
    if pid_alive(state.pid) and _answers(state.url):
        return state
    state_path(state_dir).unlink(missing_ok=True)
    return None


def _answers(url: str) -> bool:
    try:
        OpenSearch([url], timeout=2, max_retries=0).info()
        return True
    except Exception:
        return False


def start_background(state_dir: Path, addr: str = "127.0.0.1:0", startup_timeout: float = 30.0) -> EngineState:
    """Start osmem detached (it survives this process), loading saved indices; return where it listens."""
    existing = running_engine(state_dir)
    if existing is not None:
        return existing
    from osmem_server import resolve_binary

    binary = resolve_binary()
    state_dir.mkdir(parents=True, exist_ok=True)
    args = [binary, "-addr", addr, "-no-stdin-watch", "-no-ja"]
    data = data_path(state_dir)
    if data.is_dir() and any(data.iterdir()):
        args += ["-seed", str(data)]
    log_path = state_dir / LOG_FILE
    with open(log_path, "w") as log:
        # Launched through `sh -c '... &'` so the engine is re-parented at once: it outlives this process,
        # and no Popen object is left behind for a still-running child. Its pid comes from its ready line.
        subprocess.run(
            ["/bin/sh", "-c", '"$@" &', "sh", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=True,
        )
    deadline = time.monotonic() + startup_timeout
    ready: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        ready = _ready_line(log_path)
        if ready is not None or "exiting" in _tail(log_path):
            break
        time.sleep(0.02)
    if ready is None:
        raise EngineUnavailableError(
            f"the embedded engine ({binary}) did not start within {startup_timeout:.0f} s. Its log "
            f"({log_path}) ends with: {_tail(log_path).strip() or '(empty)'}"
        )
    state = EngineState(
        url=str(ready["url"]),
        pid=int(ready["pid"]),
        started_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        binary=binary,
    )
    state_path(state_dir).write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


@dataclass
class TemporaryEngine:
    """An embedded engine for one command: our child, stopped (and forgotten) when the command ends."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def close(self, grace: float = 5.0) -> None:
        """Close its stdin (osmem exits on that), wait, kill if it lingers; its log goes with it."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_path.unlink(missing_ok=True)


def start_temporary(startup_timeout: float = 30.0) -> TemporaryEngine:
    """Start osmem as a child of this process on a free loopback port, with an empty store.

    Its own output (the ready line, and "exiting: stdin closed" when we close it) goes to a temporary log,
    never to the user's terminal; the log's end is quoted if the engine fails to start.
    """
    try:
        from osmem_server import resolve_binary
    except ImportError as exc:
        raise EngineUnavailableError(
            "no FUSEREC_OPENSEARCH_URL is set and the embedded engine (osmem-server) is not installed; it ships "
            "for Linux x86_64 only. Set FUSEREC_OPENSEARCH_URL to a cluster (docker compose up -d)."
        ) from exc
    fd, name = tempfile.mkstemp(prefix="fuserec-engine-", suffix=".log")
    log_path = Path(name)
    try:
        binary = resolve_binary()
        with os.fdopen(fd, "w") as log:
            process = subprocess.Popen(
                [binary, "--parent-pid", str(os.getpid()), "-addr", "127.0.0.1:0", "-no-ja"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except OSError as exc:
        log_path.unlink(missing_ok=True)
        raise EngineUnavailableError(
            f"no FUSEREC_OPENSEARCH_URL is set and the embedded engine failed to start: {exc}. "
            "Set FUSEREC_OPENSEARCH_URL to a cluster, or reinstall osmem-server."
        ) from exc
    deadline = time.monotonic() + startup_timeout
    ready: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        ready = _ready_line(log_path)
        if ready is not None or process.poll() is not None:
            break
        time.sleep(0.02)
    if ready is None:
        tail = _tail(log_path).strip() or "(empty)"
        TemporaryEngine(process, "", log_path).close(grace=1.0)
        raise EngineUnavailableError(
            f"no FUSEREC_OPENSEARCH_URL is set and the embedded engine ({binary}) did not start "
            f"(its output ends with: {tail}). Set FUSEREC_OPENSEARCH_URL to a cluster, or reinstall osmem-server."
        )
    return TemporaryEngine(process, str(ready["url"]), log_path)


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-500:]
    except OSError:
        return ""


def _ready_line(log_path: Path) -> dict[str, Any] | None:
    try:
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                msg = json.loads(line)
                if isinstance(msg, dict) and "url" in msg:
                    return msg
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class SaveReport:
    indices: dict[str, int]
    path: Path

    @property
    def documents(self) -> int:
        return sum(self.indices.values())


def save_indices(client: OpenSearch, target: Path) -> SaveReport:
    """Write every index (settings, mappings, aliases, docs) in osmem's seed format, replacing ``target``.

    Written to a sibling temp folder first and swapped in at the end, so a failed save never loses the
    previous one.
    """
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts: dict[str, int] = {}
    with engine_errors("saving the embedded engine's indices"):
        described = client.indices.get(index="*")
        for name in sorted(described):
            if name.startswith("."):
                continue
            body = described[name]
            settings = {
                k: v for k, v in body.get("settings", {}).get("index", {}).items() if k not in _READ_ONLY_SETTINGS
            }
            spec = {
                "settings": {"index": settings},
                "mappings": body.get("mappings", {}),
                "aliases": body.get("aliases", {}),
            }
            (tmp / f"{name}.index.json").write_text(json.dumps(spec, indent=2) + "\n")
            n = 0
            with open(tmp / f"{name}.ndjson", "w") as out:
                for hit in helpers.scan(client, index=name, query={"query": {"match_all": {}}}, size=1000):
                    out.write(json.dumps({"index": {"_index": name, "_id": hit["_id"]}}) + "\n")
                    out.write(json.dumps(hit["_source"], ensure_ascii=False) + "\n")
                    n += 1
            counts[name] = n
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return SaveReport(indices=counts, path=target)


def stop_background(state_dir: Path, save: bool = True, grace: float = 5.0) -> SaveReport | None:
    """Save every index (unless ``save`` is False), then stop the recorded engine and forget it."""
    state = running_engine(state_dir)
    if state is None:
        return None
    report = save_indices(OpenSearch([state.url], timeout=120), data_path(state_dir)) if save else None
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(state.pid):
        os.kill(state.pid, signal.SIGKILL)
    state_path(state_dir).unlink(missing_ok=True)
    return report
