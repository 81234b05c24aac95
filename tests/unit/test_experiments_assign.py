"""Assignment: deterministic per user (across calls and processes), close to the configured shares, independent
between experiments; which experiment covers an index; what an impression under an experiment records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from scipy import stats

from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.assign import active_experiment, active_experiments, assign, bucket, impression_fields
from fuserec_os.experiments.config import Experiment, ExperimentsConfig

THREE_WAY = {
    "variants": {
        "control": {"share": 0.5, "engine": True},
        "v7": {"share": 0.3, "model_version": "v7"},
        "bold": {"share": 0.2, "blend": 0.9},
    }
}
HALVES = {"variants": {"control": {"share": 0.5, "engine": True}, "treatment": {"share": 0.5, "blend": 0.5}}}


def config(**experiments: dict[str, object]) -> ExperimentsConfig:
    return parse_ranking_config({"experiments": experiments}).experiments


def experiment(raw: dict[str, object], name: str = "exp") -> Experiment:
    return config(**{name: raw}).get(name)


def test_shares_hold_over_many_users_chi_square() -> None:
    exp = experiment(THREE_WAY)
    n = 30_000
    counts = Counter(a.variant.name for i in range(n) if (a := assign(exp, f"U{i:07d}")) and a.variant)
    observed = [counts["control"], counts["v7"], counts["bold"]]
    expected = [n * 0.5, n * 0.3, n * 0.2]
    chi2, p = stats.chisquare(observed, expected)
    assert sum(observed) == n
    assert p > 0.001, (observed, chi2)  # a hash that skews the split fails this
    assert all(abs(o - e) / e < 0.03 for o, e in zip(observed, expected, strict=True))


def test_the_check_above_can_fail() -> None:
    """A biased assignment (the first character of the id decides) is caught by the same chi-square test."""
    n = 30_000
    observed = Counter("control" if f"U{i:07d}"[-1] in "01234" else "other" for i in range(n))
    skewed = [observed["control"] + 600, observed["other"] - 600]
    assert stats.chisquare(skewed, [n / 2, n / 2]).pvalue < 0.001


def test_same_user_same_variant_every_call_and_session() -> None:
    exp = experiment(THREE_WAY)
    for i in range(200):
        first = assign(exp, f"user-{i}", "session-a")
        again = assign(exp, f"user-{i}", "session-b")
        assert first is not None and again is not None
        assert first.variant == again.variant and first.unit == "user" and first.unit_id == f"user-{i}"


def test_same_variant_in_another_process() -> None:
    """Two proxy replicas share nothing but the config: a fresh interpreter (another hash seed) agrees."""
    exp = experiment(THREE_WAY)
    users = [f"U{i}" for i in range(300)] + ["", "ünïcödé", "x" * 500]
    here = {u: (a.variant.name if (a := assign(exp, u, "s1")) and a.variant else None) for u in users}
    code = (
        "import json, sys\n"
        "from fuserec_os.config import parse_ranking_config\n"
        "from fuserec_os.experiments.assign import assign\n"
        "exp = parse_ranking_config({'experiments': {'exp': json.loads(sys.argv[1])}}).experiments.get('exp')\n"
        "users = json.loads(sys.argv[2])\n"
        "print(json.dumps({u: assign(exp, u, 's1').variant.name for u in users}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(THREE_WAY), json.dumps(users)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},  # str hashes differ from this process's
    )
    assert json.loads(out.stdout) == here


def test_users_without_an_id_are_assigned_by_session() -> None:
    exp = experiment(HALVES)
    a = assign(exp, None, "sess-1")
    assert a is not None and a.unit == "session" and a.unit_id == "sess-1"
    assert assign(exp, "", "sess-1") == a
    assert assign(exp, None, None) is None and assign(exp, "", "") is None
    # a session id equal to a user id is another key: not bound to that user's bucket
    assert bucket(exp.hash_salt, "s:u1") != bucket(exp.hash_salt, "u:u1")


def test_two_experiments_split_users_independently() -> None:
    """Different salts: knowing a user's variant in one experiment says nothing about the other."""
    a, b = experiment(HALVES, "first"), experiment({**HALVES, "indices": ["catalog"]}, "second")
    pairs = Counter()
    for i in range(20_000):
        va, vb = assign(a, f"U{i}"), assign(b, f"U{i}")
        assert va is not None and vb is not None and va.variant and vb.variant
        pairs[(va.variant.name, vb.variant.name)] += 1
    table = [[pairs[("control", "control")], pairs[("control", "treatment")]],
             [pairs[("treatment", "control")], pairs[("treatment", "treatment")]]]  # fmt: skip
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_bucket_is_uniform_and_in_range() -> None:
    values = [bucket("salt", f"u:{i}") for i in range(10_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert stats.kstest(values, "uniform").pvalue > 0.001


def test_active_experiment_for_an_index() -> None:
    cfg = config(
        shop={**HALVES, "indices": ["products"]},
        old={**HALVES, "indices": ["products"], "state": "stopped"},
        other={**HALVES, "indices": ["catalog"]},
    )
    found = active_experiment(cfg, "t1-products", prefix="t1-")
    assert found is not None and found.name == "shop"
    assert active_experiment(cfg, "products") is not None  # the logical name works too
    assert active_experiment(cfg, "t1-products", prefix="t1-", stopped={"shop"}) is None  # stopped in the cluster
    assert [e.name for e in active_experiments(cfg, "catalog")] == ["other"]
    assert active_experiments(cfg, "reviews") == ()


def test_impression_fields_ab_and_interleave() -> None:
    exp = experiment(HALVES)
    a = assign(exp, "u1")
    assert a is not None and a.variant is not None
    assert impression_fields(a) == {"experiment": "exp", "variant": a.variant.name}
    anon = assign(exp, None, "s9")
    assert anon is not None
    assert impression_fields(anon)["user_id"] == "s9" and impression_fields(anon)["session_id"] == "s9"
    il = experiment({"mode": "interleave", "variants": {"control": {"engine": True}, "mlp": {"blend": 1}}})
    ia = assign(il, "u1")
    assert ia is not None and ia.interleaved and ia.variant is None
    assert impression_fields(ia, ["control", "mlp", None]) == {"experiment": "exp", "teams": ["control", "mlp", ""]}
    with pytest.raises(ValueError, match="teams"):
        impression_fields(ia)
