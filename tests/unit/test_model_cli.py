"""``fuserec model train|evaluate`` split options: checked (and explained) before any engine is contacted.

CliRunner in-process with an unreachable cluster URL: every case here must fail on its options, exit 2, with a
message naming the option, never with a connection error. (Running them is the integration test's job.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

DUMMY_URL = "http://127.0.0.1:9"  # nothing listens on the discard port


def run(tmp_path: Path, *args: str) -> Result:
    from fuserec_os.cli import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    env.update({"FUSEREC_OPENSEARCH_URL": DUMMY_URL, "FUSEREC_STATE_DIR": str(tmp_path / "state")})
    return CliRunner().invoke(cli, ["--env-file", str(tmp_path / ".env"), "model", *args], env=env, prog_name="fuserec")


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--holdout", "2"], "--holdout needs --split user"),
        (["--split", "user", "--test-from", "2024-04-10T00:00:00Z"], "--test-from is a time split's cut"),
        (["--split", "user", "--holdout", "0"], "0 is not in the range x>=1"),
        (["--split", "users"], "'users' is not one of 'time', 'user'"),
        (["--test-from", "yesterday-ish"], "'yesterday-ish' is not a time"),
        (["--test-fraction", "1.5"], "test fraction 1.5 must be between 0 and 1"),
    ],
)
def test_bad_split_options_are_refused_before_the_engine(
    tmp_path: Path, command: str, args: list[str], message: str
) -> None:
    result = run(tmp_path, command, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


def test_test_file_options_belong_together(tmp_path: Path) -> None:
    held = tmp_path / "held.csv"
    held.write_text("user_id,product_id,type,timestamp\nu1,P1,click,2024-04-01T10:00:00Z\n")
    result = run(tmp_path, "evaluate", "--test-file", str(held), "--split", "user")
    assert result.exit_code == 2 and "--test-file chooses the test searches itself" in result.output
    result = run(tmp_path, "evaluate", "--test-set", "type=click")
    assert result.exit_code == 2 and "--test-map and --test-set describe a --test-file" in result.output
    result = run(tmp_path, "evaluate", "--test-file", str(held), "--test-map", "usr=visitor")
    assert result.exit_code != 0 and "usr" in result.output


def test_help_teaches_the_splits_and_the_ablation(tmp_path: Path) -> None:
    text = " ".join(run(tmp_path, "evaluate", "--help").output.split())
    for phrase in (
        "--split user --holdout N each user's last N searches with engagement",
        "--test-file FILE the searches of held-out events that were never ingested",
        "--freeze-stats / --live-stats",
        "--ablation",
        "fuserec model evaluate --test-file may.csv",
    ):
        assert phrase in text, phrase
    train = " ".join(run(tmp_path, "train", "--help").output.split())
    assert "--split [time|user]" in train and "--ablation" in train and "--test-file" not in train
