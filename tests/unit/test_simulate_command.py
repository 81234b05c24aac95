"""``fuserec simulate ab`` without an engine: what it needs is checked first, with the fix in the message (the
closed loop itself runs in tests/integration/test_closed_loop_ab.py)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

DUMMY_URL = "http://127.0.0.1:9"  # nothing listens: a command that contacts the engine fails loudly


def run(tmp_path: Path, *args: str, config: object = None) -> Result:
    from fuserec_os.cli import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    env.update({"FUSEREC_OPENSEARCH_URL": DUMMY_URL, "FUSEREC_STATE_DIR": str(tmp_path / "state")})
    if config is not None:
        cfg = tmp_path / "ranking.yaml"
        cfg.write_text(yaml.safe_dump({"version": 1, **config}))  # type: ignore[dict-item]
        env["FUSEREC_CONFIG"] = str(cfg)
    return CliRunner().invoke(cli, ["--env-file", str(tmp_path / "none.env"), "simulate", *args], env=env)


def _world(tmp_path: Path) -> Path:
    world = tmp_path / "world"
    world.mkdir()
    for name in ("catalog.jsonl", "catalog.latent.jsonl", "events.truth.jsonl"):
        (world / name).write_text("")
    return world


def test_help_teaches_what_it_needs_and_an_example() -> None:
    from fuserec_os.cli import cli

    out = CliRunner().invoke(cli, ["simulate", "ab", "--help"]).output
    assert "--users" in out and "--days" in out and "fuserec demo" in out and "fuserec simulate ab --users" in out


def test_a_missing_world_names_the_files_and_the_fix_before_contacting_the_engine(tmp_path: Path) -> None:
    got = run(tmp_path, "ab", "--users", "5")
    assert got.exit_code != 0
    assert "catalog.jsonl" in got.output and "events.truth.jsonl" in got.output and "fuserec demo" in got.output
    assert "127.0.0.1:9" not in got.output  # refused before any connection attempt


def test_an_unknown_experiment_is_refused_with_the_configured_ones(tmp_path: Path) -> None:
    config = {
        "experiments": {
            "mlp-vs-engine": {
                "variants": {
                    "control": {"share": 0.5, "control": True, "engine": True},
                    "treatment": {"share": 0.5, "blend": 0.5},
                }
            }
        }
    }
    got = run(tmp_path, "ab", "--world", str(_world(tmp_path)), "--experiment", "nope", config=config)
    assert got.exit_code != 0 and "no experiment 'nope'" in got.output and "mlp-vs-engine" in got.output


def test_bad_numbers_are_refused_by_name(tmp_path: Path) -> None:
    assert "--users" in run(tmp_path, "ab", "--users", "0").output
    assert "--days" in run(tmp_path, "ab", "--days", "0").output
