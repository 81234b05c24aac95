"""The CLI through click's CliRunner against the test engine: index lifecycle, generate, demo, config, help."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.settings import Settings

from .conftest import Cli
from .readable import assert_readable

ISO_CREATED = re.compile(r"created \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_index_create_status_migrate_prune(cli: Cli, client: OpenSearch, alias: str, tmp_path: Path) -> None:
    created = json.loads(cli("index", "create", "--json").stdout)
    assert created["created"] and created["alias"] == alias
    again = json.loads(cli("index", "create", "--json").stdout)
    assert not again["created"] and again["index"] == created["index"]

    rows = [{"product_id": f"P{i}", "title": f"Thing {i}"} for i in range(7)]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("ingest", "products", str(src), "--no-progress")

    refused = cli("index", "migrate", ok=False)
    assert refused.exit_code == 6 and "already at mapping version" in refused.stderr
    migrated = json.loads(cli("index", "migrate", "--force", "--json").stdout)
    assert migrated["old_docs"] == migrated["new_docs"] == 7

    status = json.loads(cli("index", "status", "--json").stdout)
    assert status["live"] == [migrated["new_index"]]
    assert [i["name"] for i in status["indices"]] == [created["index"], migrated["new_index"]]
    table = cli("index", "status").stdout
    assert f"alias {alias} -> {migrated['new_index']}" in table and f"* {migrated['new_index']}" in table
    indices = [line for line in table.splitlines() if "docs" in line]
    assert len(indices) == 2 and all(ISO_CREATED.search(line) for line in indices), table
    assert_readable(table)

    pruned = json.loads(cli("index", "prune", "--keep", "1", "--json").stdout)
    assert pruned["deleted"] == [created["index"]]
    assert client.count(index=alias)["count"] == 7


def test_bad_mapping_file_is_one_clear_error(cli: Cli, tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    (mappings / "products.json").write_text('{"version": 1, "mappings": ')
    cli.env["FUSEREC_MAPPINGS_DIR"] = str(mappings)
    res = cli("index", "create", ok=False)
    assert res.exit_code == 5
    assert "products.json: not valid JSON" in res.stderr and "Traceback" not in res.stderr


def test_unreachable_cluster_is_one_clear_error(cli: Cli) -> None:
    cli.env["FUSEREC_OPENSEARCH_URL"] = "http://127.0.0.1:9"
    cli.env["FUSEREC_OPENSEARCH_RETRIES"] = "0"
    res = cli("search", "shoes", ok=False)
    assert res.exit_code == 3
    assert "http://127.0.0.1:9" in res.stderr and "connection refused" in res.stderr
    assert "Traceback" not in res.stderr


def test_generate_catalog_is_seeded(cli: Cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    cli("generate", "catalog", "--n", "50", "--seed", "3", "-o", str(a), "--latent", str(tmp_path / "l.jsonl"))
    cli("generate", "catalog", "--n", "50", "--seed", "3", "-o", str(b))
    assert a.read_bytes() == b.read_bytes()
    assert len(pd.read_csv(a)) == 50
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == 50
    bad = cli("generate", "catalog", "--n", "5", "-o", str(tmp_path / "x.txt"), ok=False)
    assert bad.exit_code == 2 and ".jsonl" in bad.stderr


def test_demo_runs_end_to_end(cli: Cli, client: OpenSearch, alias: str, settings: Settings) -> None:
    out = cli("demo", "--n", "400", "--users", "150", "--days", "7").stdout
    assert "indexed 400, rejected 3" in out
    assert "rejected row 401 (BAD-1): title" in out
    assert out.count("match(es)") == 5 and "facets:" in out
    assert client.count(index=alias)["count"] == 400
    assert "BM25 recall@100" in out and "== 11. build user profiles" in out
    events = client.count(index=settings.alias("events"))["count"]
    profiles = client.count(index=settings.alias("profiles"))["count"]
    assert events > 0 and 0 < profiles <= 150
    built = re.search(r"^ +(\d+) events -> (\d+) profiles", out, re.M)
    sent = re.search(r"searches through the proxy, ([\d,]+) events sent back \(0 refused\)", out)
    assert built and sent, out
    # the history's events, then the A/B step's sent back through the proxy (live updates may add profiles)
    assert events == int(built.group(1)) + int(sent.group(1).replace(",", ""))
    assert 0 < int(built.group(2)) <= profiles
    # the last step: the proxy, one query, two shoppers, an unchanged opensearch-py client
    step = out[out.index("== 15. the query proxy") :]
    users = re.findall(r"^ {5}(U\d+) buys (.+?): \d+% of their brand weight", step, re.M)
    assert len(users) == 2 and users[0][1] != users[1][1], step
    header = next(line for line in step.splitlines() if "engine order (no user id)" in line)
    assert users[0][0] in header and users[1][0] in header
    rows = [line for line in step.splitlines() if re.match(r"^ {1,2}\d+ \S", line)]
    assert len(rows) == 10, step
    columns = [[line[4:52].strip(), line[54:102].strip()] for line in rows]  # one shopper's column each
    # different lists, unless the model's gate keeps engine order for such shoppers on this small shop (and says so)
    gated = {u for u, _ in users if f"the model's blend gate keeps engine order for {u} " in step}
    assert gated or [c[0] for c in columns] != [c[1] for c in columns], "the two shoppers got the same list"
    assert all(f"personalized for {u}: reranked, model v1" in step for u, _ in users)
    for u, _ in users:  # a gated shopper's page is the engine's; the other's moves are explained in words
        if u in gated:
            assert f"{u}: nothing moved up (the page is the engine's order)" in step, step
        else:
            assert f"why {u}'s list differs" in step, step
    if len(gated) < len(users):
        assert re.search(r"^ {9}\S.* [+-]\d\.\d\d", step, re.M), "no explanation line"  # "brand affinity: X +0.31"
    said = re.search(r"the proxy logged (\d+) personalized searches", step)
    logged = int(said.group(1)) if said else -1
    assert logged == 2
    assert "== 16. tune retrieval on the search log" in out and "current best_fields" in out
    # the search log is stored, not a file (the A/B step's searches carry their experiment)
    outside = {"query": {"bool": {"must_not": {"exists": {"field": "experiment"}}}}}
    searches = client.count(index=settings.alias("searches"), body=outside)["count"]
    assert searches > logged and f"with {searches - logged} logged searches ->" in out
    # the last step: a short A/B test through the proxy, then its report
    ab = out[out.index("== 17. a short A/B test: 150 of the simulated shoppers") :]  # the demo's own, no new ones
    assert re.search(r"[\d,]+ searches through the proxy", ab) and "lift over control" in ab, ab
    assert re.search(r"treatment: conversion \(primary\) +[+-]\d", ab) and "verdict:" in ab, ab
    in_experiment = {"query": {"term": {"experiment": "sim-mlp-vs-engine"}}}
    assert client.count(index=settings.alias("searches"), body=in_experiment)["count"] > 0
    # output a person reads: no Python reprs, times as ISO 8601 UTC
    for raw in ("{'", "['", "None", "True", "False", "+00:00"):
        assert raw not in out, f"{raw!r} in the demo's output"


def test_config_shows_and_validates(cli: Cli, tmp_path: Path) -> None:
    shown = json.loads(cli("config", "--json").stdout)
    assert shown["in_use"]["engine"] == "cluster" and shown["in_use"]["products_alias"].endswith("products")
    assert shown["settings"]["FUSEREC_OPENSEARCH_URL"]["source"] == "env"
    sections = {"search", "events", "profiles", "features", "model", "rerank", "rules", "experiments"}
    assert set(shown["ranking"]["sections"]) == sections
    assert cli("config").stdout.splitlines()[-1] == "configuration is valid"
    cfg = tmp_path / "ranking.yaml"
    cfg.write_text("search:\n  feilds: {title: 2}\n")
    cli.env["FUSEREC_CONFIG"] = str(cfg)
    bad = cli("config", ok=False)
    assert bad.exit_code == 2 and "feilds" in bad.stderr


def test_every_command_has_help(cli: Cli) -> None:
    for args in (
        [],
        ["engine"],
        ["engine", "start"],
        ["engine", "stop"],
        ["engine", "status"],
        ["index"],
        ["index", "create"],
        ["index", "migrate"],
        ["index", "status"],
        ["index", "prune"],
        ["ingest"],
        ["ingest", "products"],
        ["ingest", "impressions"],
        ["search"],
        ["search", "tune"],
        ["generate"],
        ["generate", "catalog"],
        ["demo"],
        ["config"],
    ):
        out = cli(*args, "--help").stdout
        assert "Usage: fuserec" in out and len(out.splitlines()) > 4, args


def test_generate_events_against_the_indexed_catalog(cli: Cli, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.jsonl"
    cli("generate", "catalog", "--n", "300", "--seed", "2", "-o", str(catalog))
    assert (tmp_path / "catalog.latent.jsonl").exists()
    cli.env["FUSEREC_STATE_DIR"] = str(tmp_path / "state")  # a state folder without a demo catalog
    no_catalog = cli("generate", "events", "-o", str(tmp_path / "e.jsonl"), ok=False)
    assert no_catalog.exit_code == 2 and "--catalog" in no_catalog.stderr  # no demo catalog to fall back on
    refused = cli(
        "generate", "events", "--catalog", str(catalog), "--users", "20", "-o", str(tmp_path / "e.jsonl"), ok=False
    )
    assert refused.exit_code == 6 and "ingest products" in refused.stderr  # nothing indexed yet
    cli("ingest", "products", str(catalog), "--no-progress")
    out = tmp_path / "events.jsonl"
    res = json.loads(
        cli(
            "generate",
            "events",
            "--catalog",
            str(catalog),
            "--users",
            "60",
            "--days",
            "5",
            "--seed",
            "4",
            "-o",
            str(out),
            "--json",
        ).stdout
    )
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == res["stats"]["events"] > 0
    assert 0 < res["stats"]["bm25_recall"]["clicks"] <= 1
    assert (tmp_path / "events.impressions.jsonl").exists() and (tmp_path / "events.truth.jsonl").exists()
    assert all("affinity" not in json.dumps(e) for e in events[:50])  # the hidden truth stays out of the log
    stored = json.loads(cli("ingest", "events", str(out), "--no-progress", "--json").stdout)
    assert stored["stored"] == len(events) and stored["rejected"] == 0
