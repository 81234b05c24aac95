"""Integration fixtures: a real engine over HTTP.

By default a session-wide osmem-server (in-memory OpenSearch) is started; with FUSEREC_TEST_OPENSEARCH_URL
set, the same tests run unchanged against that cluster. If the engine cannot be started the tests fail:
they are never skipped. Each test gets its own index prefix and cleans up after itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from opensearchpy import OpenSearch

from fuserec_os.engine import close_osmem
from fuserec_os.engine.client import make_client
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine_url() -> Iterator[str]:
    url = os.environ.get("FUSEREC_TEST_OPENSEARCH_URL")
    if url:
        yield url.rstrip("/")
        return
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        yield server.url
    finally:
        close_osmem(server)


@pytest.fixture(scope="session")
def base_settings(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    env = {"FUSEREC_OPENSEARCH_URL": engine_url}
    for key in ("USER", "PASSWORD", "VERIFY_CERTS", "CA_CERTS"):
        value = os.environ.get(f"FUSEREC_TEST_OPENSEARCH_{key}")
        if value:
            env[f"FUSEREC_OPENSEARCH_{key}"] = value
    env["FUSEREC_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    return Settings.from_values(env)


@pytest.fixture(scope="session")
def client(base_settings: Settings) -> Iterator[OpenSearch]:
    c = make_client(base_settings)
    yield c
    c.close()


@pytest.fixture
def prefix(client: OpenSearch) -> Iterator[str]:
    """A unique index prefix for one test; every index under it is deleted afterwards."""
    p = f"t{uuid.uuid4().hex[:10]}-"
    yield p
    names = client.indices.get(index=f"{p}*", params={"ignore_unavailable": "true"})
    for name in names:
        client.indices.delete(index=name, params={"ignore_unavailable": "true"})


@pytest.fixture
def settings(base_settings: Settings, prefix: str) -> Settings:
    from dataclasses import replace

    return replace(base_settings, index_prefix=prefix)


@pytest.fixture
def alias(settings: Settings) -> str:
    return settings.alias("products")


@pytest.fixture(scope="session")
def spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "products.json", "products")


@pytest.fixture
def cli_env(settings: Settings, engine_url: str) -> dict[str, str]:
    """Environment for CliRunner: the test engine and this test's prefix."""
    env = {
        "FUSEREC_OPENSEARCH_URL": engine_url,
        "FUSEREC_INDEX_PREFIX": settings.index_prefix,
        "FUSEREC_STATE_DIR": str(settings.state_dir),
    }
    if settings.user:
        env["FUSEREC_OPENSEARCH_USER"] = settings.user
        env["FUSEREC_OPENSEARCH_PASSWORD"] = settings.password or ""
    if not settings.verify_certs:
        env["FUSEREC_OPENSEARCH_VERIFY_CERTS"] = "false"
    if settings.ca_certs:
        env["FUSEREC_OPENSEARCH_CA_CERTS"] = str(settings.ca_certs)
    return env


class Cli:
    """Runs ``fuserec`` in-process through click's CliRunner with a fixed environment."""

    def __init__(self, env: dict[str, str | None], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp

    def __call__(self, *args: str, ok: bool = True) -> Result:
        from click.testing import CliRunner

        from fuserec_os.cli import cli

        result = CliRunner().invoke(
            cli, ["--env-file", str(self.tmp / "absent.env"), *args], env=self.env, prog_name="fuserec"
        )
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"fuserec {' '.join(args)} exited {result.exit_code}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}\n{result.exception!r}"
            )
        return result


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    """The CLI against the test engine, with this test's index prefix."""
    return Cli(dict(cli_env), tmp_path)
