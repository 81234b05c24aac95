"""Secrets never appear in output: a password in the cluster URL or in FUSEREC_OPENSEARCH_PASSWORD is masked in
every line a failing (or succeeding) command prints, logs included. Run as separate processes, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

URL_SECRET = "u7l-s3cr3t-Pw"
ENV_SECRET = "env-s3cr3t-Pw"


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ["search", "shoes"],
        ["search", "shoes", "--json"],
        ["index", "status"],
        ["engine", "status"],
        ["ingest", "products", "missing.csv"],
        ["config"],
        ["config", "--json"],
        ["model", "list"],
    ],
)
def test_no_command_prints_a_password(args: list[str], tmp_path: Path) -> None:
    port = _refused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEREC_")}
    env.update(
        FUSEREC_OPENSEARCH_URL=f"http://alice:{URL_SECRET}@127.0.0.1:{port},http://127.0.0.1:{port}",
        FUSEREC_OPENSEARCH_USER="alice",
        FUSEREC_OPENSEARCH_PASSWORD=ENV_SECRET,
        FUSEREC_OPENSEARCH_RETRIES="0",
        FUSEREC_STATE_DIR=str(tmp_path / "state"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "fuserec_os", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    assert URL_SECRET not in output and ENV_SECRET not in output, output
    if args[0] != "config":
        assert proc.returncode != 0 and "127.0.0.1" in output  # it did fail, and said where
