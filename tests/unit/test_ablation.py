"""The ablation plumbing: which columns each variant drops, one retraining per row, the table and its JSON.

The trainer is a fake here (a scorer that sums the columns it is given), so the test checks what reaches it and
what comes back out; the real retraining is exercised by the integration test on a small shop.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from fuserec_os.features.spec import FeatureSet
from fuserec_os.learn.ablation import ablation_variants, drop_scopes, run_ablation, scope_of
from fuserec_os.learn.dataset import Dataset
from fuserec_os.learn.evaluate import EvalReport, evaluate
from fuserec_os.learn.model_config import ModelConfig
from fuserec_os.learn.report import render_html

NAMES = FeatureSet(("bm25", "q_click_rate", "rating", "user_history", "cat_affinity")).columns


def _dataset(n_searches: int = 12, per: int = 4, seed: int = 0) -> Dataset:
    """Searches whose engaged product has a high cat_affinity (so dropping the cross scope hurts)."""
    rng = np.random.default_rng(seed)
    n = n_searches * per
    X = rng.random((n, len(NAMES))).astype(np.float32)
    groups = np.repeat(np.arange(n_searches), per).astype(np.int32)
    labels = np.zeros(n, dtype=np.int8)
    best = np.arange(n_searches) * per + rng.integers(0, per, n_searches)
    labels[best] = 1
    X[best, NAMES.index("cat_affinity")] += 2.0
    searches = pd.DataFrame(
        {
            "search_id": np.arange(n_searches),
            "split": ["train"] * 6 + ["valid"] * 2 + ["test"] * 4,
            "user_segment": ["none", "heavy"] * (n_searches // 2),
        }
    )
    candidates = pd.DataFrame({"search_id": groups, "product_id": [f"P{i}" for i in range(n)]})
    return Dataset(X=X, names=NAMES, labels=labels, groups=groups, searches=searches, candidates=candidates)


def test_scopes_and_variants_follow_the_feature_registry() -> None:
    assert scope_of("cat_affinity") == "cross" and scope_of("cat_affinity__missing") == "cross"
    assert scope_of("not_a_feature") == "other"
    labels = [label for label, _ in ablation_variants(NAMES)]
    assert labels == [
        "without engine hit (query_item)",
        "without query engagement (query_item_engagement)",
        "without item (item)",
        "without user (user)",
        "without user x item (cross)",
        "without user and cross (no personalization)",
    ]
    # a scope without any column gets no row, and neither does the pair when one of it is missing
    assert [r for _, r in ablation_variants(("bm25", "user_history"))] == [
        frozenset({"query_item"}),
        frozenset({"user"}),
    ]


def test_drop_scopes_keeps_searches_and_only_the_other_columns() -> None:
    ds = _dataset()
    sub = drop_scopes(ds, frozenset({"user", "cross"}))
    assert sub.names == tuple(n for n in NAMES if not n.startswith(("user_history", "cat_affinity")))
    np.testing.assert_array_equal(sub.X, ds.X[:, [NAMES.index(n) for n in sub.names]])
    assert sub.labels is ds.labels and sub.searches is ds.searches and ds.X.shape[1] == len(NAMES)
    with pytest.raises(ValueError, match="leaves no feature"):
        drop_scopes(ds, frozenset({"query_item", "query_item_engagement", "item", "user", "cross"}))


def _fake_variant(seen: list[tuple[str, ...]]):  # type: ignore[no-untyped-def]
    """Evaluates the sum of the given columns as the 'mlp' (a stand-in for a retrained model)."""

    def run(ds: Dataset, cfg: ModelConfig) -> tuple[EvalReport, dict[str, float]]:
        seen.append(ds.names)
        rows = ds.rows("test")
        _, groups = np.unique(ds.groups[rows], return_inverse=True)
        score = ds.X[rows].sum(axis=1)
        engine = -np.arange(int(rows.sum()), dtype=np.float64)
        segment = ds.searches.set_index("search_id").loc[ds.groups[rows], "user_segment"].to_numpy()
        report = evaluate(
            {"engine": engine, "mlp": score, "hgb": score}, ds.labels[rows], groups, segments={"user": segment}
        )
        return report, {"none": 0.5, "light": 0.5, "heavy": 0.5}

    return run


def test_every_variant_is_retrained_on_its_own_columns_and_tabled() -> None:
    ds = _dataset()
    seen: list[tuple[str, ...]] = []
    bar = io.StringIO()
    lines: list[str] = []
    result = run_ablation(ds, ModelConfig(), _fake_variant(seen), say=lines.append, bar_file=bar)
    # the reference is trained here too (no reference given): 1 + 6 variants, each on its own columns
    assert len(seen) == 7 and seen[0] == NAMES
    assert all("cat_affinity" not in names for names in seen[5:]) and "user_history" not in seen[-1]
    assert len(lines) == 6 and lines[-1].startswith("ablation 6/6: without user and cross (no personalization)")
    assert "ablation" in bar.getvalue() and "7/7" in bar.getvalue()  # the progress bar went to the file given
    ref = result.reference
    assert ref.label == "all features" and ref.columns == len(NAMES)
    no_cross = next(r for r in result.rows if r.removed == ("cross",))
    assert no_cross.mlp is not None and ref.mlp is not None and no_cross.mlp < ref.mlp  # the signal was there
    assert set(ref.by_user) == {"heavy", "none"} and result.engine is not None

    text = result.table()
    assert text.startswith("ablation: test ndcg@10 with each feature scope removed")
    header = text.splitlines()[1].split()
    assert header[:3] == ["variant", "columns", "mlp"] and "hgb" in header
    assert f"{no_cross.mlp:.4f} ({no_cross.mlp - ref.mlp:+.4f})" in text
    data = json.loads(json.dumps(result.as_dict()))
    assert [r["removed"] for r in data["rows"]][:2] == [[], ["query_item"]] and data["metric"] == "ndcg@10"
    report, _ = _fake_variant([])(ds, ModelConfig())
    page = render_html(report, tables=result.html_tables())
    assert "<h2>Ablation by feature scope</h2>" in page and "without user x item (cross)" in page


def test_a_given_reference_is_not_trained_again() -> None:
    ds = _dataset()
    seen: list[tuple[str, ...]] = []
    report, gate = _fake_variant([])(ds, ModelConfig())
    variants = [("without user (user)", frozenset({"user"}))]
    result = run_ablation(
        ds, ModelConfig(), _fake_variant(seen), reference=(report, gate, 12.0), variants=variants, show_bar=False
    )
    assert len(seen) == 1 and "user_history" not in seen[0]
    assert [r.label for r in result.rows] == ["all features", "without user (user)"] and result.rows[0].seconds == 12
