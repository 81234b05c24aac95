"""``fuserec simulate ab`` end to end on a real engine: a small simulated shop built with the CLI, a tiny brand
model promoted, then shoppers search through the proxy for a simulated day and the experiment is reported.

What is checked is plumbing, not a lift (a shop this small cannot show one): every search of the loop went
through the proxy and was logged under the experiment with its variant, events came back and were attributed
by request id, live updates moved the shoppers' profiles, and the report covers both variants.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.search_log import read_impressions
from fuserec_os.settings import Settings

from .conftest import Cli
from .proxy_helpers import brand_artifact, register

pytestmark = pytest.mark.integration


def test_simulated_shoppers_search_through_the_proxy_and_the_experiment_is_reported(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    world = tmp_path / "world"
    world.mkdir()
    catalog = world / "catalog.jsonl"
    cli("generate", "catalog", "--n", "300", "--seed", "5", "-o", str(catalog))
    cli("ingest", "products", str(catalog))
    events = world / "events.jsonl"
    cli("generate", "events", "--catalog", str(catalog), "--users", "60", "--days", "4", "--seed", "5",
        "-o", str(events))  # fmt: skip
    cli("ingest", "events", str(events))
    cli("ingest", "impressions", str(world / "events.impressions.jsonl"))
    cli("profiles", "build")
    register(client, settings.index_prefix, brand_artifact().to_bytes())
    before = client.count(index=settings.alias("events"))["count"]

    got = cli("simulate", "ab", "--users", "70", "--days", "1", "--world", str(world), "--replicates", "200", "--json")
    out = json.loads(got.stdout)
    loop, report = out["loop"], out["report"]
    assert out["shoppers"] == {"with_history": 60, "new": 10}  # more than the world holds: new shoppers join
    assert out["experiment"] == "sim-mlp-vs-engine" and loop["searches"] > 0 and loop["search_failures"] == {}
    last = max(json.loads(line)["timestamp"] for line in events.read_text().splitlines() if line.strip())
    assert loop["start"][:19] > last[:19]  # the loop continues after the history's last event
    client.indices.refresh(index=f"{settings.index_prefix}*")
    logged = read_impressions(client, settings.alias("searches"), experiment="sim-mlp-vs-engine")
    # every search of the loop went through the proxy and was logged, those that found nothing included
    assert len(logged) == loop["searches"] > 0
    assert int((logged["product_ids"].map(len) == 0).sum()) == loop["empty_searches"]
    assert set(logged["variant"]) == {"control", "treatment"}
    assert (logged["timestamp"].min().isoformat() >= loop["start"][:19]) and logged["product_ids"].map(len).max() > 0
    assert client.count(index=settings.alias("events"))["count"] == before + loop["events"] - loop["events_rejected"]
    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == {"control", "treatment"} and sum(v["searches"] for v in variants.values()) == len(logged)
    assert report["attribution"]["by_request_id"] > 0  # the shoppers' clicks name the proxy's request ids
    # the built-in experiment is reportable again afterwards, without adding it to the config
    again = json.loads(cli("ab", "report", "sim-mlp-vs-engine", "--json", "--replicates", "200").stdout)
    assert [v["searches"] for v in again["variants"]] == [v["searches"] for v in report["variants"]]
    # the terminal form of a second run, which continues where the first ended
    text = cli("simulate", "ab", "--users", "65", "--days", "0.5", "--world", str(world), "--replicates", "200").stdout
    assert text.startswith("closed loop: 60 of the world's shoppers and 5 new ones; ") and "verdict: " in text


def test_without_a_running_engine_it_says_to_start_one_and_build_the_shop_there(tmp_path: Path) -> None:
    """`fuserec demo` on a temporary engine keeps nothing; the loop must say so, not fail on a missing model."""
    import os

    from click.testing import CliRunner

    from fuserec_os.cli import cli

    world = tmp_path / "state" / "demo"
    world.mkdir(parents=True)
    for name in ("catalog.jsonl", "catalog.latent.jsonl", "events.truth.jsonl"):
        (world / name).write_text("")  # the demo leaves its world files behind even on a temporary engine
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    env["FUSEREC_STATE_DIR"] = str(tmp_path / "state")
    got = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "none.env"), "simulate", "ab", "--users", "5"], env=env)
    assert got.exit_code == 2, got.output
    assert "temporary" in got.output and "fuserec engine start" in got.output and "fuserec demo" in got.output
    assert "no promoted model" not in got.output
