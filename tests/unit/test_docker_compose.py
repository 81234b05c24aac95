"""Static checks of docker-compose.yml and the Dockerfile (no docker needed).

They check what ``docker compose config`` would reject, plus the wiring this project relies on: the three
services exist, every ``depends_on`` target exists (and has a healthcheck when we wait for it to be healthy),
ports are valid quoted ``"host:container"`` strings, named volumes are declared at the top level and bind
mounts exist, the fuserec service points FUSEREC_OPENSEARCH_URL at the opensearch service's name and port,
the security choice is explicit and consistent, and the Dockerfile's ENTRYPOINT runs ``fuserec``.

Every check is a function returning a list of problems: one test runs it on the real files and expects none,
and ``test_check_catches_*`` feeds it a broken copy and expects the problem to be reported, so no check can
pass vacuously.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
REQUIRED_SERVICES = ("opensearch", "dashboards", "fuserec")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
TRUE, FALSE = {"true"}, {"false"}

Compose = dict[str, Any]


# ------------------------------------------------------------------------------------------ helpers


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} must be a YAML mapping"
    return data


def services(compose: Compose) -> dict[str, Any]:
    s = compose.get("services")
    return s if isinstance(s, dict) else {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, from either the list (``KEY=VALUE``) or the mapping form."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    out: dict[str, str] = {}
    for item in env:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """``{target: condition}`` from either the list or the long (mapping) form of depends_on."""
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {str(name): "service_started" for name in dep}
    return {str(name): str((spec or {}).get("condition", "service_started")) for name, spec in dep.items()}


_PORT_RE = re.compile(r"^(?:(?P<ip>[\d.]+|\[[0-9a-fA-F:]+\]):)?(?P<host>\d+):(?P<container>\d+)(?:/(?:tcp|udp))?$")


def parse_port(entry: Any) -> tuple[int, int] | None:
    """``(host, container)`` for a quoted ``"[ip:]host:container[/proto]"`` entry, else None."""
    if not isinstance(entry, str):  # unquoted 9200:9200 is a YAML 1.1 base-60 integer, not a port mapping
        return None
    m = _PORT_RE.match(entry)
    if not m:
        return None
    host, container = int(m.group("host")), int(m.group("container"))
    if not (1 <= host <= 65535 and 1 <= container <= 65535):
        return None
    return host, container


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form ENTRYPOINT/CMD, or None for the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


# ------------------------------------------------------------------------------------------ checks


def check_services(compose: Compose) -> list[str]:
    problems = [f"service '{name}' is missing" for name in REQUIRED_SERVICES if name not in services(compose)]
    for name, svc in services(compose).items():
        if not isinstance(svc, dict) or not (svc.get("image") or svc.get("build")):
            problems.append(f"service '{name}' needs an image or a build section")
    return problems


def check_depends_on(compose: Compose) -> list[str]:
    svcs = services(compose)
    problems = []
    for name, svc in svcs.items():
        for target, condition in depends_on(svc).items():
            if target not in svcs:
                problems.append(f"{name} depends on '{target}', which is not a service")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name} -> {target}: unknown condition '{condition}'")
            if condition == "service_healthy" and not svcs[target].get("healthcheck"):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
    for name in ("dashboards", "fuserec"):
        if depends_on(svcs.get(name, {})).get("opensearch") != "service_healthy":
            problems.append(f"{name} must depend on opensearch with condition service_healthy")
    return problems


def check_ports(compose: Compose) -> list[str]:
    problems = []
    published: dict[int, str] = {}
    for name, svc in services(compose).items():
        for entry in svc.get("ports") or []:
            parsed = parse_port(entry)
            if parsed is None:
                problems.append(f'{name}: port {entry!r} is not a quoted "host:container" string with valid ports')
                continue
            host = parsed[0]
            if host in published:
                problems.append(f"host port {host} is published by both {published[host]} and {name}")
            published[host] = name
    expected = {"opensearch": (9200, 9200), "dashboards": (5601, 5601)}
    for name, pair in expected.items():
        ports = [parse_port(p) for p in services(compose).get(name, {}).get("ports") or []]
        if pair not in ports:
            problems.append(f'{name} must publish "{pair[0]}:{pair[1]}"')
    return problems


def check_volumes(compose: Compose, root: Path = REPO) -> list[str]:
    declared = compose.get("volumes") or {}
    problems = []
    used: set[str] = set()
    for name, svc in services(compose).items():
        for entry in svc.get("volumes") or []:
            if isinstance(entry, dict):  # long syntax
                source, kind = str(entry.get("source", "")), entry.get("type", "volume")
            else:
                source = str(entry).split(":")[0]
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "bind":
                if source.startswith(".") and not (root / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
            elif source:
                used.add(source)
                if source not in declared:
                    problems.append(f"{name}: named volume '{source}' is not declared under top-level volumes")
    problems += [f"top-level volume '{v}' is declared but no service uses it" for v in declared if v not in used]
    if not any(
        str(v).endswith(":/usr/share/opensearch/data")
        for v in services(compose).get("opensearch", {}).get("volumes") or []
    ):
        problems.append("opensearch must keep its data in a volume at /usr/share/opensearch/data")
    if not any(":/app/mappings" in str(v) for v in services(compose).get("fuserec", {}).get("volumes") or []):
        problems.append("fuserec must mount ./mappings")
    return problems


def check_engine_url(compose: Compose) -> list[str]:
    svcs = services(compose)
    url = environment(svcs.get("fuserec", {})).get("FUSEREC_OPENSEARCH_URL")
    if not url:
        return ["fuserec: FUSEREC_OPENSEARCH_URL is not set"]
    parts = urlsplit(url)
    problems = []
    if parts.hostname != "opensearch" or parts.hostname not in svcs:
        problems.append(f"FUSEREC_OPENSEARCH_URL={url} must name the opensearch service as its host")
    container_ports = {p[1] for p in map(parse_port, svcs.get("opensearch", {}).get("ports") or []) if p}
    container_ports |= {9200}  # the port OpenSearch listens on inside the network, published or not
    if parts.port is None or parts.port not in container_ports:
        problems.append(f"FUSEREC_OPENSEARCH_URL={url} must use the opensearch container port 9200")
    return problems


def check_security(compose: Compose) -> list[str]:
    """The security choice must be explicit (true/false, not left to the image default) and consistent."""
    svcs = services(compose)
    os_env = environment(svcs.get("opensearch", {}))
    problems = []
    disabled = os_env.get("DISABLE_SECURITY_PLUGIN", "").lower()
    if disabled not in TRUE | FALSE:
        return [f"opensearch: DISABLE_SECURITY_PLUGIN must be set to true or false, got {disabled or 'nothing'!r}"]
    url = environment(svcs.get("fuserec", {})).get("FUSEREC_OPENSEARCH_URL", "")
    dash_env = environment(svcs.get("dashboards", {}))
    if disabled == "true":
        if os_env.get("DISABLE_INSTALL_DEMO_CONFIG", "").lower() != "true":
            problems.append("security is disabled, so DISABLE_INSTALL_DEMO_CONFIG must be true as well")
        if dash_env.get("DISABLE_SECURITY_DASHBOARDS_PLUGIN", "").lower() != "true":
            problems.append("security is disabled, so dashboards needs DISABLE_SECURITY_DASHBOARDS_PLUGIN=true")
        if not url.startswith("http://"):
            problems.append(f"security is disabled (no TLS), so FUSEREC_OPENSEARCH_URL must be http://, got {url!r}")
        if "https://" in dash_env.get("OPENSEARCH_HOSTS", ""):
            problems.append("security is disabled (no TLS), so OPENSEARCH_HOSTS must use http://")
    else:
        if not url.startswith("https://"):
            problems.append(f"security is enabled (TLS), so FUSEREC_OPENSEARCH_URL must be https://, got {url!r}")
    heap = os_env.get("OPENSEARCH_JAVA_OPTS", "")
    xms, xmx = re.search(r"-Xms(\S+)", heap), re.search(r"-Xmx(\S+)", heap)
    if not (xms and xmx and xms.group(1) == xmx.group(1)):
        problems.append(f"OPENSEARCH_JAVA_OPTS must set -Xms and -Xmx to the same heap size, got {heap!r}")
    if os_env.get("discovery.type") != "single-node":
        problems.append("opensearch must run with discovery.type=single-node")
    return problems


def check_images(compose: Compose) -> list[str]:
    svcs = services(compose)
    os_image = str(svcs.get("opensearch", {}).get("image", ""))
    dash_image = str(svcs.get("dashboards", {}).get("image", ""))
    problems = []
    if not os_image.startswith("opensearchproject/opensearch:"):
        problems.append(f"opensearch image must be opensearchproject/opensearch:<version>, got {os_image!r}")
    if not dash_image.startswith("opensearchproject/opensearch-dashboards:"):
        problems.append(
            f"dashboards image must be opensearchproject/opensearch-dashboards:<version>, got {dash_image!r}"
        )
    os_tag, dash_tag = os_image.rpartition(":")[2], dash_image.rpartition(":")[2]
    if not re.fullmatch(r"[23]\.\d+\.\d+", os_tag):
        problems.append(f"pin the opensearch image to a 2.x/3.x release (x.y.z), got tag {os_tag!r}")
    if os_tag != dash_tag:
        problems.append(f"dashboards {dash_tag!r} must match opensearch {os_tag!r}")
    health = svcs.get("opensearch", {}).get("healthcheck") or {}
    test = " ".join(health.get("test") or []) if isinstance(health.get("test"), list) else str(health.get("test"))
    if not ("curl" in test and "9200" in test and "_cluster/health" in test):
        problems.append(f"opensearch healthcheck must curl :9200/_cluster/health, got {test!r}")
    ulimits = svcs.get("opensearch", {}).get("ulimits") or {}
    if (ulimits.get("memlock") or {}).get("soft") != -1 or "nofile" not in ulimits:
        problems.append("opensearch needs ulimits memlock -1 and nofile")
    return problems


def check_dockerfile(compose: Compose, root: Path = REPO) -> list[str]:
    build = services(compose).get("fuserec", {}).get("build")
    if build is None:
        return ["fuserec must be built from the Dockerfile"]
    context = build if isinstance(build, str) else build.get("context", ".")
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    path = root / context / name
    if not path.is_file():
        return [f"{path} does not exist"]
    instructions = dockerfile_instructions(path)
    problems = []
    froms = [args for word, args in instructions if word == "FROM"]
    if not froms or not froms[-1].startswith("python:3.11-slim"):
        problems.append(f"the final stage must be FROM python:3.11-slim, got {froms}")
    entry = [exec_form(args) for word, args in instructions if word == "ENTRYPOINT"]
    if not entry or not entry[-1] or Path(entry[-1][0]).name != "fuserec":
        problems.append(f'ENTRYPOINT must be the exec form running fuserec, e.g. ["fuserec"], got {entry}')
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib: Python 3.10 is supported
    if not re.search(r"^\[project\.scripts\][^\[]*?^fuserec\s*=", pyproject, re.MULTILINE):
        problems.append("pyproject.toml has no 'fuserec' console script for the ENTRYPOINT to run")
    cmd = [exec_form(args) for word, args in instructions if word == "CMD"]
    if not cmd or cmd[-1] != ["demo"]:
        problems.append(f'the default CMD must be ["demo"], got {cmd}')
    if not any(word == "RUN" and "pip install" in args for word, args in instructions):
        problems.append("the Dockerfile must pip install the project")
    return problems


CHECKS: dict[str, Callable[[Compose], list[str]]] = {
    "services": check_services,
    "depends_on": check_depends_on,
    "ports": check_ports,
    "volumes": check_volumes,
    "engine_url": check_engine_url,
    "security": check_security,
    "images": check_images,
    "dockerfile": check_dockerfile,
}


# ------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.mark.parametrize("name", list(CHECKS))
def test_compose_file_passes(compose: Compose, name: str) -> None:
    assert CHECKS[name](compose) == []


def _svc(c: Compose, name: str) -> dict[str, Any]:
    svc: dict[str, Any] = c["services"][name]
    return svc


def _set_env(c: Compose, service: str, key: str, value: str | None) -> None:
    env = environment(_svc(c, service))
    if value is None:
        env.pop(key, None)
    else:
        env[key] = value
    _svc(c, service)["environment"] = [f"{k}={v}" for k, v in env.items()]


BREAKAGES: list[tuple[str, Callable[[Compose], None], str]] = [
    ("services", lambda c: c["services"].pop("dashboards"), "'dashboards' is missing"),
    ("services", lambda c: _svc(c, "fuserec").pop("build") and _svc(c, "fuserec").pop("image"), "image or a build"),
    ("depends_on", lambda c: _svc(c, "fuserec").update(depends_on=["opensearch", "redis"]), "'redis'"),
    ("depends_on", lambda c: _svc(c, "opensearch").pop("healthcheck"), "has no healthcheck"),
    ("depends_on", lambda c: _svc(c, "dashboards").update(depends_on=["opensearch"]), "service_healthy"),
    ("depends_on", lambda c: _svc(c, "fuserec").update(depends_on={"opensearch": {"condition": "up"}}), "unknown"),
    ("ports", lambda c: _svc(c, "opensearch").update(ports=[9200 * 60 + 9200]), "not a quoted"),
    ("ports", lambda c: _svc(c, "opensearch").update(ports=["9200:99999"]), "not a quoted"),
    ("ports", lambda c: _svc(c, "dashboards").update(ports=["9200:5601"]), "published by both"),
    ("ports", lambda c: _svc(c, "dashboards").update(ports=["5602:5601"]), "dashboards must publish"),
    ("volumes", lambda c: c.update(volumes={}), "not declared"),
    ("volumes", lambda c: c["volumes"].update(unused=None), "no service uses it"),
    ("volumes", lambda c: _svc(c, "fuserec").update(volumes=["./no-such-dir:/app/mappings:ro"]), "does not exist"),
    ("volumes", lambda c: _svc(c, "fuserec").update(volumes=[]), "must mount ./mappings"),
    ("engine_url", lambda c: _set_env(c, "fuserec", "FUSEREC_OPENSEARCH_URL", "http://localhost:9200"), "host"),
    ("engine_url", lambda c: _set_env(c, "fuserec", "FUSEREC_OPENSEARCH_URL", "http://opensearch:9300"), "9200"),
    ("engine_url", lambda c: _set_env(c, "fuserec", "FUSEREC_OPENSEARCH_URL", None), "not set"),
    ("security", lambda c: _set_env(c, "opensearch", "DISABLE_SECURITY_PLUGIN", None), "true or false"),
    ("security", lambda c: _set_env(c, "opensearch", "DISABLE_INSTALL_DEMO_CONFIG", None), "DEMO_CONFIG"),
    ("security", lambda c: _set_env(c, "dashboards", "DISABLE_SECURITY_DASHBOARDS_PLUGIN", None), "DASHBOARDS"),
    ("security", lambda c: _set_env(c, "opensearch", "DISABLE_SECURITY_PLUGIN", "false"), "https://"),
    ("security", lambda c: _set_env(c, "opensearch", "OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx1g"), "same heap"),
    ("security", lambda c: _set_env(c, "opensearch", "discovery.type", None), "single-node"),
    ("images", lambda c: _svc(c, "dashboards").update(image="opensearchproject/opensearch-dashboards:2.19.1"), "match"),
    ("images", lambda c: _svc(c, "opensearch").update(image="opensearchproject/opensearch:latest"), "pin"),
    ("images", lambda c: _svc(c, "opensearch")["healthcheck"].update(test=["CMD", "true"]), "healthcheck"),
    ("images", lambda c: _svc(c, "opensearch").pop("ulimits"), "ulimits"),
    ("dockerfile", lambda c: _svc(c, "fuserec").update(build={"context": ".", "dockerfile": "Nope"}), "not exist"),
    ("dockerfile", lambda c: _svc(c, "fuserec").pop("build"), "built from the Dockerfile"),
]


@pytest.mark.parametrize(
    ("check", "breakage", "expected"), BREAKAGES, ids=[f"{b[0]}-{i}" for i, b in enumerate(BREAKAGES)]
)
def test_check_catches_broken_compose(
    compose: Compose, check: str, breakage: Callable[[Compose], None], expected: str
) -> None:
    broken = copy.deepcopy(compose)
    breakage(broken)
    problems = CHECKS[check](broken)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ('FROM python:3.11-slim\nRUN pip install .\nENTRYPOINT ["python"]\nCMD ["demo"]\n', "ENTRYPOINT"),
        ('FROM python:3.11-slim\nRUN pip install .\nENTRYPOINT fuserec\nCMD ["demo"]\n', "ENTRYPOINT"),
        ('FROM python:3.12\nRUN pip install .\nENTRYPOINT ["fuserec"]\nCMD ["demo"]\n', "python:3.11-slim"),
        ('FROM python:3.11-slim\nRUN pip install .\nENTRYPOINT ["fuserec"]\nCMD ["serve"]\n', "CMD"),
        ('FROM python:3.11-slim\nENTRYPOINT ["fuserec"]\nCMD ["demo"]\n', "pip install"),
    ],
)
def test_check_catches_broken_dockerfile(compose: Compose, tmp_path: Path, dockerfile: str, expected: str) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    problems = check_dockerfile(compose, root=tmp_path)
    assert any(expected in p for p in problems), problems


def test_check_catches_missing_console_script(compose: Compose, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_bytes((REPO / "Dockerfile").read_bytes())
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.scripts]\nother = "x:main"\n')
    assert any("console script" in p for p in check_dockerfile(compose, root=tmp_path))


def test_unquoted_port_is_a_yaml_integer() -> None:
    """Why ports must be quoted: YAML 1.1 reads an unquoted 22:22 as the base-60 number 1342."""
    parsed = yaml.safe_load('ports:\n  - 22:22\n  - "22:22"\n')
    assert parsed["ports"][0] == 1342
    assert [parse_port(p) for p in parsed["ports"]] == [None, (22, 22)]


def test_default_cmd_is_a_cli_command() -> None:
    """The Dockerfile's default CMD must name a real fuserec command."""
    from fuserec_os.cli import cli

    cmd = [exec_form(a) for w, a in dockerfile_instructions(REPO / "Dockerfile") if w == "CMD"][-1]
    assert cmd is not None and cmd[0] in cli.commands


def test_dockerignore_keeps_local_state_out() -> None:
    lines = {ln.strip() for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()}
    for entry in (".venv", ".git", ".fuserec", ".env"):
        assert entry in lines, f".dockerignore must exclude {entry}"
