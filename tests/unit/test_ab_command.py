"""``fuserec ab`` without an engine: configuration errors name the fix, nothing is contacted when there is
nothing to do, and the text report and the SVG chart show what the report holds (the engine-backed commands
run in tests/integration/test_experiments.py)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from fuserec_os.behaviour.events import events_frame
from fuserec_os.behaviour.search_log import impressions_frame
from fuserec_os.commands.ab import render_report
from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.chart import lift_chart_svg
from fuserec_os.experiments.report import compute_report

DUMMY_URL = "http://127.0.0.1:9"  # nothing listens: a command that contacts the engine fails loudly
EXPERIMENTS = {
    "mlp-vs-engine": {
        "variants": {"control": {"share": 0.5, "engine": True}, "treatment": {"share": 0.5, "model_version": "v2"}},
        "guardrail": {"metric": "ctr", "max_drop": 0.05},
    }
}


def run(tmp_path: Path, *args: str, experiments: object = None) -> Result:
    from fuserec_os.cli import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FUSEREC_")}
    env.update({"FUSEREC_OPENSEARCH_URL": DUMMY_URL, "FUSEREC_STATE_DIR": str(tmp_path / "state")})
    if experiments is not None:
        cfg = tmp_path / "ranking.yaml"
        cfg.write_text(yaml.safe_dump({"version": 1, "experiments": experiments}))
        env["FUSEREC_CONFIG"] = str(cfg)
    return CliRunner().invoke(cli, ["--env-file", str(tmp_path / "none.env"), "ab", *args], env=env)


def test_nothing_configured_contacts_nothing(tmp_path: Path) -> None:
    listed = run(tmp_path, "list")
    assert listed.exit_code == 0 and "no experiments configured in built-in defaults" in listed.output
    assert run(tmp_path, "list", "--json").output.strip() == "[]"
    checked = run(tmp_path, "check")
    assert checked.exit_code == 0 and "no running experiment has a guardrail" in checked.output


def test_an_unknown_experiment_names_the_configured_ones(tmp_path: Path) -> None:
    for command in ("report", "stop"):
        result = run(tmp_path, command, "mlp-vs-engin", experiments=EXPERIMENTS)
        assert result.exit_code == 2
        assert "no experiment 'mlp-vs-engin' in the ranking config (configured: mlp-vs-engine)" in result.stderr


def test_an_invalid_experiments_section_names_the_key(tmp_path: Path) -> None:
    bad = {"e": {"variants": {"control": {"share": 0.7, "engine": True}, "t": {"share": 0.5, "blend": 0.5}}}}
    result = run(tmp_path, "list", experiments=bad)
    assert result.exit_code == 2 and "experiments.e.variants: the shares must sum to 1" in result.stderr


def test_the_chart_must_be_svg(tmp_path: Path) -> None:
    result = run(tmp_path, "report", "mlp-vs-engine", "--chart", str(tmp_path / "lifts.png"), experiments=EXPERIMENTS)
    assert result.exit_code == 2 and "the chart is written as SVG" in result.output
    assert not (tmp_path / "lifts.png").exists()


def test_the_engine_being_away_is_one_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path, "stop", "mlp-vs-engine", experiments=EXPERIMENTS)
    assert result.exit_code == 3 and result.stderr.startswith("error: ") and "Traceback" not in result.output


@pytest.fixture(scope="module")
def report() -> object:
    exp = parse_ranking_config({"experiments": EXPERIMENTS}).experiments.get("mlp-vs-engine")
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    searches, events = [], []
    for variant, buyers in (("control", 40), ("treatment", 80)):
        for i in range(1000):
            rid, uid, ts = f"{variant}{i}", f"{variant}-u{i}", (t0 + pd.Timedelta(seconds=i)).isoformat()
            searches.append({"request_id": rid, "user_id": uid, "timestamp": ts, "product_ids": ["P1", "P2"],
                             "experiment": "mlp-vs-engine", "variant": variant})  # fmt: skip
            if i < 300:
                events.append({"event_id": f"c{rid}", "user_id": uid, "type": "click", "product_id": "P2",
                               "timestamp": ts, "request_id": rid})  # fmt: skip
            if i < buyers:
                events.append({"event_id": f"b{rid}", "user_id": uid, "type": "purchase", "product_id": "P2",
                               "timestamp": ts, "price": 25.0})  # fmt: skip
    events.append({"event_id": "stray", "user_id": "nobody", "type": "purchase", "product_id": "P1",
                   "timestamp": t0.isoformat()})  # fmt: skip
    return compute_report(exp, impressions_frame(searches), events_frame(events), replicates=500)


def test_the_text_report(report: object) -> None:
    lines = render_report(report)  # type: ignore[arg-type]
    text = "\n".join(lines)
    assert lines[0] == "experiment mlp-vs-engine (ab, running) on products"
    assert "searches from 2024-05-01T00:00:00Z to 2024-05-01T00:16:39Z" in lines[1]
    header = next(line for line in lines if line.startswith("variant"))
    assert header.split() == ["variant", "serves", "share", "users", "searches", "CTR", "click", "to", "cart",
                              "conversion", "conversion/user", "revenue/search"]  # fmt: skip
    control = next(line for line in lines if line.startswith("control (control)"))
    assert control.split()[-5:] == ["30.00%", "13.33%", "4.00%", "4.00%", "1.00"]
    treatment = next(line for line in lines if line.startswith("treatment "))
    assert "model v2" in treatment and treatment.split()[-3:] == ["8.00%", "8.00%", "2.00"]
    conv = next(line for line in lines if line.startswith("treatment: conversion (primary)"))
    assert conv.split()[3:] == ["+100.0%", conv.split()[4], "to", conv.split()[6], "<=0.002", "*"]  # 500 replicates
    assert "verdict: treatment converts 100.0% better than control, 95% CI " in text
    assert text.count("significant (p <= 0.002)") == 1
    assert "mlp-vs-engine: guardrail ok: treatment's ctr lift 0.0%, 99% CI " in text
    assert (
        "attribution: 720 events attributed (600 by request id, 120 by user, product and time); "
        "not attributed: user not in experiment 1"
    ) in text


def test_the_chart_is_valid_svg_with_one_row_per_lift(report: object) -> None:
    svg = lift_chart_svg(report)  # type: ignore[arg-type]
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text or "" for t in root.iter(f"{ns}text")]
    assert texts[0].startswith("mlp-vs-engine: lift over control with 95% intervals")
    assert "treatment: conversion *" in texts and "treatment: CTR" in texts
    assert len(list(root.iter(f"{ns}circle"))) == 5  # five metrics, one treatment
    greens = [c for c in root.iter(f"{ns}circle") if c.get("fill") == "#1a7f37"]
    assert len(greens) >= 3  # conversion, conversion per user, revenue per search: significantly up
