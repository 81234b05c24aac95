"""The real-OpenSearch launcher's Python side, without starting Java: finding a JDK and Maven (or saying what
to install), the build cache, the ready line, and failing fast with the logs when the JVM dies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuserec_os.engine import opensearch_node as osn
from fuserec_os.errors import EngineUnavailableError


def _jdk(root: Path, name: str, version: str, javac: bool = True) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\nexit 0\n")
    if javac:
        (home / "bin" / "javac").write_text("#!/bin/sh\nexit 0\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


@pytest.fixture
def jvms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty /usr/lib/jvm, no JAVA_HOME, no java on PATH."""
    root = tmp_path / "jvm"
    root.mkdir()
    monkeypatch.setattr(osn, "JVM_ROOT", root)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(osn.shutil, "which", lambda name: None)
    return root


def _engine_dir(tmp_path: Path, version: str = "3.9.0", release: int = 21) -> Path:
    d = tmp_path / "engine"
    (d / "src" / "main" / "java").mkdir(parents=True)
    (d / "pom.xml").write_text(
        f"<project><artifactId>node</artifactId><version>1.0</version>"
        f"<properties><opensearch.version>{version}</opensearch.version>"
        f"<maven.compiler.release>{release}</maven.compiler.release></properties>"
        "<dependencies><dependency><artifactId>opensearch</artifactId><version>9.9</version></dependency>"
        "</dependencies></project>"
    )
    (d / "src" / "main" / "java" / "X.java").write_text("class X {}")
    return d


def test_the_repository_pins_one_3x_version_and_needs_java_21() -> None:
    assert osn.pinned_version().startswith("3.")
    assert osn.required_java() == 21
    pom = (osn.ENGINE_DIR / "pom.xml").read_text()
    versions = set(re.findall(r"<version>([^<]+)</version>", pom))
    assert not any(v.startswith("2.") for v in versions), "do not mix 2.x and 3.x artifacts"


def test_the_newest_jdk_that_is_new_enough_is_chosen(jvms: Path, tmp_path: Path) -> None:
    _jdk(jvms, "java-17-openjdk-amd64", "17.0.15")
    _jdk(jvms, "temurin-21", "21.0.4")
    newest = _jdk(jvms, "temurin-25-jdk-amd64", "25.0.3")
    jdk = osn.find_jdk(engine_dir=_engine_dir(tmp_path))
    assert jdk.home == newest and jdk.feature == 25


def test_java_home_wins_when_it_is_new_enough(jvms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _jdk(jvms, "temurin-21", "21.0.4")
    _jdk(jvms, "temurin-25", "25.0.3")
    monkeypatch.setenv("JAVA_HOME", str(chosen))
    assert osn.find_jdk(engine_dir=_engine_dir(tmp_path)).home == chosen


def test_only_an_old_java_says_what_was_found_and_what_to_install(jvms: Path, tmp_path: Path) -> None:
    _jdk(jvms, "java-17-openjdk-amd64", "17.0.15")
    _jdk(jvms, "jre-21", "21.0.1", javac=False)
    engine = _engine_dir(tmp_path)
    with pytest.raises(EngineUnavailableError) as err:
        osn.find_jdk(engine_dir=engine)
    msg = str(err.value)
    assert "OpenSearch 3.9.0 needs a JDK 21 or newer" in msg
    assert "Java 17 at" in msg and "(no javac)" in msg
    assert "apt-get install openjdk-21-jdk" in msg and "JAVA_HOME" in msg
    # running (not building) is fine with a JRE
    assert osn.find_jdk(engine_dir=engine, javac=False).feature == 21


def test_no_java_at_all(jvms: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError, match="found no Java at all"):
        osn.find_jdk(engine_dir=_engine_dir(tmp_path))


def test_missing_maven_says_how_to_install_it(jvms: Path) -> None:
    with pytest.raises(EngineUnavailableError, match=r"apt-get install maven"):
        osn.find_maven()


def test_a_2x_pin_needs_only_java_17(tmp_path: Path) -> None:
    assert osn.required_java(_engine_dir(tmp_path, "2.19.6", 17)) == 17


def test_without_the_sources_the_error_says_to_run_from_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailableError, match="engines/opensearch"):
        osn.pinned_version(tmp_path / "nowhere")


def test_the_build_is_skipped_only_while_pom_and_sources_are_unchanged(tmp_path: Path) -> None:
    engine = _engine_dir(tmp_path)
    jdk = osn.Jdk(tmp_path, 25)
    target = engine / "target"
    assert not osn.launcher_built(engine, jdk)
    (target / "dependency").mkdir(parents=True)
    assert osn.launcher_jar(engine) == target / "node-1.0.jar"
    (target / "node-1.0.jar").write_bytes(b"")
    (target / "dependency" / "opensearch-3.9.0.jar").write_bytes(b"")
    (target / osn.STAMP).write_text(json.dumps({"inputs": osn._inputs_digest(engine, jdk)}))
    assert osn.launcher_built(engine, jdk)
    (engine / "src" / "main" / "java" / "X.java").write_text("class X { int y; }")
    assert not osn.launcher_built(engine, jdk)
    (target / osn.STAMP).write_text(json.dumps({"inputs": osn._inputs_digest(engine, jdk)}))
    assert osn.launcher_built(engine, jdk)
    assert not osn.launcher_built(engine, osn.Jdk(tmp_path, 21)), "another Java means another build"


def test_the_repository_launcher_jar_is_what_maven_packages() -> None:
    assert osn.launcher_jar().name == "fuserec-opensearch-node-1.0.0.jar"


def test_the_ready_line_is_found_among_the_jvms_warnings(tmp_path: Path) -> None:
    log = tmp_path / "launcher.log"
    log.write_text('WARNING: Using incubator modules: jdk.incubator.vector\n{"url": "http://127.0.0.1:1", "pid": 7}\n')
    assert osn._ready_line(log) == {"url": "http://127.0.0.1:1", "pid": 7}
    log.write_text("WARNING: only noise\n{not json\n")
    assert osn._ready_line(log) is None


def test_a_jvm_that_dies_fails_at_once_quoting_its_logs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True)
    frames = "".join(f"\tat org.opensearch.X.m{i}(X.java:{i})\n" for i in range(40))
    (home / "logs" / osn.LAUNCHER_LOG).write_text(
        f"fuserec-node: OpenSearch failed to start: boom\n{frames}Caused by: java.io.IOException: disk\n{frames}"
    )
    (home / osn.NODE_LOG).write_text("[ERROR][o.o.b.Bootstrap] the disk is on fire\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(EngineUnavailableError) as err:
        osn._wait_ready(home / "logs" / osn.LAUNCHER_LOG, lambda: dead.poll() is None, 300.0, home)
    assert "exited while starting" in str(err.value)
    assert "failed to start: boom" in str(err.value) and "the disk is on fire" in str(err.value)
    assert "Caused by: java.io.IOException: disk" in str(err.value) and "\tat " not in str(err.value)


def test_the_java_command_binds_loopback_ports_chosen_by_the_kernel(tmp_path: Path) -> None:
    cmd = osn.java_command(osn.Jdk(tmp_path, 25), tmp_path / "home", heap="768m", exit_on_stdin_close=True)
    assert "-Xmx768m" in cmd and "-Xms512m" in cmd
    assert cmd[cmd.index("--http-port") + 1] == "0" and cmd[cmd.index("--transport-port") + 1] == "0"
    assert cmd[-1] == "--exit-on-stdin-close"
    assert osn.MAIN_CLASS in cmd
    small = osn.java_command(osn.Jdk(tmp_path, 25), tmp_path / "home", heap="256m")
    assert "-Xms256m" in small and "-Xmx256m" in small
    assert any(a.startswith("-XX:SharedArchiveFile=") and a.endswith("java25.jsa") for a in cmd)
    assert not any("SharedArchive" in a for a in osn.java_command(osn.Jdk(tmp_path, 17), tmp_path / "home"))


def test_the_recorded_node_round_trips(tmp_path: Path) -> None:
    node = osn.OpenSearchNode(url="http://127.0.0.1:9", pid=2**22 + 12345, version="3.9.0", home=tmp_path)
    (tmp_path / osn.STATE_FILE).write_text(json.dumps(node.record()))
    again = osn.read_recorded(tmp_path)
    assert again is not None and again.url == node.url and again.pid == node.pid and not again.alive()
    assert osn.stop_recorded(tmp_path) is not None
    assert osn.read_recorded(tmp_path) is None
