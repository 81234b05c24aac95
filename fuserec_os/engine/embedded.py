"""The embedded dev engine: osmem-server (in-memory, OpenSearch-compatible) run in the background.

Why this exists: a newcomer should get a working ``fuserec ingest`` then ``fuserec search`` without Docker.
osmem keeps everything in memory, so one process must outlive single CLI invocations:
``fuserec engine start`` launches it detached on a loopback port and records it in ``<state_dir>/engine.json``;
later commands find it there. ``fuserec engine stop`` first saves every index (settings, mappings, aliases,
documents) in osmem's seed format under ``<state_dir>/engine-data/`` and the next ``start`` loads it back
(``-seed``; see :mod:`fuserec_os.engine.saved`). Nothing here is for production: no persistence between
saves, no auth, and search latency grows with index size.

The same record can name a real single-node OpenSearch instead (``kind: opensearch``, started by
``fuserec engine start --engine opensearch`` through :func:`start_opensearch`): its data lives on disk under
``<state_dir>/opensearch-node/``, so ``stop`` saves nothing and a vanished node is no crash; everything else
(pid and start time, the probe, busy/gone) is the same.

Under load osmem is slow, not dead: a large ingest can keep ``GET /`` from answering for seconds, and
reloading ~16 MB of saved documents takes 30 s on a quiet 2-core machine and much longer on a busy one. So:

- The record names the process by its pid *and* its start time (``/proc/<pid>/stat`` field 22: a recycled
  pid is not ours) and a state, ``starting`` (written the moment it is launched) or ``running`` (it printed
  its ready line). :func:`check_engine` looks at the process first and only then at the port: the engine
  is ``stopped`` (no record, or its process is gone: only then is the record removed), ``starting``,
  ``busy`` (alive, but ``GET /`` timed out or was refused) or ``running`` (it answers).
- A record whose ``running`` process is gone means the engine stopped without ``engine stop`` (crashed or
  was killed): that is kept in ``engine.crashed.json`` and said, with the time of the last save, until the
  next ``engine start`` (which says it too). Commands never replace a recorded, saved or crashed engine
  with a throwaway one: they wait for it (``FUSEREC_ENGINE_WAIT``) or fail saying why.
- ``engine start`` waits on the process, not on a fixed clock: it fails at once, with the end of the log, if
  the process dies, keeps waiting while it is alive up to a limit sized to the saved data, and stops what
  it launched when it fails.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from opensearchpy import OpenSearch

from fuserec_os.engine.opensearch_node import pid_alive  # one liveness check for both engines
from fuserec_os.engine.saved import (
    Quarantined,
    SaveReport,
    data_path,
    has_saved_data,
    last_save_time,
    problem_named_in,
    save_indices,
    saved_bytes,
    set_aside,
    set_aside_damaged,
    utc_now,
)
from fuserec_os.errors import ConfigError, EngineUnavailableError, FuserecError

STATE_FILE = "engine.json"
CRASH_FILE = "engine.crashed.json"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"
PROBE_TIMEOUT_S = 2.0
"""How long one ``GET /`` may take before the engine counts as busy (never as gone)."""
START_BASE_S = 60.0
START_S_PER_MB = 5.0
"""``engine start``'s default limit: 60 s plus 5 s per MB of saved data. Measured: 16 MB of saved products
loaded in 29 s on a quiet 2-core machine, ~20k documents in 40-51 s at load 5-10 (1.7-3 s/MB)."""
SAVE_TIMEOUT_S = 300.0
EMBEDDED_NOTICE = (
    "using the embedded in-memory dev engine at {url}: for development and demos only (data lives in memory, "
    "slow past ~10k docs). For a real cluster set FUSEREC_OPENSEARCH_URL=https://host:9200."
)

Status = Literal["stopped", "starting", "busy", "running"]
Notify = Callable[[str], None]


def _silent(message: str) -> None:
    """The default ``notify``: say nothing."""


@dataclass(frozen=True)
class EngineState:
    """What ``engine.json`` records about a background engine."""

    url: str | None
    """None while it is starting (until its ready line names the port)."""
    pid: int
    started_at: str
    binary: str
    state: str = "running"
    """``starting`` from launch until the ready line, then ``running``."""
    pid_start: int | None = None
    """The process's start time (``/proc/<pid>/stat`` field 22, clock ticks since boot): a recycled pid differs."""
    saved_at: str | None = None
    """When the data it loaded was saved (None: it started empty): what a crash falls back to."""
    kind: str = "osmem"
    """``osmem`` (the in-memory engine; records written before there was a choice) or ``opensearch`` (a real
    single-node OpenSearch from :mod:`fuserec_os.engine.opensearch_node`, its data on disk in :attr:`home`)."""
    version: str | None = None
    """The OpenSearch version an ``opensearch`` engine reported when it started."""
    home: str | None = None
    """An ``opensearch`` engine's folder (data, logs, ``node.json``)."""


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(state_dir: Path) -> EngineState | None:
    """The recorded engine, or None when there is none (or the record is unreadable)."""
    try:
        raw = json.loads(state_path(state_dir).read_text())
        pid_start = raw.get("pid_start")
        return EngineState(
            url=raw.get("url"),
            pid=int(raw["pid"]),
            started_at=str(raw.get("started_at", "")),
            binary=str(raw.get("binary", "")),
            state=str(raw.get("state", "running")),
            pid_start=int(pid_start) if pid_start is not None else None,
            saved_at=raw.get("saved_at"),
            kind=str(raw.get("kind") or "osmem"),
            version=raw.get("version"),
            home=raw.get("home"),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write whole or not at all: a reader never sees half a record."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


_held: dict[Path, int] = {}


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold ``engine.lock`` (re-entrant within this process): record changes and launches never interleave."""
    import fcntl

    key = state_dir.resolve()
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _same(a: EngineState | None, b: EngineState) -> bool:
    return a is not None and a.pid == b.pid and a.pid_start == b.pid_start


def _replace_record(state_dir: Path, old: EngineState, new: EngineState | None) -> bool:
    """Swap the record ``old`` for ``new`` (None: remove it), only if ``old`` is still what is recorded."""
    with _locked(state_dir):
        if not _same(read_state(state_dir), old):
            return False
        if new is None:
            state_path(state_dir).unlink(missing_ok=True)
        else:
            _write_json(state_path(state_dir), asdict(new))
        return True


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (``/proc/<pid>/stat`` field 22, clock ticks since boot); None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # fields[0] is field 3 (the state)
    except (OSError, IndexError, ValueError):
        return None


def process_matches(pid: int, pid_start: int | None) -> bool:
    """True if ``pid`` is alive and is the process that was recorded (same start time, when we know it)."""
    if not pid_alive(pid):
        return False
    if pid_start is None:
        return True
    now = process_start_time(pid)
    return now is None or now == pid_start


Probe = Literal["ok", "timeout", "refused", "error", "none"]


def probe(url: str, timeout: float) -> Probe:
    """One ``GET /``: ``ok`` (it answered, whatever the status), ``timeout``, ``refused`` or ``error``.

    Plain ``http.client`` on purpose: no proxy settings, no retries, one attempt.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return "ok"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except (OSError, http.client.HTTPException):
        return "error"
    finally:
        conn.close()


def classify(recorded: str, alive: bool, probe: Probe) -> Literal["gone", "starting", "busy", "running"]:
    """The engine's state from its recorded state, whether its process lives, and what ``GET /`` did.

    The process decides first: only a dead (or recycled) process is ``gone``. An engine that answers is
    ``running``; one that does not is ``starting`` while it was never ready, else ``busy``.
    """
    if not alive:
        return "gone"
    if probe == "ok":
        return "running"
    return "starting" if recorded == "starting" else "busy"


@dataclass(frozen=True)
class Liveness:
    """What :func:`check_engine` found: the state, the record (None when stopped) and why, in words."""

    state: Status
    record: EngineState | None
    reason: str = ""


def check_engine(state_dir: Path, probe_timeout: float = PROBE_TIMEOUT_S) -> Liveness:
    """Classify the recorded engine (see the module docstring). Removes the record only if its process is gone."""
    record = read_state(state_dir)
    if record is None:
        return Liveness("stopped", None, "no engine is recorded")
    alive = process_matches(record.pid, record.pid_start)
    if alive and record.url is None:
        ready = _ready_line(state_dir / LOG_FILE, record.pid)
        if ready is not None:  # ready, and the start that launched it has not recorded it yet (or is gone)
            record = replace(record, url=str(ready["url"]))
    result: Probe = probe(record.url, probe_timeout) if alive and record.url else "none"
    kind = classify(record.state, alive, result)
    if kind == "gone":
        _forget_gone(state_dir, record)
        return Liveness("stopped", None, f"the recorded engine (pid {record.pid}) is no longer running")
    if kind == "running":
        if record.state != "running":
            running = replace(record, state="running")
            _replace_record(state_dir, record, running)
            record = running
        return Liveness("running", record, "it answers")
    if kind == "starting":
        doing = "loading its saved data" if record.saved_at else "not ready yet"
        return Liveness("starting", record, doing)
    why = {
        "timeout": f"it did not answer within {probe_timeout:g} s",
        "refused": f"it refused connections on {record.url}",
    }.get(result, f"GET {record.url}/ failed")
    return Liveness("busy", record, why)


def _forget_gone(state_dir: Path, record: EngineState) -> None:
    """The recorded process is gone: remove the record; a ``running`` one died without ``engine stop``."""
    with _locked(state_dir):
        if not _same(read_state(state_dir), record):
            return
        if record.state == "running" and record.kind == "osmem":  # an OpenSearch node keeps its data on disk
            crash = {
                "pid": record.pid,
                "started_at": record.started_at,
                "saved_at": record.saved_at,
                "noticed_at": utc_now(),
            }
            _write_json(state_dir / CRASH_FILE, crash)
        state_path(state_dir).unlink(missing_ok=True)


def running_engine(state_dir: Path) -> EngineState | None:
    """The recorded engine if it is running and answers; None otherwise (a busy engine keeps its record)."""
    live = check_engine(state_dir)
    return live.record if live.state == "running" else None


def read_crash(state_dir: Path) -> dict[str, Any] | None:
    """The engine that stopped without ``engine stop`` (pid, started_at, saved_at, noticed_at), if any."""
    try:
        raw = json.loads((state_dir / CRASH_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    raw["message"] = crash_message(raw)
    return raw


def crash_message(crash: dict[str, Any]) -> str:
    """The one line that says what a crash (or a kill) lost."""
    head = (
        f"the embedded engine (pid {crash.get('pid')}, started {crash.get('started_at')}) stopped without "
        "saving (crashed or killed): "
    )
    if crash.get("saved_at"):
        return head + f"anything written after the last save ({crash['saved_at']}) was lost"
    return (
        head
        + f"anything written to it since it started ({crash.get('started_at')}) was lost (there was no save before)"
    )


def wait_for_engine(state_dir: Path, limit: float, notify: Notify, live: Liveness) -> Liveness:
    """Wait up to ``limit`` s for a busy or starting engine to answer (saying so once); the last state seen."""
    if live.state not in ("busy", "starting") or live.record is None or limit <= 0:
        return live
    notify(
        f"the embedded engine (pid {live.record.pid}) is {live.state}: {live.reason}; waiting up to {limit:g} s "
        "for it (FUSEREC_ENGINE_WAIT)"
    )
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return live
        time.sleep(min(0.2, remaining))
        live = check_engine(state_dir, probe_timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        if live.state in ("running", "stopped"):
            return live


def unavailable(live: Liveness, waited: float) -> EngineUnavailableError:
    """The error for an engine that is alive but did not become usable within ``waited`` s."""
    rec = live.record
    pid = rec.pid if rec else "?"
    if live.state == "starting":
        return EngineUnavailableError(
            f"the embedded engine (pid {pid}) is still starting ({live.reason}) after {waited:g} s of "
            "waiting (FUSEREC_ENGINE_WAIT); retry in a moment or raise FUSEREC_ENGINE_WAIT. "
            "'fuserec engine status' shows its state."
        )
    return EngineUnavailableError(
        f"the embedded engine at {rec.url if rec else '?'} (pid {pid}) is busy: {live.reason}, also after "
        f"waiting {waited:g} s (FUSEREC_ENGINE_WAIT). It is alive and keeps its data: retry when it is less busy "
        "(a large ingest can keep it busy for minutes) or raise FUSEREC_ENGINE_WAIT. "
        "'fuserec engine status' shows its state."
    )


def default_start_timeout(data_bytes: int) -> float:
    """How long ``engine start`` waits for the engine to be ready by default: grows with the saved data."""
    return START_BASE_S + START_S_PER_MB * data_bytes / 1_000_000


@dataclass
class StartResult:
    """What ``engine start`` did: the engine, whether it was already there, and what it found on the way."""

    state: EngineState
    already_running: bool
    status: Status
    quarantined: list[Quarantined] = field(default_factory=list)
    previous_crash: dict[str, Any] | None = None


class _Exited(Exception):
    pass


class _NotReady(Exception):
    pass


def start_background(
    state_dir: Path,
    addr: str = "127.0.0.1:0",
    timeout: float | None = None,
    notify: Notify = _silent,
    kind: str = "osmem",
    heap: str | None = None,
    explicit: bool = False,
) -> StartResult:
    """Start osmem detached (it survives this process), loading saved indices; wait until it is ready.

    ``timeout`` (default :func:`default_start_timeout` of the saved data) bounds the wait while the process
    lives; a process that dies fails the start at once with the end of its log. A failed start stops what it
    launched. Damaged saved indices are set aside (``notify`` names them), and a previous crash is said.

    ``kind="opensearch"``: a real single-node OpenSearch instead (:func:`start_opensearch`; ``heap`` is its
    -Xmx). When an engine of the other kind is recorded it is left alone: reported as already running, or,
    when ``explicit`` (``--engine`` named the kind), refused with ConfigError.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        live = check_engine(state_dir)
        if live.record is not None and live.record.kind != kind:
            if explicit:
                raise ConfigError(
                    f"{describe(live.record)} is {live.state} for {state_dir}/ (pid {live.record.pid}); "
                    f"stop it first ('fuserec engine stop') to start {kind} instead."
                )
            return StartResult(live.record, already_running=True, status=live.state)
        if live.state in ("running", "busy") and live.record is not None:
            return StartResult(live.record, already_running=True, status=live.state)
        if kind == "opensearch":
            record = start_opensearch(state_dir, heap, timeout)
            return StartResult(record, already_running=False, status="running")
        crash = read_crash(state_dir)
        quarantined: list[Quarantined] = []
        if live.state == "starting" and live.record is not None:
            record, launched = live.record, False  # another 'engine start' launched it: wait for that one
        else:
            if crash is not None:
                notify(crash["message"])
            quarantined = set_aside_damaged(state_dir)
            for q in quarantined:
                notify(q.message())
            record, launched = _launch(state_dir, addr), True
    limit = timeout if timeout is not None else default_start_timeout(saved_bytes(state_dir))
    retries = 0
    while True:
        try:
            running = _await_ready(state_dir, record, limit, notify)
            break
        except _Exited as exc:
            _replace_record(state_dir, record, None)
            tail = str(exc)
            data = data_path(state_dir)
            bad = problem_named_in(tail, data, "the engine refused it") if launched else None
            if bad is None or retries >= 20:
                raise EngineUnavailableError(_exited_message(state_dir, record, tail)) from None
            retries += 1
            (q,) = set_aside(state_dir, [bad])
            quarantined.append(q)
            notify(q.message() + "; starting again without it")
            with _locked(state_dir):
                record = _launch(state_dir, addr)
        except BaseException as exc:  # not ready in time, Ctrl-C, ...: stop what we launched
            if launched:
                _terminate(record, grace=1.0)  # it served nothing yet: nothing to lose
                _replace_record(state_dir, record, None)
            if isinstance(exc, _NotReady):
                raise EngineUnavailableError(_not_ready_message(state_dir, record, limit, launched)) from None
            raise
    if launched and crash is not None:
        (state_dir / CRASH_FILE).unlink(missing_ok=True)  # said by this start; the new engine is recorded
    return StartResult(
        running,
        already_running=not launched,
        status="running",
        quarantined=quarantined,
        previous_crash=crash if launched else None,
    )


OPENSEARCH_HOME = "opensearch-node"


def opensearch_home(state_dir: Path) -> Path:
    """Where an ``opensearch`` engine keeps its data, logs and ``node.json``."""
    return state_dir / OPENSEARCH_HOME


def describe(record: EngineState) -> str:
    """``the embedded engine`` or ``OpenSearch 3.9.0``: what a record names, in words."""
    if record.kind == "opensearch":
        return f"OpenSearch {record.version or '?'}"
    return "the embedded engine (osmem)"


def start_opensearch(state_dir: Path, heap: str | None = None, timeout: float | None = None) -> EngineState:
    """Start a real single-node OpenSearch detached, data under ``state_dir/opensearch-node``, and record it.

    Builds the launcher first if needed (Maven, once); waits until the node is yellow. Raises
    EngineUnavailableError (from :mod:`fuserec_os.engine.opensearch_node`) naming what is missing (a JDK 21+,
    Maven) and how to get it. ``timeout``: how long the JVM may take to report ready (default 300 s). Call with
    the lock held.
    """
    from fuserec_os.engine import opensearch_node as osn

    node = osn.start_node(
        opensearch_home(state_dir), heap=heap or osn.DEFAULT_HEAP, detach=True, startup_timeout=timeout or 300.0
    )
    record = EngineState(
        url=node.url,
        pid=node.pid,
        started_at=utc_now(),
        binary=f"OpenSearch {node.version} on Java {node.java}",
        state="running",
        pid_start=process_start_time(node.pid),
        kind="opensearch",
        version=node.version,
        home=str(node.home),
    )
    _write_json(state_path(state_dir), asdict(record))
    return record


def _launch(state_dir: Path, addr: str) -> EngineState:
    """Launch osmem detached and record it as ``starting`` at once (call with the lock held)."""
    try:
        from osmem_server import resolve_binary

        binary = resolve_binary()
    except (ImportError, RuntimeError) as exc:
        raise EngineUnavailableError(
            f"the embedded engine (osmem-server) is not available: {exc}. It ships for Linux x86_64 only; "
            "set FUSEREC_OPENSEARCH_URL to a cluster instead (docker compose up -d)."
        ) from exc
    args = [binary, "-addr", addr, "-no-stdin-watch", "-no-ja"]
    seeded = has_saved_data(state_dir)
    if seeded:
        args += ["-seed", str(data_path(state_dir))]
    log_path = state_dir / LOG_FILE
    # Through `sh -c '... &'` so the engine is re-parented at once: it outlives this process, and no Popen
    # object is left behind for a still-running child. `$!` is its pid (the shell execs it in the child).
    try:
        out = subprocess.run(
            ["/bin/sh", "-c", 'log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!', "sh", str(log_path), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,
            check=True,
        )
        pid = int(out.stdout.split()[-1])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError) as exc:
        raise EngineUnavailableError(f"could not launch the embedded engine ({binary}): {exc}") from exc
    record = EngineState(
        url=None,
        pid=pid,
        started_at=utc_now(),
        binary=binary,
        state="starting",
        pid_start=process_start_time(pid),
        saved_at=last_save_time(state_dir) if seeded else None,
    )
    _write_json(state_path(state_dir), asdict(record))
    return record


def _await_ready(state_dir: Path, record: EngineState, limit: float, notify: Notify) -> EngineState:
    """Wait for the ready line of ``record``'s process; raise _Exited (with the log's end) or _NotReady."""
    log_path = state_dir / LOG_FILE
    began = time.monotonic()
    announced = False
    while True:
        ready = _ready_line(log_path, record.pid)
        if ready is not None:
            running = replace(record, url=str(ready["url"]), state="running")
            if not _replace_record(state_dir, record, running):
                raise _Exited("(it was stopped while starting, by 'fuserec engine stop'?)")
            return running
        if not process_matches(record.pid, record.pid_start):
            if not _same(read_state(state_dir), record):
                raise _Exited("(it was stopped while starting, by 'fuserec engine stop'?)")
            raise _Exited(_tail(log_path).strip() or "(empty)")
        elapsed = time.monotonic() - began
        if elapsed > limit:
            raise _NotReady
        if not announced and elapsed > 5:
            mb = saved_bytes(state_dir) / 1e6
            what = f"loading {mb:.1f} MB of saved data" if record.saved_at else "starting"
            notify(f"the embedded engine (pid {record.pid}) is {what}; waiting up to {limit:.0f} s for it")
            announced = True
        time.sleep(0.05)


def _exited_message(state_dir: Path, record: EngineState, tail: str) -> str:
    return (
        f"the embedded engine ({record.binary}, pid {record.pid}) exited before it was ready. "
        f"Its log ({state_dir / LOG_FILE}) ends with:\n{tail}"
    )


def _not_ready_message(state_dir: Path, record: EngineState, limit: float, launched: bool) -> str:
    mb = saved_bytes(state_dir) / 1e6
    doing = f"still loading {mb:.1f} MB of saved data" if record.saved_at else "still starting"
    done = "it was stopped" if launched else "it was launched by another 'fuserec engine start' and left running"
    tail = _tail(state_dir / LOG_FILE).strip() or "(empty)"
    return (
        f"the embedded engine (pid {record.pid}) was not ready within {limit:g} s ({doing}); {done}. "
        f"A busy machine loads more slowly: start it again with a longer limit, e.g. "
        f"'fuserec engine start --timeout {max(600, int(limit * 3))}'. Its log ({state_dir / LOG_FILE}) ends with:\n"
        f"{tail}"
    )


def _terminate(record: EngineState, grace: float = 5.0) -> None:
    """SIGTERM the recorded process (only if it still is ours), then SIGKILL if it lingers."""
    if not process_matches(record.pid, record.pid_start):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
        os.kill(record.pid, signal.SIGCONT)  # a stopped (SIGSTOP, Ctrl-Z) process acts on SIGTERM only once resumed
    deadline = time.monotonic() + grace
    while process_matches(record.pid, record.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_matches(record.pid, record.pid_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while process_matches(record.pid, record.pid_start) and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class StopResult:
    """What ``engine stop`` did: whether it stopped something, what it was, and what it saved."""

    stopped: bool
    was: Status
    record: EngineState | None = None
    saved: SaveReport | None = None
    previous_crash: dict[str, Any] | None = None


def stop_background(
    state_dir: Path, save: bool = True, grace: float = 5.0, wait: float = 120.0, notify: Notify = _silent
) -> StopResult:
    """Save every index (unless ``save`` is False), then stop the recorded engine and forget it.

    A busy engine is waited for (up to ``wait`` s) so it can be saved; if it cannot be saved it is left
    running and EngineUnavailableError says so (``save=False`` stops it anyway). A still-starting engine has
    nothing new to save: it is stopped and the saved data stays as it was.
    """
    live = check_engine(state_dir)
    if live.state == "stopped" or live.record is None:
        return StopResult(stopped=False, was="stopped", previous_crash=read_crash(state_dir))
    record = live.record
    was = live.state
    report = None
    if record.kind == "opensearch":  # its data is on disk already: nothing to save; SIGTERM flushes and closes
        _terminate(record, grace=max(grace, 30.0))
        if record.home:
            (Path(record.home) / "node.json").unlink(missing_ok=True)
        _replace_record(state_dir, record, None)
        return StopResult(stopped=True, was=was, record=record)
    if save and live.state != "starting":
        live = wait_for_engine(state_dir, wait, notify, live)
        if live.state == "stopped":
            return StopResult(stopped=False, was="stopped", previous_crash=read_crash(state_dir))
        lost = f"the last save ({record.saved_at})" if record.saved_at else f"it started ({record.started_at})"
        if live.state != "running" or live.record is None:
            raise EngineUnavailableError(
                f"the embedded engine at {record.url} (pid {record.pid}) is busy: {live.reason}, also after waiting "
                f"{wait:g} s (FUSEREC_ENGINE_WAIT). Its data was not saved and it is still running. Retry "
                "'fuserec engine stop' when it is less busy (or with a larger FUSEREC_ENGINE_WAIT), or stop it "
                f"with 'fuserec engine stop --no-save', losing everything written since {lost}."
            )
        try:
            report = save_indices(OpenSearch([str(live.record.url)], timeout=SAVE_TIMEOUT_S), data_path(state_dir))
        except FuserecError as exc:
            raise EngineUnavailableError(
                f"{exc}. Its data was not saved and it is still running (pid {record.pid}): retry 'fuserec engine "
                f"stop', or stop it with 'fuserec engine stop --no-save', losing everything written since {lost}."
            ) from exc
    _terminate(record, grace)
    _replace_record(state_dir, record, None)
    return StopResult(stopped=True, was=was, record=record, saved=report)


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
        return path.read_text(errors="replace")[-800:]
    except OSError:
        return ""


def _ready_line(log_path: Path, pid: int | None = None) -> dict[str, Any] | None:
    """osmem's ready line (``{"url": ..., "pid": ...}``) in its log, for ``pid`` when given."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and "url" in msg and (pid is None or msg.get("pid") == pid):
                return msg
    return None
