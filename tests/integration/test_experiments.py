"""A/B experiments against a real engine: searches logged with their variant (search log v2) and events stored
through the same functions the proxy uses, then ``fuserec ab report|list|stop|check`` reading them back; the
stop is a state document every replica reads; a guardrail stops a treatment that hurts CTR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import record_events
from fuserec_os.behaviour.search_log import read_impressions, record_impressions
from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.assign import active_experiment, assign, impression_fields
from fuserec_os.experiments.config import Experiment
from fuserec_os.experiments.report import check_guardrails, experiment_report
from fuserec_os.experiments.state import stop_experiment, stopped_experiments
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.settings import Settings

from .conftest import REPO, Cli

T0 = pd.Timestamp("2024-05-06T08:00:00Z")
EXPERIMENTS: dict[str, Any] = {
    "mlp-vs-engine": {
        "indices": ["products"],
        "attribution_hours": 24,
        "variants": {
            "control": {"share": 0.5, "engine": True},
            "treatment": {"share": 0.5, "model_version": "active"},
        },
    },
    "il": {
        "mode": "interleave",
        "indices": ["reviews"],
        "variants": {"control": {"engine": True}, "mlp": {"model_version": "active"}},
    },
    "ctr-guard": {
        "indices": ["catalog"],
        "variants": {"control": {"share": 0.5, "engine": True}, "risky": {"share": 0.5, "blend": 1.0}},
        "guardrail": {"metric": "ctr", "max_drop": 0.1, "min_searches": 200},
    },
}


@pytest.fixture
def ranking_file(tmp_path: Path) -> Path:
    path = tmp_path / "ranking.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "experiments": EXPERIMENTS}, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def ab_cli(cli: Cli, ranking_file: Path) -> Cli:
    cli.env["FUSEREC_CONFIG"] = str(ranking_file)
    return cli


@pytest.fixture(scope="module")
def specs() -> tuple[MappingSpec, MappingSpec]:
    return (
        load_mapping(REPO / "mappings" / "searches.json", "searches"),
        load_mapping(REPO / "mappings" / "events.json", "events"),
    )


def simulate(
    exp: Experiment, users: int, *, click: dict[str, float], buy: dict[str, float], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Shoppers searching a few times each under ``exp``: rows as the proxy logs them, their events (clicks
    carry the request id, purchases do not), and the true counts per variant to check the report against."""
    rng = np.random.default_rng(seed)
    searches: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    truth: dict[str, dict[str, int]] = {
        v.name: {"users": 0, "searches": 0, "clicked": 0, "bought": 0} for v in exp.variants
    }
    for u in range(users):
        uid = f"U{u:05d}"
        a = assign(exp, uid, f"s-{uid}")
        assert a is not None and a.variant is not None
        v = a.variant.name
        truth[v]["users"] += 1
        for s in range(int(rng.integers(1, 4))):
            rid = f"{exp.name}-{uid}-{s}"
            ts = T0 + pd.Timedelta(hours=int(rng.integers(0, 72)), seconds=s)
            shown = [f"P{int(p):04d}" for p in rng.choice(200, 10, replace=False)]
            row = {"request_id": rid, "user_id": uid, "timestamp": ts.isoformat(), "product_ids": shown,
                   "query": "running shoes", **impression_fields(a)}  # fmt: skip
            searches.append(row)
            truth[v]["searches"] += 1
            if rng.random() < click[v]:
                truth[v]["clicked"] += 1
                pid = shown[int(rng.integers(0, 3))]
                events.append({"user_id": uid, "type": "click", "product_id": pid, "request_id": rid,
                               "timestamp": (ts + pd.Timedelta(seconds=20)).isoformat()})  # fmt: skip
                if rng.random() < buy[v]:
                    truth[v]["bought"] += 1
                    events.append({"user_id": uid, "type": "purchase", "product_id": pid, "price": 40.0,
                                   "timestamp": (ts + pd.Timedelta(minutes=15)).isoformat()})  # fmt: skip
    return searches, events, truth


def store(
    client: OpenSearch, settings: Settings, specs: tuple[MappingSpec, MappingSpec], searches: list, events: list
) -> None:
    logged = record_impressions(client, searches, specs[0], settings.alias("searches"), refresh=True)
    assert logged.rejected == [] and logged.accepted == len(searches)
    stored = record_events(client, events, specs[1], settings.alias("events"), refresh=True)
    assert stored.rejected == [] and stored.accepted == len(events)


def test_report_from_the_cluster(
    ab_cli: Cli, client: OpenSearch, settings: Settings, specs: tuple[MappingSpec, MappingSpec], tmp_path: Path
) -> None:
    exp = parse_ranking_config({"experiments": EXPERIMENTS}).experiments.get("mlp-vs-engine")
    searches, events, truth = simulate(
        exp, 600, click={"control": 0.3, "treatment": 0.3}, buy={"control": 0.15, "treatment": 0.45}, seed=1
    )
    # an event long after every search, and one of a shopper outside the experiment: counted, not attributed
    events.append({"user_id": "U00001", "type": "purchase", "product_id": "P0001", "timestamp": "2024-05-20T00:00:00Z"})
    events.append({"user_id": "stranger", "type": "click", "product_id": "P0002", "timestamp": T0.isoformat()})
    store(client, settings, specs, searches, events)

    stored = read_impressions(client, settings.alias("searches"), experiment="mlp-vs-engine")
    assert len(stored) == len(searches) and set(stored["variant"]) == {"control", "treatment"}

    chart = tmp_path / "lifts.svg"
    out = json.loads(ab_cli("ab", "report", "mlp-vs-engine", "--json", "--chart", str(chart)).stdout)
    by_name = {v["name"]: v for v in out["variants"]}
    for name, t in truth.items():
        v = by_name[name]
        assert (v["users"], v["searches"]) == (t["users"], t["searches"])
        assert (v["searches_with_click"], v["searches_with_purchase"]) == (t["clicked"], t["bought"])
        assert v["revenue"] == pytest.approx(40.0 * t["bought"])
    attribution = out["attribution"]
    clicks, buys = sum(t["clicked"] for t in truth.values()), sum(t["bought"] for t in truth.values())
    assert attribution["by_request_id"] == clicks and attribution["by_user_window"] == buys
    assert attribution["unattributed"]["user_not_in_experiment"] == 1
    assert out["state"] == "running" and out["guardrail"]["status"] == "none"
    conversion = next(x for x in out["lifts"] if x["metric"] == "conversion")
    assert conversion["significant"] and conversion["lift"] > 1.0  # 3x the purchases per click
    assert out["verdict"][0].startswith("treatment converts ") and "significant" in out["verdict"][0]
    assert chart.read_text().startswith("<svg")

    text = ab_cli("ab", "report", "mlp-vs-engine").stdout
    assert text.splitlines()[0] == "experiment mlp-vs-engine (ab, running) on products"
    assert "verdict: treatment converts" in text

    # the same report through the library, as the proxy's guardrail thread would compute it
    report = experiment_report(client, settings.index_prefix, exp, replicates=300)
    assert [v.searches for v in report.variants] == [truth["control"]["searches"], truth["treatment"]["searches"]]

    # one period: the searches made in it, with the clicks and purchases they earned (even after it ends)
    cut = T0 + pd.Timedelta(hours=36)
    in_period = [s for s in searches if pd.Timestamp(s["timestamp"]) >= cut]
    rids = {s["request_id"] for s in in_period}
    later = json.loads(
        ab_cli("ab", "report", "mlp-vs-engine", "--json", "--since", cut.isoformat(), "--replicates", "200").stdout
    )
    assert sum(v["searches"] for v in later["variants"]) == len(in_period) < len(searches)
    assert later["attribution"]["by_request_id"] == sum(1 for e in events if e.get("request_id") in rids)
    earlier = json.loads(
        ab_cli("ab", "report", "mlp-vs-engine", "--json", "--until", cut.isoformat(), "--replicates", "200").stdout
    )
    assert sum(v["searches"] for v in earlier["variants"]) == len(searches) - len(in_period)
    bad = ab_cli("ab", "report", "mlp-vs-engine", "--since", "yesterday-ish", ok=False)
    assert bad.exit_code == 2 and "--since" in bad.output and "ISO 8601" in bad.output
    backwards = ab_cli("ab", "report", "mlp-vs-engine", "--since", "2024-05-02", "--until", "2024-05-01", ok=False)
    assert backwards.exit_code == 2 and "--until" in backwards.output and "not after" in backwards.output


def test_stop_is_seen_by_every_replica(ab_cli: Cli, client: OpenSearch, settings: Settings) -> None:
    config = parse_ranking_config({"experiments": EXPERIMENTS}).experiments
    prefix = settings.index_prefix
    assert stopped_experiments(client, prefix, ["mlp-vs-engine", "ctr-guard"]) == {}  # no state index yet
    products = settings.alias("products")
    assert active_experiment(config, products, prefix=prefix) is not None

    listed = json.loads(ab_cli("ab", "list", "--json").stdout)
    assert [(e["name"], e["state"]) for e in listed] == [
        ("mlp-vs-engine", "running"),
        ("il", "running"),
        ("ctr-guard", "running"),
    ]

    first = json.loads(ab_cli("ab", "stop", "mlp-vs-engine", "--reason", "enough data", "--json").stdout)
    assert first["stopped_now"] and first["by"] == "cli" and first["reason"] == "enough data"
    again = ab_cli("ab", "stop", "mlp-vs-engine").stdout
    assert again.startswith("mlp-vs-engine was stopped already") and "enough data" in again

    # a proxy replica polling the cluster leaves it out from now on; the other experiment still runs
    stopped = stopped_experiments(client, prefix, list(config.experiments))
    assert set(stopped) == {"mlp-vs-engine"} and stopped["mlp-vs-engine"].reason == "enough data"
    assert active_experiment(config, products, prefix=prefix, stopped=stopped) is None
    assert active_experiment(config, settings.alias("catalog"), prefix=prefix, stopped=stopped) is not None

    listed = json.loads(ab_cli("ab", "list", "--json").stdout)
    assert listed[0]["state"] == "stopped" and listed[0]["stop"]["reason"] == "enough data"
    assert "(ab, stopped " in ab_cli("ab", "list").stdout
    report = json.loads(ab_cli("ab", "report", "mlp-vs-engine", "--json", "--replicates", "200").stdout)
    assert report["state"] == "stopped" and report["variants"][0]["searches"] == 0  # nothing logged: still a report


def test_a_guardrail_stops_a_treatment_that_hurts_ctr(
    ab_cli: Cli, client: OpenSearch, settings: Settings, specs: tuple[MappingSpec, MappingSpec]
) -> None:
    config = parse_ranking_config({"experiments": EXPERIMENTS}).experiments
    exp = config.get("ctr-guard")
    searches, events, _ = simulate(
        exp, 500, click={"control": 0.5, "risky": 0.2}, buy={"control": 0, "risky": 0}, seed=2
    )
    store(client, settings, specs, searches, events)

    dry = json.loads(ab_cli("ab", "check", "--dry-run", "--json").stdout)
    assert [(s["experiment"], s["status"], s["stopped_now"]) for s in dry] == [("ctr-guard", "tripped", False)]
    assert stopped_experiments(client, settings.index_prefix, ["ctr-guard"]) == {}

    statuses = check_guardrails(client, settings.index_prefix, config, replicates=300)
    assert [(s.experiment, s.status, s.stopped_now) for s in statuses] == [("ctr-guard", "tripped", True)]
    assert "risky's ctr is" in statuses[0].message and statuses[0].variant == "risky"
    info = stopped_experiments(client, settings.index_prefix, ["ctr-guard"])["ctr-guard"]
    assert info.by == "guardrail" and info.reason == statuses[0].message

    text = ab_cli("ab", "check").stdout
    assert text.startswith("ctr-guard: guardrail stopped: stopped already (risky's ctr is")
    _, made = stop_experiment(client, settings.index_prefix, "ctr-guard", by="cli", reason="again")
    assert not made  # the guardrail's stop is kept, with its reason


def test_an_interleaving_report_from_the_cluster(
    ab_cli: Cli, client: OpenSearch, settings: Settings, specs: tuple[MappingSpec, MappingSpec]
) -> None:
    """Teams stored per shown product come back in order; clicks go to the treatment's picks 65% of the time."""
    from fuserec_os.experiments.interleave import interleave_request

    exp = parse_ranking_config({"experiments": EXPERIMENTS}).experiments.get("il")
    rng = np.random.default_rng(3)
    control = [f"P{i:03d}" for i in range(20)]
    treatment = [f"P{i:03d}" for i in rng.permutation(40)[:20]]
    searches, events, wins, losses = [], [], 0, 0
    for u in range(400):
        uid, rid = f"U{u}", f"il-{u}"
        a = assign(exp, uid)
        assert a is not None and a.interleaved
        mixed = interleave_request(a, control, treatment, rid, size=10)
        ts = T0 + pd.Timedelta(minutes=u)
        searches.append({"request_id": rid, "user_id": uid, "timestamp": ts.isoformat(),
                         "product_ids": list(mixed.product_ids), **impression_fields(a, mixed.teams)})  # fmt: skip
        team = "mlp" if rng.random() < 0.65 else "control"
        pid = next(p for p, t in zip(mixed.product_ids, mixed.teams, strict=True) if t == team)
        wins, losses = wins + (team == "mlp"), losses + (team == "control")
        events.append({"user_id": uid, "type": "click", "product_id": pid, "request_id": rid,
                       "timestamp": (ts + pd.Timedelta(seconds=5)).isoformat()})  # fmt: skip
    store(client, settings, specs, searches, events)

    out = json.loads(ab_cli("ab", "report", "il", "--json").stdout)
    s = out["interleave"]
    assert (s["searches"], s["wins"], s["losses"], s["ties"]) == (400, wins, losses, 0)
    assert s["significant"] and out["verdict"][0].endswith("users prefer mlp")
    text = ab_cli("ab", "report", "il").stdout
    assert "mlp vs control" in text and f"{wins}" in text


def test_a_search_log_month_from_mapping_v1_gains_the_experiment_fields(
    client: OpenSearch, settings: Settings, specs: tuple[MappingSpec, MappingSpec]
) -> None:
    spec = specs[0]
    old = json.loads(json.dumps(spec.create_body()))
    for name in ("experiment", "variant", "teams"):
        del old["mappings"]["properties"][name]
    old["mappings"]["_meta"]["mapping_version"] = 1
    alias = settings.alias("searches")
    old["aliases"] = {alias: {}}
    client.indices.create(index=f"{alias}-2024.05", body=old)
    row = {"request_id": "r1", "user_id": "u1", "timestamp": "2024-05-03T10:00:00Z", "product_ids": ["P1", "P2"],
           "experiment": "il", "teams": ["control", ""]}  # fmt: skip
    assert record_impressions(client, [row], spec, alias, refresh=True).accepted == 1
    mapping = client.indices.get_mapping(index=f"{alias}-2024.05")[f"{alias}-2024.05"]["mappings"]
    assert {"experiment", "variant", "teams"} <= set(mapping["properties"])
    assert mapping["_meta"]["mapping_version"] == spec.version == 2
    frame = read_impressions(client, alias, experiment="il")
    assert frame["teams"].tolist() == [["control", ""]] and frame["variant"].tolist() == [None]
