"""A real single-node OpenSearch, run locally from Maven Central jars: for tests, benchmarks and local runs.

No tarball and no Docker: ``engines/opensearch/`` holds a Maven project whose one class starts an
``org.opensearch.node.Node`` with the distribution's modules (netty4 HTTP, analysis-common, painless,
mapper-extras for ``scaled_float``, reindex, ...) loaded from the classpath. This module

1. finds a JDK new enough for the pinned OpenSearch (3.x needs Java 21+) and Maven, or says what to install;
2. builds the launcher once (``mvn package dependency:copy-dependencies``), skipping the build while
   ``target/`` matches the pom and the sources (a content hash in ``target/fuserec-build.json``);
3. starts the node on loopback with its data, config and logs under one folder, waits for its ready line
   and for ``GET /_cluster/health?wait_for_status=yellow``, and stops it (SIGTERM, then SIGKILL).

Standard library only at import time (it runs before the virtualenv's packages are needed, e.g. from make).
Not for production: the ``docker-compose.yml`` images are the production path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fuserec_os.errors import EngineUnavailableError

ENGINE_DIR = Path(__file__).resolve().parents[2] / "engines" / "opensearch"
MAIN_CLASS = "dev.fuserec.node.FuserecNode"
STAMP = "fuserec-build.json"
STATE_FILE = "node.json"
LAUNCHER_LOG = "launcher.log"
NODE_LOG = Path("logs") / "opensearch.log"
DEFAULT_HEAP = "1g"
DEFAULT_HEAP_MIN = "512m"
JVM_ROOT = Path("/usr/lib/jvm")
INSTALL_JDK = (
    "install a JDK {need} or newer (Debian 13 / Ubuntu 24.04: `apt-get install openjdk-{need}-jdk`; elsewhere "
    "Temurin from https://adoptium.net, e.g. `apt-get install temurin-{need}-jdk` from Adoptium's apt "
    "repository) or point JAVA_HOME at one"
)


@dataclass(frozen=True)
class Jdk:
    """A Java installation: its home and its feature version (17, 21, 25, ...)."""

    home: Path
    feature: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def has_javac(self) -> bool:
        return (self.home / "bin" / "javac").is_file()


@dataclass
class OpenSearchNode:
    """A running node: where it answers, its process, and its folder (data, logs, ``node.json``).

    ``process`` is set when this Python process started the node as its child (it then also stops when this
    process closes the node's stdin, i.e. dies); a node started detached, or found from ``node.json``, has none.
    """

    url: str
    pid: int
    version: str
    home: Path
    java: str = ""
    started_in: float = 0.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def log_path(self) -> Path:
        return self.home / NODE_LOG

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid)

    def rss_mb(self) -> float | None:
        """Resident memory of the JVM in MiB (from /proc), None if unknown."""
        return rss_mb(self.pid)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM (the launcher closes the node and flushes its indices), then SIGKILL after ``grace`` s."""
        if self.process is not None:
            _stop_child(self.process, grace)
        else:
            _stop_pid(self.pid, grace)
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def record(self) -> dict[str, Any]:
        """What ``node.json`` holds (everything but the process handle)."""
        return {
            "url": self.url,
            "pid": self.pid,
            "version": self.version,
            "home": str(self.home),
            "java": self.java,
            "started_in": self.started_in,
        }

    def __enter__(self) -> OpenSearchNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the pinned version and the Java it needs -------------------------------------------------------------


def pinned_version(engine_dir: Path = ENGINE_DIR) -> str:
    """The OpenSearch version ``pom.xml`` pins (``<opensearch.version>``)."""
    match = re.search(r"<opensearch\.version>\s*([^<\s]+)\s*</opensearch\.version>", _read_pom(engine_dir))
    if not match:
        raise EngineUnavailableError(f"{engine_dir / 'pom.xml'} names no <opensearch.version>")
    return match.group(1)


def required_java(engine_dir: Path = ENGINE_DIR) -> int:
    """The oldest Java that runs the pinned OpenSearch (3.x: 21; 2.x: 11) and compiles the launcher."""
    version = pinned_version(engine_dir)
    need = 21 if int(version.split(".")[0]) >= 3 else 11
    release = re.search(r"<maven\.compiler\.release>\s*(\d+)\s*<", _read_pom(engine_dir))
    return max(need, int(release.group(1)) if release else 0)


def _read_pom(engine_dir: Path) -> str:
    try:
        return (engine_dir / "pom.xml").read_text(encoding="utf-8")
    except OSError as exc:
        raise EngineUnavailableError(
            f"the OpenSearch launcher's sources are not at {engine_dir} ({exc.strerror}). They ship in the "
            "fuserec-os repository (engines/opensearch/), not in the installed package: run from a checkout."
        ) from exc


def jdk_feature(home: Path) -> int | None:
    """A JDK's feature version, from its ``release`` file or, failing that, ``java -version``."""
    try:
        text = (home / "release").read_text(encoding="utf-8", errors="replace")
        match = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.M)
        if match:
            major = int(match.group(1))
            return int(match.group(2)) if major == 1 and match.group(2) else major
    except OSError:
        pass
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def candidate_jdks() -> list[Path]:
    """JAVA_HOME first, then every JDK under /usr/lib/jvm, then the ``java`` on PATH (symlinks resolved)."""
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    if JVM_ROOT.is_dir():
        homes.extend(sorted(p for p in JVM_ROOT.iterdir() if (p / "bin" / "java").is_file()))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    seen: set[Path] = set()
    unique = []
    for home in homes:
        key = home.resolve() if home.exists() else home
        if key not in seen:
            seen.add(key)
            unique.append(home)
    return unique


def find_jdk(need: int | None = None, *, javac: bool = True, engine_dir: Path = ENGINE_DIR) -> Jdk:
    """The JDK to use: JAVA_HOME if it is new enough, else the newest one found that is.

    ``javac``: also require a compiler (the launcher is built once with it). Raises EngineUnavailableError
    naming what was found and what to install.
    """
    need = need if need is not None else required_java(engine_dir)
    found: list[Jdk] = []
    for home in candidate_jdks():
        feature = jdk_feature(home)
        if feature is not None:
            found.append(Jdk(home, feature))
    usable = [j for j in found if j.feature >= need and (j.has_javac or not javac)]
    env_home = os.environ.get("JAVA_HOME")
    for jdk in usable:
        if env_home and jdk.home == Path(env_home):
            return jdk
    if usable:
        return max(usable, key=lambda j: j.feature)
    seen = ", ".join(f"Java {j.feature} at {j.home}{'' if j.has_javac else ' (no javac)'}" for j in found)
    raise EngineUnavailableError(
        f"OpenSearch {pinned_version(engine_dir)} needs a JDK {need} or newer{' with javac' if javac else ''}; "
        f"found {seen or 'no Java at all'}. To fix it, " + INSTALL_JDK.format(need=need) + "."
    )


def find_maven() -> str:
    """The ``mvn`` on PATH, or EngineUnavailableError saying how to install Maven."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineUnavailableError(
            "Maven (mvn) is not on PATH; it fetches OpenSearch's jars from Maven Central once and builds the "
            "node launcher. Install it: `apt-get install maven` (or https://maven.apache.org/install.html)."
        )
    return mvn


# --- building the launcher once ---------------------------------------------------------------------------


def _inputs_digest(engine_dir: Path, jdk: Jdk) -> str:
    """What the build depends on: the pom, every source and resource file, and the JDK's feature version."""
    h = hashlib.sha256()
    files = [engine_dir / "pom.xml", *sorted((engine_dir / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            h.update(str(path.relative_to(engine_dir)).encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
    h.update(f"java{jdk.feature}".encode())
    return h.hexdigest()


def launcher_jar(engine_dir: Path = ENGINE_DIR) -> Path:
    """The launcher's jar as ``mvn package`` names it (``target/ARTIFACT-VERSION.jar``)."""
    pom = _read_pom(engine_dir)
    project = re.sub(r"<(parent|dependencies|build|properties)>.*?</\1>", "", pom, flags=re.S)
    artifact = re.search(r"<artifactId>\s*([^<\s]+)\s*</artifactId>", project)
    version = re.search(r"<version>\s*([^<\s]+)\s*</version>", project)
    if not artifact or not version:
        raise EngineUnavailableError(f"{engine_dir / 'pom.xml'} names no project artifactId and version")
    return engine_dir / "target" / f"{artifact.group(1)}-{version.group(1)}.jar"


def cds_archive_name(jdk: Jdk) -> str:
    return f"fuserec-node-java{jdk.feature}.jsa"


def launcher_built(engine_dir: Path = ENGINE_DIR, jdk: Jdk | None = None) -> bool:
    """True when ``target/`` holds a build of the current pom and sources (no Maven run needed)."""
    jdk = jdk or find_jdk(engine_dir=engine_dir, javac=False)
    target = engine_dir / "target"
    try:
        stamp = json.loads((target / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("inputs") == _inputs_digest(engine_dir, jdk)
        and launcher_jar(engine_dir).is_file()
        and any((target / "dependency").glob("opensearch-*.jar"))
    )


def build_launcher(engine_dir: Path = ENGINE_DIR, jdk: Jdk | None = None, timeout: float = 1800.0) -> Path:
    """Build the launcher and copy its dependencies into ``target/`` unless already up to date; return target/.

    The first build downloads about 65 MB of jars from Maven Central into ~/.m2 (a minute or two); later
    builds are offline-fast and skipped entirely while nothing changed. Concurrent callers wait on a lock.
    """
    jdk = jdk or find_jdk(engine_dir=engine_dir)
    target = engine_dir / "target"
    if launcher_built(engine_dir, jdk):
        return target
    mvn = find_maven()
    if not jdk.has_javac:
        jdk = find_jdk(jdk.feature, engine_dir=engine_dir)
    target.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(target / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if launcher_built(engine_dir, jdk):  # built by whoever held the lock
            return target
        # stale jars of another version must not stay on the classpath
        shutil.rmtree(target / "dependency", ignore_errors=True)
        (target / STAMP).unlink(missing_ok=True)
        for archive in target.glob("*.jsa"):  # class-data archives of the old class path
            archive.unlink(missing_ok=True)
        env = dict(os.environ, JAVA_HOME=str(jdk.home))
        if jdk.feature >= 23:  # Maven 3.8's bundled guava warns about sun.misc.Unsafe on new JDKs
            env["MAVEN_OPTS"] = (env.get("MAVEN_OPTS", "") + " --sun-misc-unsafe-memory-access=allow").strip()
        cmd = [mvn, "-q", "-B", "-f", str(engine_dir / "pom.xml"), "package", "dependency:copy-dependencies"]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise EngineUnavailableError(
                f"building the OpenSearch launcher took over {timeout:.0f} s ({' '.join(cmd)}); is Maven Central "
                "reachable?"
            ) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
            raise EngineUnavailableError(
                f"building the OpenSearch launcher failed (JAVA_HOME={jdk.home} {' '.join(cmd)}, exit "
                f"{done.returncode}); Maven Central must be reachable for the first build. Its output ends with:\n"
                f"{tail}"
            )
        (target / STAMP).write_text(
            json.dumps({"inputs": _inputs_digest(engine_dir, jdk), "opensearch": pinned_version(engine_dir)}, indent=2)
            + "\n"
        )
    return target


# --- starting and stopping --------------------------------------------------------------------------------


def java_command(
    jdk: Jdk,
    home: Path,
    *,
    engine_dir: Path = ENGINE_DIR,
    heap: str = DEFAULT_HEAP,
    heap_min: str = DEFAULT_HEAP_MIN,
    http_port: int = 0,
    transport_port: int = 0,
    cluster_name: str = "fuserec",
    exit_on_stdin_close: bool = False,
) -> list[str]:
    """The ``java`` command line that runs the node (port 0: the kernel picks a free one)."""
    target = engine_dir / "target"
    if _bytes(heap_min) > _bytes(heap):  # a small -Xmx must not fail against the default -Xms
        heap_min = heap
    flags = [
        # the JVM's own warnings to stderr only: stdout carries the ready line
        "-Xlog:disable",
        "-Xlog:all=warning:stderr",
        f"-Xms{heap_min}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Dfile.encoding=UTF-8",
        "-Djava.locale.providers=SPI,CLDR",  # as OpenSearch's jvm.options: date formats depend on it
        "-Djava.util.logging.manager=org.apache.logging.log4j.jul.LogManager",
        f"-Djava.io.tmpdir={home / 'tmp'}",
        "--enable-native-access=ALL-UNNAMED",  # Lucene's memory-mapped directories (Panama)
        "--add-modules=jdk.incubator.vector",  # Lucene's vectorised scoring, as a distribution enables it
    ]
    if jdk.feature >= 19:
        # A class-data-sharing archive of the node's classes, written when the first node exits and used (and
        # rewritten if stale) by later ones: start-up about twice as fast, RSS about 45 MB lower.
        flags += ["-XX:+AutoCreateSharedArchive", f"-XX:SharedArchiveFile={target / cds_archive_name(jdk)}"]
        # without its complaint that the JDK's base archive was dumped without the module options above
        flags += ["-Xlog:cds*=off:stderr", *(["-Xlog:aot*=off:stderr"] if jdk.feature >= 24 else [])]
    args = [
        MAIN_CLASS,
        "--home",
        str(home),
        "--http-port",
        str(http_port),
        "--transport-port",
        str(transport_port),
        "--cluster-name",
        cluster_name,
    ]
    if exit_on_stdin_close:
        args.append("--exit-on-stdin-close")
    # the launcher's jar, not target/classes: class-data sharing accepts only jars on the class path
    classpath = os.pathsep.join([str(launcher_jar(engine_dir)), str(target / "dependency" / "*")])
    return [str(jdk.java), *flags, "-cp", classpath, *args]


def _bytes(size: str) -> int:
    """A JVM memory size (``512m``, ``1g``, ``1048576``) in bytes; 0 when unreadable (the JVM will say why)."""
    match = re.fullmatch(r"(\d+)([kKmMgGtT]?)", size.strip())
    if not match:
        return 0
    return int(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")


def start_node(
    home: Path,
    *,
    heap: str = DEFAULT_HEAP,
    heap_min: str = DEFAULT_HEAP_MIN,
    http_port: int = 0,
    detach: bool = False,
    startup_timeout: float = 300.0,
    health_timeout: float = 120.0,
    refresh_interval: str | None = None,
    engine_dir: Path = ENGINE_DIR,
) -> OpenSearchNode:
    """Build if needed, start a node with everything under ``home``, and wait until it is usable.

    ``detach=False``: the node is this process's child and stops when this process ends (it watches its
    stdin). ``detach=True``: it outlives this process (``stop_recorded(home)`` stops it). Either way
    ``home/node.json`` records url, pid and version. Waits for the ready line for up to ``startup_timeout`` s
    while the JVM is alive (if it dies, the error quotes the end of its logs at once), then for the cluster
    to be yellow. Data persists in ``home/data`` between starts. ``refresh_interval`` (e.g. ``"-1"``): the
    default ``index.refresh_interval`` of every index created from then on (see :func:`set_refresh_interval`).
    """
    home = Path(home).resolve()
    jdk = find_jdk(engine_dir=engine_dir, javac=False)
    build_launcher(engine_dir, jdk if jdk.has_javac else None)
    previous = read_recorded(home)
    if previous is not None and previous.alive():
        raise EngineUnavailableError(
            f"an OpenSearch node (pid {previous.pid}, {previous.url}) already runs with its data in {home}; "
            f"stop it first (scripts/opensearch_node.py stop --home {home})"
        )
    for sub in ("data", "logs", "config", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / STATE_FILE).unlink(missing_ok=True)
    launcher_log = home / "logs" / LAUNCHER_LOG
    cmd = java_command(
        jdk,
        home,
        engine_dir=engine_dir,
        heap=heap,
        heap_min=heap_min,
        http_port=http_port,
        exit_on_stdin_close=not detach,
    )
    began = time.monotonic()
    process: subprocess.Popen[bytes] | None = None
    launcher_log.write_bytes(b"")
    if detach:
        # through `sh -c '... &'` so that the JVM is re-parented at once and no Popen is left running; the JVM
        # writes to the log itself, the pipe only carries sh's `echo $!`
        out = subprocess.run(
            ["/bin/sh", "-c", 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!', "sh", str(launcher_log), *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=True,
            cwd=home,
        )
        pid = int(out.stdout.decode().split()[-1])
    else:
        with open(launcher_log, "ab") as log:
            process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=home)
        pid = process.pid

    def alive() -> bool:
        return process.poll() is None if process is not None else pid_alive(pid)

    try:
        ready = _wait_ready(launcher_log, alive, startup_timeout, home)
        node = OpenSearchNode(
            url=str(ready["url"]),
            pid=int(ready.get("pid", pid)),
            version=str(ready.get("version", "?")),
            home=home,
            java=str(ready.get("java", jdk.feature)),
            process=process,
        )
        _wait_yellow(node, health_timeout, alive)
        if refresh_interval is not None:
            set_refresh_interval(node.url, refresh_interval)
        node.started_in = round(time.monotonic() - began, 2)
        (home / STATE_FILE).write_text(json.dumps(node.record(), indent=2) + "\n")
    except BaseException:
        if process is not None:
            _stop_child(process, 10.0)
        else:
            _stop_pid(pid, 10.0)
        raise
    return node


def _wait_ready(launcher_log: Path, alive: Any, timeout: float, home: Path) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ready = _ready_line(launcher_log)
        if ready is not None:
            return ready
        if not alive():
            time.sleep(0.2)  # let the last lines reach the files
            raise EngineUnavailableError(f"OpenSearch exited while starting. {_log_tails(home)}")
        if time.monotonic() > deadline:
            raise EngineUnavailableError(
                f"OpenSearch did not report ready within {timeout:.0f} s (the JVM is alive but slow: a busy "
                f"machine? raise the timeout). {_log_tails(home)}"
            )
        time.sleep(0.1)


def _wait_yellow(node: OpenSearchNode, timeout: float, alive: Any) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise EngineUnavailableError(f"OpenSearch exited after starting. {_log_tails(node.home)}")
        wait = max(1, min(30, int(deadline - time.monotonic())))
        try:
            health = http_json(f"{node.url}/_cluster/health?wait_for_status=yellow&timeout={wait}s", wait + 10)
            if health.get("status") in ("yellow", "green") and not health.get("timed_out"):
                return
            last = f"status {health.get('status')}"
        except (OSError, ValueError) as exc:
            last = str(exc)
            time.sleep(0.5)
    raise EngineUnavailableError(
        f"OpenSearch at {node.url} did not reach yellow within {timeout:.0f} s ({last}). {_log_tails(node.home)}"
    )


REFRESH_TEMPLATE = "fuserec-default-refresh-interval"


def set_refresh_interval(url: str, interval: str) -> None:
    """Make ``interval`` the default ``index.refresh_interval`` of every index created from now on (an index
    template of priority 0 matching ``*``; an index's own setting still wins).

    With ``"-1"`` nothing becomes searchable until someone refreshes: code that searches for what it has just
    written without a refresh fails every time, instead of now and then as it does with the default 1 s.
    ``make test-opensearch`` runs the suite that way.
    """
    body = {"index_patterns": ["*"], "priority": 0, "template": {"settings": {"index.refresh_interval": interval}}}
    answer = http_json(f"{url}/_index_template/{REFRESH_TEMPLATE}", 30.0, method="PUT", body=body)
    if not answer.get("acknowledged"):
        raise EngineUnavailableError(f"OpenSearch at {url} refused the refresh-interval template: {answer}")


def http_json(url: str, timeout: float = 10.0, method: str = "GET", body: Any = None) -> dict[str, Any]:
    """Send one request (``body`` as JSON) and decode the JSON answer (an error status's body too)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    data = json.loads(body)
    return data if isinstance(data, dict) else {"value": data}


def _ready_line(path: Path) -> dict[str, Any] | None:
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                msg = json.loads(line)
                if isinstance(msg, dict) and "url" in msg:
                    return msg
    except (OSError, ValueError):
        return None
    return None


def _tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, without Java stack frames (the exception and its causes stay)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    kept = [line for line in text if not line.startswith(("\tat ", "\t... "))]
    return "\n".join(kept[-lines:])


def _log_tails(home: Path) -> str:
    parts = []
    for path in (home / "logs" / LAUNCHER_LOG, home / NODE_LOG):
        tail = _tail(path).strip()
        if tail:
            parts.append(f"{path} ends with:\n{tail}")
    return "\n".join(parts) or f"(no logs under {home / 'logs'})"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def rss_mb(pid: int) -> float | None:
    """A process's resident set size in MiB, from /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stop_child(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    stdin: IO[bytes] | None = process.stdin
    if stdin is not None and not stdin.closed:
        with contextlib.suppress(OSError):
            stdin.close()


def _stop_pid(pid: int, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def read_recorded(home: Path) -> OpenSearchNode | None:
    """The node ``home/node.json`` records, or None (no record, or unreadable)."""
    try:
        raw = json.loads((Path(home) / STATE_FILE).read_text())
        return OpenSearchNode(
            url=raw["url"],
            pid=int(raw["pid"]),
            version=raw.get("version", "?"),
            home=Path(home).resolve(),
            java=str(raw.get("java", "")),
            started_in=float(raw.get("started_in", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_recorded(home: Path, grace: float = 30.0) -> OpenSearchNode | None:
    """Stop the node recorded in ``home/node.json`` (if it still runs); return what was recorded."""
    node = read_recorded(home)
    if node is None:
        return None
    node.stop(grace)
    return node
