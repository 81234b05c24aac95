"""TIME options (``profiles build --as-of``, ``ab report --since/--until``, ``search --now``): a bad time is a
usage error that names the option and shows a valid spelling, before any engine is contacted."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from fuserec_os.commands.common import parse_time_option

DUMMY_URL = "http://127.0.0.1:9"  # nothing listens: a command that got as far as the engine would say so


def run(tmp_path: Path, *args: str) -> Result:
    from fuserec_os.cli import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    env.update({"FUSEREC_OPENSEARCH_URL": DUMMY_URL, "FUSEREC_STATE_DIR": str(tmp_path / "state")})
    return CliRunner().invoke(cli, ["--env-file", str(tmp_path / "none.env"), *args], env=env)


def test_spellings_of_a_time() -> None:
    utc = datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert parse_time_option("2024-05-01T00:00:00Z", "--since") == utc
    assert parse_time_option("2024-05-01T02:00:00+02:00", "--since") == utc
    assert parse_time_option("2024-05-01", "--since") == utc  # naive is UTC
    assert parse_time_option(None, "--since") is None
    with pytest.raises(click.BadParameter, match="ISO 8601"):
        parse_time_option("last tuesday", "--since")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("profiles", "build", "--as-of", "last tuesday"), "--as-of"),
        (("ab", "report", "sim-mlp-vs-engine", "--since", "last tuesday"), "--since"),
        (("ab", "report", "sim-mlp-vs-engine", "--until", "soon"), "--until"),
        (("ab", "report", "sim-mlp-vs-engine", "--since", "2024-05-02", "--until", "2024-05-01"), "--until"),
        (("search", "socks", "--user", "U1", "--now", "yesterday"), "--now"),
        (("search", "socks", "--now", "2024-05-01"), "--user"),  # --now only means something for a shopper
    ],
)
def test_a_bad_time_names_its_option_before_the_engine_is_contacted(
    tmp_path: Path, args: tuple[str, ...], option: str
) -> None:
    got = run(tmp_path, *args)
    assert got.exit_code == 2, got.output
    assert option in got.output and "127.0.0.1:9" not in got.output
