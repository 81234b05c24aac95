"""Training on a small simulated log against a real engine: the model must beat engine order on held-out
searches (the simulator makes preferences matter, so this can fail for real), the registered artifact scores
exactly like the trained scorer, and the model commands manage versions."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import ingest_events
from fuserec_os.config import RankingConfig
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.learn.dataset import SplitSpec
from fuserec_os.learn.model_config import ModelConfig
from fuserec_os.learn.train_job import TrainOptions, TrainOutcome, run_training
from fuserec_os.profiles.jobs import Aliases
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.registry import ModelRegistry
from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.simulate.catalog import generate_catalog, write_catalog
from fuserec_os.simulate.oracle import click_oracle
from fuserec_os.simulate.shoppers import simulate, write_simulation

from .conftest import REPO, Cli
from .readable import assert_readable

SMALL = ModelConfig(hidden=(64, 32), dropout=0.1, epochs=10, patience=3, seed=3)


@pytest.fixture(scope="module")
def shop(client: OpenSearch, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A 600-product catalog and ~500 simulated shoppers over 3 weeks, stored under one module prefix."""
    tmp = tmp_path_factory.mktemp("shop")
    prefix = "mt-" + tmp.name.lower().replace("_", "")[-8:] + "-"
    aliases = Aliases.for_prefix(prefix)
    products = generate_catalog(600, seed=11)
    write_catalog(products, tmp / "catalog.jsonl", latent_path=tmp / "catalog.latent.jsonl")
    spec = load_mapping(REPO / "mappings" / "products.json", "products")
    assert ingest_products(client, tmp / "catalog.jsonl", spec, aliases.products, progress=False).ok
    result = simulate(products, EngineRetriever(client, aliases.products), users=500, days=21, seed=5)
    write_simulation(result, tmp / "events.jsonl", tmp / "events.impressions.jsonl", tmp / "events.truth.jsonl")
    events_spec: MappingSpec = load_mapping(REPO / "mappings" / "events.json", "events")
    rep = ingest_events(
        client,
        tmp / "events.jsonl",
        events_spec,
        aliases.events,
        cfg=RankingConfig().events,
        products_alias=aliases.products,
        progress=False,
    )
    assert rep.ok and rep.stored == len(result.events)
    yield {"tmp": tmp, "aliases": aliases, "prefix": prefix}
    for name in client.indices.get(index=f"{prefix}*"):
        client.indices.delete(index=name)


@pytest.fixture(scope="module")
def trained(client: OpenSearch, shop: dict[str, object]) -> TrainOutcome:
    tmp = shop["tmp"]
    assert isinstance(tmp, Path)
    options = TrainOptions(
        split=SplitSpec(test_fraction=0.3, valid_fraction=0.2),
        impressions=tmp / "events.impressions.jsonl",
        oracle=click_oracle(tmp / "events.truth.jsonl", tmp / "catalog.jsonl"),
        report_dir=tmp / "reports",
    )
    ranking = replace(RankingConfig(), model=SMALL)
    aliases = shop["aliases"]
    assert isinstance(aliases, Aliases)
    return run_training(client, aliases, ranking, options)


def test_model_beats_engine_order_on_held_out_searches(trained: TrainOutcome) -> None:
    r = trained.report
    ndcg = r.ndcg_name
    assert r.value("mlp", ndcg) > r.value("engine", ndcg) + 0.02
    assert r.value("oracle", ndcg) > r.value("engine", ndcg)
    # users without history must not lose to engine order (the gate can fall back to alpha 0)
    assert r.value("mlp", ndcg, segment=("user", "none")) >= r.value("engine", ndcg, segment=("user", "none")) - 0.02
    assert {"engine", "popularity", "query_popularity", "latent", "hgb", "mlp", "oracle"} <= set(r.methods)
    assert trained.html.read_text().count("<svg") >= 2 and json.loads(trained.json.read_text())["history"]


def test_registered_artifact_scores_like_the_trained_model(
    client: OpenSearch, shop: dict[str, object], trained: TrainOutcome
) -> None:
    assert trained.version is not None
    registry = ModelRegistry(client, str(shop["prefix"]))
    info, blob = registry.get(trained.version)
    artifact = ModelArtifact.from_bytes(blob)
    assert artifact.gate == trained.gate and info.metrics["test"]["mlp"]["ndcg@10"] == pytest.approx(
        trained.report.value("mlp", "ndcg@10")
    )
    X = np.random.default_rng(0).normal(size=(50, len(artifact.scorer.feature_names))).astype(np.float32)
    again = ModelArtifact.from_bytes(artifact.to_bytes())
    np.testing.assert_array_equal(again.scorer.predict(X), artifact.scorer.predict(X))
    assert set(artifact.product_vectors) and info.features == list(artifact.features)


def test_model_cli_list_show_promote_rollback_export_import(
    cli: Cli, shop: dict[str, object], trained: TrainOutcome, tmp_path: Path
) -> None:
    cli.env["FUSEREC_INDEX_PREFIX"] = str(shop["prefix"])
    listed = json.loads(cli("model", "list", "--json").stdout)
    assert trained.version in [v["version"] for v in listed]
    promoted = json.loads(cli("model", "promote", str(trained.version), "--json").stdout)
    assert promoted["changed"] and promoted["version"] == trained.version
    shown = cli("model", "show").stdout
    assert shown.startswith("version:") and re.search(rf"^version:\s+{trained.version}$", shown, flags=re.M)
    assert re.search(r"^status:\s+active", shown, flags=re.M) and re.search(r"^\s+mlp\s+0\.\d{4}", shown, flags=re.M)
    assert re.search(r"^gate:.*none \d\.\d+, light \d\.\d+.*heavy \d\.\d+", shown, flags=re.M), shown
    assert re.search(r"^searches:\s+train [\d,]+, valid [\d,]+, test [\d,]+$", shown, flags=re.M), shown
    assert_readable(shown)
    listed_text = cli("model", "list").stdout
    assert listed_text.split()[:3] == ["version", "status", "created"]
    assert_readable(listed_text)
    out = tmp_path / "model.json"
    cli("model", "export", str(trained.version), str(out))
    imported = cli("model", "import", str(out)).stdout
    new = imported.split(" as ")[1].split()[0]
    assert new != trained.version
    promoted_again = json.loads(cli("model", "promote", new, "--json").stdout)  # same metrics: not worse
    assert promoted_again["version"] == new
    back = json.loads(cli("model", "rollback", "--json").stdout)
    assert back["version"] == trained.version
    tmp = shop["tmp"]
    assert isinstance(tmp, Path)
    evaluated = json.loads(
        cli(
            "model",
            "evaluate",
            "--impressions",
            str(tmp / "events.impressions.jsonl"),
            "--test-fraction",
            "0.3",
            "--valid-fraction",
            "0.2",
            "--json",
        ).stdout
    )
    assert evaluated["version"] == trained.version  # the active one, on the same split as its training
    metrics = evaluated["test"]["overall"]["metrics"]
    assert metrics["mlp"]["ndcg@10"] == pytest.approx(trained.report.value("mlp", "ndcg@10"), abs=1e-6)


def test_train_prints_readable_progress_and_one_clean_loss_line(
    cli: Cli, shop: dict[str, object], tmp_path: Path
) -> None:
    tmp = shop["tmp"]
    assert isinstance(tmp, Path)
    config = tmp_path / "ranking.yaml"
    config.write_text("model:\n  hidden: [16]\n  epochs: 2\n  loss: auto\n")
    cli.env.update({"FUSEREC_INDEX_PREFIX": str(shop["prefix"]), "FUSEREC_CONFIG": str(config)})
    out = cli(
        "model",
        "train",
        "--no-register",
        "--impressions",
        str(tmp / "events.impressions.jsonl"),
        "--test-fraction",
        "0.3",
        "--report-dir",
        str(tmp_path / "reports"),
    ).stdout
    progress = out.split("\n\n")[0]  # the lines before the evaluation table
    assert_readable(progress)
    assert re.search(r"^dataset: .*searches: train [\d,]+, valid [\d,]+, test [\d,]+$", progress, flags=re.M), out
    loss = re.search(r"^loss: (\w+) \((.*)\)$", out, flags=re.M)
    assert loss, out
    kept, why = loss.groups()
    other = {"pointwise": "listwise", "listwise": "pointwise"}[kept]
    assert why.startswith("auto: valid NDCG@10 ") and kept not in why and why.count(other) == 1, loss.group(0)


def test_refresh_script_trains_and_promotes_only_if_better(
    client: OpenSearch, shop: dict[str, object], cli_env: dict[str, str], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    tmp = shop["tmp"]
    assert isinstance(tmp, Path)
    config = tmp_path / "ranking.yaml"
    config.write_text("model:\n  hidden: [32]\n  epochs: 4\n  dropout: 0.1\n")
    env = {
        **os.environ,
        **cli_env,
        "FUSEREC_INDEX_PREFIX": str(shop["prefix"]),
        "FUSEREC_CONFIG": str(config),
        "FUSEREC_BIN": str(Path(sys.executable).with_name("fuserec")),
        "REFRESH_LOG": str(tmp_path / "refresh.log"),
    }
    args = [
        "--impressions",
        str(tmp / "events.impressions.jsonl"),
        "--test-fraction",
        "0.3",
        "--report-dir",
        str(tmp_path / "reports"),
    ]
    run = subprocess.run([str(REPO / "scripts" / "refresh_model.sh"), *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    log = (tmp_path / "refresh.log").read_text()
    assert "profiles:" in log and "trained v" in log
    assert "promoted v" in log or "kept the active model" in log
    registry = ModelRegistry(client, str(shop["prefix"]))
    newest = registry.list()[0]
    previous_active = [v.version for v in registry.list() if v.version != newest.version and v.status != "candidate"]
    # the new version was compared with the model active at training time on the same test searches
    assert any(v in newest.metrics["test"] for v in previous_active)


def test_promote_scores_the_active_model_on_the_candidates_own_test_searches(
    client: OpenSearch, shop: dict[str, object], trained: TrainOutcome, cli: Cli, tmp_path: Path
) -> None:
    """A candidate whose metrics hold no score of the active model (trained before that model became active, or
    imported): 'model promote' scores the active version on the candidate's own test searches, and never
    compares numbers from two different test sets."""
    tmp, aliases, prefix = shop["tmp"], shop["aliases"], str(shop["prefix"])
    assert isinstance(tmp, Path) and isinstance(aliases, Aliases) and trained.version
    impressions = tmp / "events.impressions.jsonl"
    registry = ModelRegistry(client, prefix)
    if registry.active_version() is None:  # this test alone: make one active
        registry.promote(trained.version, force=True)
    active = registry.active_version()
    assert active is not None
    tiny = replace(RankingConfig(), model=ModelConfig(hidden=(16,), epochs=2, patience=2, seed=3))
    split = SplitSpec(test_fraction=0.2, valid_fraction=0.2)  # a later, shorter test period than the others'
    newer = run_training(
        client, aliases, tiny, TrainOptions(split=split, impressions=impressions, report_dir=tmp_path / "reports")
    )
    assert newer.version
    info, blob = registry.get(newer.version)
    held = info.training["test_set"]
    assert held["searches"] == newer.dataset["searches"]["test"] and len(held["digest"]) == 64
    assert held["source"] == f"impressions file {impressions.name}" and held["first"] == info.training["test_from"]
    at_training = info.metrics["test"][active]["ndcg@10"]  # the active model on these searches, at training
    # the same model without that record: as if it was trained before the active model was promoted
    meta = info.meta()
    del meta["metrics"]["test"][active]
    candidate = registry.save(blob, meta)

    cli.env["FUSEREC_INDEX_PREFIX"] = prefix
    # the stored search log is not what the candidate was tested on (it read an impressions file): say what to pass
    refused = cli("model", "promote", candidate, ok=False)
    assert refused.exit_code == 9, refused.stderr
    assert "different test set" in refused.stderr and f"--impressions {impressions.name}" in refused.stderr
    assert registry.active_version() == active

    res = cli("model", "promote", candidate, "--impressions", str(impressions), "--json", ok=False)
    assert res.exit_code in (0, 9), res.stderr
    reason = json.loads(res.stdout)["reason"] if res.exit_code == 0 else res.stderr
    n = newer.dataset["searches"]["test"]
    assert f"ndcg@10 on {candidate}'s {n:,} test searches (" in reason
    assert f"active model {active} {at_training:.4f}" in reason and "on the same searches, scored now" in reason
    assert_readable(reason)


# --------------------------------------------------------------------------------------------------------------
# honest evaluation: a user split, frozen statistics, held-out events from a file, the ablation


def test_user_split_tests_each_users_last_search_and_frozen_statistics_change_only_what_reads_them(
    cli: Cli, shop: dict[str, object], trained: TrainOutcome
) -> None:
    tmp = shop["tmp"]
    assert isinstance(tmp, Path) and trained.version
    cli.env["FUSEREC_INDEX_PREFIX"] = str(shop["prefix"])
    common = ["model", "evaluate", trained.version, "--impressions", str(tmp / "events.impressions.jsonl"), "--json"]
    user = json.loads(cli(*common, "--split", "user", "--holdout", "1").stdout)
    assert user["split"] == {"kind": "user", "holdout": 1, "freeze_stats": True, "valid_fraction": 0.15}
    searches = user["dataset"]["searches"]
    users = {str(e["user_id"]) for e in _engaged_searches(tmp).values()}
    assert searches["test"] == len(users)  # one per user with engagement: their last
    assert searches["train"] + searches["valid"] + searches["test"] == len(_engaged_searches(tmp))

    frozen = json.loads(cli(*common, "--test-fraction", "0.3").stdout)
    live = json.loads(cli(*common, "--test-fraction", "0.3", "--live-stats").stdout)
    assert frozen["split"]["freeze_stats"] is True and live["split"]["freeze_stats"] is False
    f, v = frozen["test"]["overall"], live["test"]["overall"]
    assert f["n_searches"] == v["n_searches"]
    assert f["metrics"]["engine"] == v["metrics"]["engine"]  # engine order reads no statistics
    # the test period's earlier engagement reaches query-popularity only when the statistics are live
    assert f["metrics"]["query_popularity"]["ndcg@10"] != v["metrics"]["query_popularity"]["ndcg@10"]
    # the training run itself froze them (the default), and recorded how its test searches were chosen
    assert trained.split["freeze_stats"] is True and trained.split["kind"] == "time"


def _engaged_searches(tmp: Path) -> dict[str, dict[str, object]]:
    """request id -> the first engaged event of each search with engagement (the simulator logs request ids)."""
    out: dict[str, dict[str, object]] = {}
    for line in (tmp / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["request_id"] and e["query"] and e["type"] in ("click", "add_to_cart", "purchase"):
            out.setdefault(e["request_id"], e)
    return out


def _quiet_cut(tmp: Path) -> str:
    """A time after at least 20 minutes without any event or logged search, whose first logged search after it has
    engagement: events from it on form a test file equal to a time split at it (no search straddles it)."""
    import pandas as pd

    events = [json.loads(line) for line in (tmp / "events.jsonl").read_text().splitlines()]
    shown = [json.loads(line) for line in (tmp / "events.impressions.jsonl").read_text().splitlines()]
    engaged = set(_engaged_searches(tmp))
    moments = sorted(
        [(pd.Timestamp(e["timestamp"]), None) for e in events]
        + [(pd.Timestamp(s["timestamp"]), s["request_id"]) for s in shown]
    )
    start = moments[0][0] + pd.Timedelta(days=12)
    for (before, _), (after, rid) in itertools.pairwise(moments):
        if after > start and after - before >= pd.Timedelta(minutes=20) and rid in engaged:
            return str(after.isoformat())
    raise AssertionError("no quiet moment in the simulated log")


def test_a_test_file_of_events_never_ingested_is_tested_like_a_time_split_at_its_start(
    client: OpenSearch, cli: Cli, shop: dict[str, object], trained: TrainOutcome, tmp_path: Path
) -> None:
    """The same shop in another prefix holding only the events before a cut, the later ones in a file: evaluating
    the same model version on the file gives exactly the numbers of a time split at the cut on the full shop."""
    import pandas as pd

    tmp = shop["tmp"]
    assert isinstance(tmp, Path) and trained.version
    cut = _quiet_cut(tmp)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    lines = (tmp / "events.jsonl").read_text().splitlines()
    early = [line for line in lines if pd.Timestamp(json.loads(line)["timestamp"]) < pd.Timestamp(cut)]
    late = [line for line in lines if pd.Timestamp(json.loads(line)["timestamp"]) >= pd.Timestamp(cut)]
    before.write_text("\n".join(early) + "\n")
    after.write_text("\n".join(late) + "\n")

    prefix = str(shop["prefix"]).rstrip("-") + "f-"
    aliases = Aliases.for_prefix(prefix)
    try:
        spec = load_mapping(REPO / "mappings" / "products.json", "products")
        assert ingest_products(client, tmp / "catalog.jsonl", spec, aliases.products, progress=False).ok
        events_spec = load_mapping(REPO / "mappings" / "events.json", "events")
        rep = ingest_events(client, before, events_spec, aliases.events, cfg=RankingConfig().events, progress=False)
        assert rep.ok and rep.stored == len(early)
        info, blob = ModelRegistry(client, str(shop["prefix"])).get(trained.version)
        copied = ModelRegistry(client, prefix).save(blob, info.meta())

        impressions = ["--impressions", str(tmp / "events.impressions.jsonl"), "--json"]
        cli.env["FUSEREC_INDEX_PREFIX"] = prefix
        on_file = json.loads(cli("model", "evaluate", copied, "--test-file", str(after), *impressions).stdout)
        cli.env["FUSEREC_INDEX_PREFIX"] = str(shop["prefix"])
        at_cut = json.loads(cli("model", "evaluate", trained.version, "--test-from", cut, *impressions).stdout)
        assert on_file["split"] == {"kind": "file", "file": str(after), "freeze_stats": True}
        assert on_file["dataset"]["searches"] == at_cut["dataset"]["searches"]
        assert on_file["dataset"]["test_from"] == at_cut["dataset"]["test_from"] == pd.Timestamp(cut).isoformat()
        for method in ("engine", "query_popularity", "mlp", "hgb"):
            assert on_file["test"]["overall"]["metrics"][method]["ndcg@10"] == pytest.approx(
                at_cut["test"]["overall"]["metrics"][method]["ndcg@10"], abs=1e-9
            ), method
        # nothing of the file was stored
        assert client.count(index=aliases.events)["count"] == len(early)

        # a file with events already stored, and a file with a bad row: refused, saying why
        cli.env["FUSEREC_INDEX_PREFIX"] = prefix
        stored = cli("model", "evaluate", copied, "--test-file", str(before), *impressions, ok=False)
        assert stored.exit_code == 2 and "are already stored (e.g. event_id" in stored.stderr
        bad = tmp_path / "bad.jsonl"
        bad.write_text(late[0] + "\n" + late[1].replace('"timestamp": "', '"timestamp": "x') + "\n")
        refused = cli("model", "evaluate", copied, "--test-file", str(bad), *impressions, ok=False)
        assert refused.exit_code != 0 and "1 of 2 row(s) invalid, e.g. row 2: timestamp" in refused.stderr
    finally:
        for name in client.indices.get(index=f"{prefix}*"):
            client.indices.delete(index=name)


def test_train_with_ablation_prints_and_stores_one_retrained_row_per_scope(
    cli: Cli, shop: dict[str, object], tmp_path: Path
) -> None:
    tmp = shop["tmp"]
    assert isinstance(tmp, Path)
    config = tmp_path / "ranking.yaml"
    config.write_text("model:\n  hidden: [16]\n  epochs: 2\n  patience: 1\n")
    cli.env.update({"FUSEREC_INDEX_PREFIX": str(shop["prefix"]), "FUSEREC_CONFIG": str(config)})
    args = ["model", "train", "--no-register", "--impressions", str(tmp / "events.impressions.jsonl")]
    result = cli(*args, "--ablation", "--report-dir", str(tmp_path / "reports"))
    out = result.stdout
    assert "ablation: test ndcg@10 with each feature scope removed" in out
    for label in ("all features", "without user (user)", "without user and cross (no personalization)"):
        assert re.search(rf"^{re.escape(label)}\s+\d+\s+0\.\d{{4}}", out, flags=re.M), label
    assert "ablation: training 6 more models" in out and "ablation" in result.stderr  # the progress bar
    report = json.loads(next((tmp_path / "reports").glob("model-*.json")).read_text())
    rows = report["ablation"]["rows"]
    removed = [r["removed"] for r in rows]
    assert removed[0] == [] and ["cross", "user"] in removed and len(removed) == 7
    assert all(r["mlp"] is not None and r["hgb"] is not None for r in rows)
    assert "Ablation by feature scope" in next((tmp_path / "reports").glob("model-*.html")).read_text()
