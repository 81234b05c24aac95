"""The experiment report from frames: counts per variant, lifts (the z-test against a hand computation, the
bootstrap), the verdict in words, the guardrail, interleaving; and an A/A run through assignment, attribution
and the report."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.behaviour.events import events_frame
from fuserec_os.behaviour.search_log import impressions_frame
from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.assign import assign
from fuserec_os.experiments.config import Experiment
from fuserec_os.experiments.interleave import interleave_seed, team_draft
from fuserec_os.experiments.report import compute_report, guardrail_status
from fuserec_os.experiments.state import StopInfo

T0 = pd.Timestamp("2024-05-01T10:00:00Z")


def experiment(**overrides: Any) -> Experiment:
    raw: dict[str, Any] = {
        "variants": {"control": {"share": 0.5, "engine": True}, "treatment": {"share": 0.5, "model_version": "v2"}}
    }
    raw.update(overrides)
    return parse_ranking_config({"experiments": {"exp": raw}}).experiments.get("exp")


def table(rows: dict[str, tuple[int, int, int]], price: float | None = 10.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """variant -> (users, clicked users, buyers): one search per user; a buyer also clicked."""
    searches: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for variant, (users, clicked, buyers) in rows.items():
        for i in range(users):
            uid, rid = f"{variant}-u{i}", f"{variant}-r{i}"
            ts = T0 + pd.Timedelta(seconds=i)
            searches.append({"request_id": rid, "user_id": uid, "timestamp": ts.isoformat(), "product_ids": ["P1"],
                             "experiment": "exp", "variant": variant})  # fmt: skip
            if i < clicked:
                events.append({"event_id": f"c-{rid}", "user_id": uid, "type": "click", "product_id": "P1",
                               "timestamp": (ts + pd.Timedelta(seconds=5)).isoformat(), "request_id": rid})  # fmt: skip
            if i < buyers:
                events.append({"event_id": f"b-{rid}", "user_id": uid, "type": "purchase", "product_id": "P1",
                               "timestamp": (ts + pd.Timedelta(minutes=5)).isoformat(), "price": price})  # fmt: skip
    return impressions_frame(searches), events_frame(events)


def test_counts_rates_and_the_z_test_of_a_small_fixed_table() -> None:
    """Control: 1000 users, one search each, 300 clicked, 50 bought; treatment: 1000, 330 clicked, 70 bought.

    Conversion: 50/1000 vs 70/1000: the hand computation of tests/unit/test_experiment_stats.py:
    lift 40%, z-test p = 0.059686, log-ratio CI -1.56% to +99.10%. One search per user, so the bootstrap over
    users estimates the same interval (within bootstrap noise).
    """
    imps, events = table({"control": (1000, 300, 50), "treatment": (1000, 330, 70)})
    report = compute_report(experiment(), imps, events, replicates=2000, seed=1)
    control, treatment = report.variants
    assert (control.users, control.searches, control.clicked, control.purchased) == (1000, 1000, 300, 50)
    assert (treatment.users, treatment.searches, treatment.clicked, treatment.purchased) == (1000, 1000, 330, 70)
    assert treatment.metric("ctr") == 0.33 and treatment.metric("click_to_cart") == pytest.approx(70 / 330)
    assert treatment.metric("conversion") == 0.07 and treatment.metric("conversion_per_user") == 0.07
    assert treatment.metric("revenue_per_search") == pytest.approx(0.7) and treatment.revenue == 700.0
    conv = report.lift("conversion", "treatment")
    assert conv is not None and conv.z is not None
    assert conv.lift == pytest.approx(0.40)
    assert conv.z.p_value == pytest.approx(0.059686, abs=1e-6)
    assert conv.z.lift_ci == pytest.approx((-0.015576, 0.991012), abs=1e-6)
    assert conv.ci is not None and conv.ci == pytest.approx(conv.z.lift_ci, abs=0.06)
    assert conv.p_value is not None and abs(conv.p_value - 0.0597) < 0.02
    as_json = json.loads(json.dumps(report.as_dict(), default=str))
    assert as_json["lifts"][2]["z_test"]["p_value"] == pytest.approx(0.059686, abs=1e-6)
    assert as_json["variants"][1]["metrics"]["conversion"] == 0.07
    assert as_json["attribution"]["attributed"] == 300 + 50 + 330 + 70


def test_the_verdict_says_it_in_words() -> None:
    imps, events = table({"control": (4000, 1000, 200), "treatment": (4000, 1000, 300)})
    report = compute_report(experiment(), imps, events, replicates=1000)
    (line,) = report.verdict()
    x = report.lift("conversion", "treatment")
    assert x is not None and x.ci is not None and x.significant
    assert line.startswith("treatment converts 50.0% better than control, 95% CI ")
    assert line.endswith(", significant (p <= 0.001)")  # every one of the 1000 replicates above zero: a bound
    assert f"CI {x.ci[0] * 100:.1f}% to {x.ci[1] * 100:.1f}%" in line

    imps, events = table({"control": (500, 100, 20), "treatment": (500, 100, 21)})
    (line,) = compute_report(experiment(), imps, events, replicates=1000).verdict()
    assert line.startswith("no significant difference in conversion: treatment converts 5.0% better than control")
    assert line.endswith("keep collecting")

    imps, events = table({"control": (3000, 1000, 20), "treatment": (3000, 800, 10)})
    (line,) = compute_report(experiment(primary_metric="ctr"), imps, events, replicates=1000).verdict()
    assert line.startswith("treatment gets clicked 20.0% less often than control")


def test_not_enough_data() -> None:
    imps, events = table({"control": (50, 0, 0), "treatment": (0, 0, 0)})
    report = compute_report(experiment(), imps, events, replicates=200)
    assert report.verdict() == [
        "treatment: not enough data yet for conversion (it needs searches, and events under control)"
    ]
    assert report.variants[1].searches == 0 and report.lift("conversion", "treatment").ci is None  # type: ignore[union-attr]
    empty = compute_report(experiment(), *table({}), replicates=200)
    assert empty.first_search is None and all(v.users == 0 for v in empty.variants)


def test_unknown_variants_and_missing_prices_are_reported_not_dropped_silently() -> None:
    imps, events = table({"control": (100, 50, 10), "treatment": (100, 50, 10), "old-arm": (7, 0, 0)}, price=None)
    report = compute_report(experiment(), imps, events, replicates=200)
    assert any("old-arm (7)" in n for n in report.notes)
    assert any("20 attributed purchase(s) had no price" in n for n in report.notes)
    assert report.variants[0].metric("revenue_per_search") is None
    assert report.lift("revenue_per_search", "treatment").lift is None  # type: ignore[union-attr]


def test_a_sample_ratio_mismatch_and_users_in_two_variants_are_flagged() -> None:
    imps, events = table({"control": (1200, 100, 10), "treatment": (800, 100, 10)})
    report = compute_report(experiment(), imps, events, replicates=200)
    assert any(n.startswith("sample ratio mismatch: users split control 1200, treatment 800") for n in report.notes)
    imps, events = table({"control": (1000, 100, 10), "treatment": (1000, 100, 10)})
    assert not any("mismatch" in n for n in compute_report(experiment(), imps, events, replicates=200).notes)
    moved = imps.copy()
    moved.loc[moved["request_id"] == "treatment-r0", "user_id"] = "control-u0"  # one user seen in both
    notes = compute_report(experiment(), moved, events, replicates=200).notes
    assert any(n.startswith("1 user(s) were logged under more than one variant") for n in notes)


def test_guardrail_trips_when_the_treatment_is_significantly_worse() -> None:
    guard = {"metric": "ctr", "max_drop": 0.05, "min_searches": 500}
    imps, events = table({"control": (2000, 600, 0), "treatment": (2000, 400, 0)})
    report = compute_report(experiment(guardrail=guard), imps, events, replicates=1000)
    assert report.guardrail is not None and report.guardrail.status == "tripped"
    assert report.guardrail.variant == "treatment" and report.guardrail.lift == pytest.approx(-1 / 3)
    assert "treatment's ctr is 33.3% worse than control (99% CI" in report.guardrail.message

    # the same drop within max_drop: ok; too few searches: waiting; stopped: says so
    imps, events = table({"control": (2000, 600, 0), "treatment": (2000, 580, 0)})
    ok = compute_report(experiment(guardrail=guard), imps, events, replicates=1000).guardrail
    assert ok is not None and ok.status == "ok" and "ctr lift -3.3%" in ok.message
    imps, events = table({"control": (100, 60, 0), "treatment": (100, 10, 0)})
    waiting = compute_report(experiment(guardrail=guard), imps, events, replicates=1000).guardrail
    assert waiting is not None and waiting.status == "waiting" and "control 100, treatment 100" in waiting.message
    stop = StopInfo("exp", "2024-05-02T00:00:00Z", "cli", "enough")
    stopped = compute_report(experiment(guardrail=guard), imps, events, stop=stop, replicates=200)
    assert stopped.guardrail is not None and stopped.guardrail.status == "stopped"
    assert stopped.as_dict()["state"] == "stopped" and stopped.as_dict()["stop"]["reason"] == "enough"
    no_guard = compute_report(experiment(), imps, events, replicates=200)
    assert guardrail_status(no_guard.experiment, no_guard).status == "none"


def interleaved_log(n_users: int, treatment_share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users search once each; the click goes to the treatment's pick with probability ``treatment_share``."""
    rng = np.random.default_rng(seed)
    control_list = [f"C{i}" for i in range(6)]
    treatment_list = [f"T{i}" for i in range(6)]
    searches, events = [], []
    for i in range(n_users):
        rid, uid = f"r{i}", f"u{i}"
        mixed = team_draft(control_list, treatment_list, seed=interleave_seed("exp", rid))
        ts = T0 + pd.Timedelta(seconds=i)
        searches.append({"request_id": rid, "user_id": uid, "timestamp": ts.isoformat(),
                         "product_ids": list(mixed.product_ids), "experiment": "exp",
                         "teams": [t or "" for t in mixed.teams]})  # fmt: skip
        if rng.random() < 0.6:  # some searches get no click
            team = "treatment" if rng.random() < treatment_share else "control"
            pid = next(p for p, t in zip(mixed.product_ids, mixed.teams, strict=True) if t == team)
            events.append({"event_id": f"c{i}", "user_id": uid, "type": "click", "product_id": pid,
                           "timestamp": (ts + pd.Timedelta(seconds=3)).isoformat(), "request_id": rid})  # fmt: skip
    return impressions_frame(searches), events_frame(events)


def test_interleaving_report() -> None:
    il = experiment(mode="interleave", variants={"control": {"engine": True}, "treatment": {"model_version": "active"}})
    imps, events = interleaved_log(3000, 0.6, seed=1)
    report = compute_report(il, imps, events, replicates=1000)
    s = report.interleave
    assert s is not None and s.searches == 3000 and s.wins + s.losses == s.searches_with_click
    assert s.ties == 0 and s.win_rate == pytest.approx(0.6, abs=0.03)
    assert s.significant and s.sign_test_p is not None and s.sign_test_p < 0.001
    (line,) = report.verdict()
    assert line.startswith(f"treatment wins {s.win_rate * 100:.1f}% of the interleaved searches with a preference")
    assert line.endswith("users prefer treatment")
    assert report.as_dict()["interleave"]["wins"] == s.wins and report.variants == []

    imps, events = interleaved_log(400, 0.5, seed=2)
    (line,) = compute_report(il, imps, events, replicates=1000).verdict()
    assert line.startswith("no significant preference")


def test_a_a_through_assignment_attribution_and_the_report() -> None:
    """Both variants serve the same thing to shoppers who behave the same way: across seeds the report calls a
    significant conversion difference rarely (each seed a fresh population and salt; expected 1 in 20)."""
    significant = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        exp = experiment(salt=f"aa-{seed}")
        searches, events = [], []
        for u in range(600):
            uid = f"U{u}"
            a = assign(exp, uid)
            assert a is not None and a.variant is not None
            propensity = rng.beta(0.6, 6.0)
            for s in range(int(rng.integers(1, 6))):
                rid = f"{uid}-{s}"
                ts = T0 + pd.Timedelta(minutes=int(rng.integers(0, 7 * 24 * 60)))
                shown = [f"P{int(p)}" for p in rng.choice(50, 5, replace=False)]
                searches.append({"request_id": rid, "user_id": uid, "timestamp": ts.isoformat(),
                                 "product_ids": shown, "experiment": "exp", "variant": a.variant.name})  # fmt: skip
                if rng.random() < propensity:
                    later = (ts + pd.Timedelta(minutes=9)).isoformat()
                    events.append({"event_id": f"b{rid}", "user_id": uid, "type": "purchase", "price": 12.0,
                                   "product_id": shown[0], "timestamp": later})  # fmt: skip
        report = compute_report(exp, impressions_frame(searches), events_frame(events), replicates=400, seed=seed)
        x = report.lift("conversion", "treatment")
        assert x is not None and x.ci is not None
        significant += x.significant
    assert significant <= 2, significant


def test_searches_that_found_nothing_count_in_their_variant() -> None:
    """Issue 12: the treatment finds nothing for a quarter of its searches. Those searches are in the log (an
    empty page) and count in its searches: its CTR and conversion per search fall, as the shoppers saw it."""
    from fuserec_os.behaviour.search_log import normalize_impression

    imps, events = table({"control": (400, 120, 40), "treatment": (400, 120, 40)})
    empty = []
    for i in range(100):  # 100 of the treatment users search once more and find nothing
        row = {"request_id": f"treatment-empty{i}", "user_id": f"treatment-u{i}", "product_ids": [],
               "timestamp": (T0 + pd.Timedelta(minutes=30, seconds=i)).isoformat(), "experiment": "exp",
               "variant": "treatment"}  # fmt: skip
        doc, reasons = normalize_impression(row)  # what the proxy's log writer stores
        assert doc is not None and doc["n_shown"] == 0, reasons
        empty.append(doc)
    both = impressions_frame([*imps.to_dict("records"), *empty])
    report = compute_report(experiment(), both, events, replicates=300)
    control, treatment = report.variants
    assert (control.searches, treatment.searches) == (400, 500) and treatment.users == 400
    assert (treatment.clicked, treatment.purchased) == (120, 40)
    assert treatment.metric("ctr") == pytest.approx(120 / 500) and control.metric("ctr") == pytest.approx(0.3)
    assert treatment.metric("conversion") == pytest.approx(40 / 500)
    assert treatment.metric("conversion_per_user") == control.metric("conversion_per_user") == 0.1
    assert treatment.metric("revenue_per_search") == pytest.approx(400 / 500)
    lift = report.lift("conversion", "treatment")
    assert lift is not None and lift.lift == pytest.approx((40 / 500) / (40 / 400) - 1)


def test_an_interleaved_search_that_found_nothing_is_a_search_without_preference() -> None:
    il = experiment(mode="interleave", variants={"control": {"engine": True}, "treatment": {"model_version": "active"}})
    imps, events = interleaved_log(200, 0.6, seed=3)
    empty = {"request_id": "nothing", "user_id": "u0", "timestamp": T0.isoformat(), "product_ids": [],
             "experiment": "exp", "teams": []}  # fmt: skip
    without_teams = {**empty, "request_id": "no-teams", "product_ids": ["C1"], "teams": None}
    both = impressions_frame([*imps.to_dict("records"), empty, without_teams])
    report = compute_report(il, both, events, replicates=200)
    base = compute_report(il, imps, events, replicates=200)
    assert report.interleave is not None and base.interleave is not None
    assert report.interleave.searches == base.interleave.searches + 1  # the empty one, not the one without teams
    assert (report.interleave.wins, report.interleave.losses) == (base.interleave.wins, base.interleave.losses)
    assert report.notes == ["1 search(es) of this experiment were logged without teams: left out"]
