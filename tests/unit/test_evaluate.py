"""Offline metrics, the per-segment evaluation and the baselines: hand-computed values and a slow reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fuserec_os.learn.baselines import (
    dense_rank_scores,
    engine_scores,
    hgb_reranker,
    latent_scores,
    oracle_scores,
    popularity_scores,
    query_popularity_scores,
)
from fuserec_os.learn.evaluate import (
    auc,
    evaluate,
    hit_rate_at_k,
    mrr,
    mse,
    ndcg_at_k,
    per_search_metrics,
)

L3 = math.log2(3)


def order_within(scores: np.ndarray, groups: np.ndarray, g: int) -> list[int]:
    """Rows of search ``g`` in ranked order (the evaluator's convention: score desc, then row)."""
    rows = np.flatnonzero(groups == g)
    return sorted(rows.tolist(), key=lambda r: (-scores[r], r))


# ---------------------------------------------------------------------------------------------------------------
# hand-computed metrics
# ---------------------------------------------------------------------------------------------------------------


def test_perfect_order_scores_one() -> None:
    y, s, g = [3, 2, 0], [3.0, 2.0, 1.0], [0, 0, 0]
    assert ndcg_at_k(y, s, g) == pytest.approx(1.0)
    assert mrr(y, s, g) == pytest.approx(1.0)
    assert hit_rate_at_k(y, s, g, k=1) == 1.0


def test_reversed_order() -> None:
    y, s, g = [0, 0, 1], [3.0, 2.0, 1.0], [0, 0, 0]
    # the single positive at position 3: DCG = 1 / log2(4) = 0.5, ideal = 1
    assert ndcg_at_k(y, s, g) == pytest.approx(0.5)
    assert mrr(y, s, g) == pytest.approx(1 / 3)
    assert hit_rate_at_k(y, s, g, k=2) == 0.0
    assert hit_rate_at_k(y, s, g, k=3) == 1.0
    assert ndcg_at_k(y, s, g, k=2) == 0.0


def test_ties_are_broken_by_row_order() -> None:
    # equal scores: the earlier row ranks first, whatever the sort algorithm does
    assert ndcg_at_k([0, 1], [5.0, 5.0], [0, 0]) == pytest.approx(1 / L3)
    assert mrr([0, 1], [5.0, 5.0], [0, 0]) == pytest.approx(0.5)
    assert ndcg_at_k([1, 0], [5.0, 5.0], [0, 0]) == pytest.approx(1.0)


def test_graded_labels_use_exponential_gain() -> None:
    y, s, g = [1, 3], [2.0, 1.0], [0, 0]
    dcg = 1.0 + 7.0 / L3
    ideal = 7.0 + 1.0 / L3
    assert ndcg_at_k(y, s, g) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(y, s, g, k=1) == pytest.approx(1 / 7)


def test_searches_without_positive_are_excluded_and_counted() -> None:
    y = [0, 0, 1, 0, 0, 0]
    s = [2.0, 1.0, 0.5, 9.0, 8.0, 7.0]
    g = [0, 0, 0, 1, 1, 1]
    assert ndcg_at_k(y, s, g) == pytest.approx(0.5)  # only search 0 counts, not (0.5 + 0) / 2
    m = per_search_metrics(y, s, g)
    assert m.has_positive.tolist() == [True, False]
    assert math.isnan(m.ndcg[1])
    rep = evaluate({"engine": np.asarray(s)}, y, g)
    assert (rep.overall.n_searches, rep.overall.n_excluded, rep.overall.n_rows) == (1, 1, 3)
    with pytest.raises(ValueError, match="no search has a positive"):
        ndcg_at_k([0, 0], [1.0, 2.0], [0, 0])


def test_k_larger_than_the_list() -> None:
    y, s, g = [0, 2, 1], [3.0, 2.0, 1.0], [0, 0, 0]
    full = (3.0 / L3 + 1.0 / 2.0) / (3.0 + 1.0 / L3)
    assert ndcg_at_k(y, s, g, k=100) == pytest.approx(full)
    assert ndcg_at_k(y, s, g, k=3) == pytest.approx(full)
    assert hit_rate_at_k(y, s, g, k=100) == 1.0


def test_means_are_over_searches_and_groups_need_not_be_adjacent() -> None:
    y = [1, 0, 0, 1]
    s = [1.0, 2.0, 1.0, 2.0]
    g = [7, 3, 7, 3]  # search 7 = rows 0, 2 (perfect); search 3 = rows 1, 3 (reversed)
    assert ndcg_at_k(y, s, g) == pytest.approx((1.0 + 1 / L3) / 2)
    assert mrr(y, s, g) == pytest.approx(0.75)


def test_auc_and_mse() -> None:
    y = [1, 0, 0, 2, 0, 0]
    s = [0.9, 0.1, 0.8, 0.3, 0.2, 0.4]
    assert auc(y, s) == pytest.approx(roc_auc_score([1, 0, 0, 1, 0, 0], s))
    assert auc([0, 0], [0.1, 0.2]) is None
    expected = np.mean((np.asarray(s) - np.array([1, 0, 0, 1, 0, 0])) ** 2)
    assert mse(y, s) == pytest.approx(expected)
    # rows of searches without a positive do not count
    assert mse([1, 0, 0, 0], [1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mse([1, 0], [1.5, 0.0])
    # -inf is a legal bottom score and AUC still works (sklearn itself rejects inf)
    assert auc([1, 0, 0], [1.0, -np.inf, 0.0]) == pytest.approx(1.0)


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k([1, 0], [np.nan, 1.0], [0, 0])
    with pytest.raises(ValueError, match="one entry per row"):
        ndcg_at_k([1, 0], [1.0], [0, 0])
    with pytest.raises(ValueError, match=">= 0"):
        ndcg_at_k([-1, 0], [1.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="k must"):
        ndcg_at_k([1, 0], [1.0, 0.0], [0, 0], k=0)


# ---------------------------------------------------------------------------------------------------------------
# the vectorised code equals a slow reference
# ---------------------------------------------------------------------------------------------------------------


def reference(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int) -> tuple[float, float, float, int]:
    ndcgs, rrs, hits, excluded = [], [], [], 0
    for g in sorted(set(groups.tolist())):
        ranked = [int(labels[r]) for r in order_within(scores, groups, g)]
        if not any(v > 0 for v in ranked):
            excluded += 1
            continue
        dcg = sum((2**v - 1) / math.log2(i + 2) for i, v in enumerate(ranked[:k]))
        ideal = sorted(ranked, reverse=True)
        idcg = sum((2**v - 1) / math.log2(i + 2) for i, v in enumerate(ideal[:k]))
        ndcgs.append(dcg / idcg)
        first = next(i for i, v in enumerate(ranked) if v > 0)
        rrs.append(1 / (first + 1))
        hits.append(1.0 if first < k else 0.0)
    return float(np.mean(ndcgs)), float(np.mean(rrs)), float(np.mean(hits)), excluded


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_vectorised_equals_reference(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, size=120)
    groups = np.repeat(np.arange(sizes.size), sizes)
    n = groups.size
    labels = rng.choice(4, size=n, p=[0.8, 0.1, 0.05, 0.05])
    scores = rng.integers(0, 5, size=n).astype(np.float64)  # many ties
    if seed == 2:  # rows of a search scattered: ties still follow the row order
        perm = rng.permutation(n)
        groups, labels, scores = groups[perm], labels[perm], scores[perm]
    nd, rr, hr, excluded = reference(labels, scores, groups, k)
    assert excluded > 0  # the random data exercises the exclusion
    assert ndcg_at_k(labels, scores, groups, k) == pytest.approx(nd, rel=1e-12)
    assert mrr(labels, scores, groups) == pytest.approx(rr, rel=1e-12)
    assert hit_rate_at_k(labels, scores, groups, k) == pytest.approx(hr, rel=1e-12)
    rep = evaluate({"m": scores}, labels, groups, k=k)
    assert rep.overall.n_excluded == excluded
    assert rep.value("m", f"ndcg@{k}") == pytest.approx(nd, rel=1e-12)
    included = np.isin(groups, [g for g in set(groups.tolist()) if labels[groups == g].max() > 0])
    assert rep.value("m", "auc") == pytest.approx(roc_auc_score(labels[included] > 0, scores[included]))


# ---------------------------------------------------------------------------------------------------------------
# evaluate(): segments, deltas, captured gain
# ---------------------------------------------------------------------------------------------------------------


def small_data() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    # four searches of three rows; search 3 has no positive
    labels = np.array([0, 1, 0, 3, 0, 0, 0, 0, 2, 0, 0, 0])
    groups = np.repeat(np.arange(4), 3)
    engine = np.tile([3.0, 2.0, 1.0], 4)  # shown order
    model = np.array([0.2, 0.9, 0.1, 0.8, 0.3, 0.1, 0.1, 0.3, 0.7, 0.5, 0.4, 0.3])
    oracle = labels.astype(np.float64)
    user = np.repeat(["heavy", "none", "heavy", "light"], 3)
    query = np.repeat(["broad", "broad", "specific", "specific"], 3)
    return {"engine": engine, "model": model, "oracle": oracle}, labels, groups, {"user": user, "query": query}


def test_evaluate_overall_segments_and_counts() -> None:
    methods, labels, groups, segments = small_data()
    rep = evaluate(methods, labels, groups, segments, probabilistic={"model"})
    ov = rep.overall
    assert (ov.n_searches, ov.n_excluded, ov.n_rows) == (3, 1, 9)
    # engine: search 0 positive at 2 (1/log2(3)), search 1 at 1 (1.0), search 2 at 3 (0.5 of 3/...)
    e0, e1, e2 = 1 / L3, 1.0, 0.5
    assert rep.value("engine", "ndcg@10") == pytest.approx((e0 + e1 + e2) / 3)
    assert rep.value("model", "ndcg@10") == pytest.approx(1.0)
    assert rep.value("engine", "mse") is None  # not declared probabilistic
    assert rep.value("model", "mse") is not None
    # user: heavy = searches 0 and 2, none = 1, light = 3 (no positive: 0 averaged, 1 excluded)
    user = rep.segments["user"]
    assert list(user) == ["heavy", "light", "none"]
    assert user["heavy"].n_searches == 2
    assert user["heavy"].metrics["engine"]["ndcg@10"] == pytest.approx((e0 + e2) / 2)
    assert user["none"].metrics["engine"]["ndcg@10"] == pytest.approx(e1)
    assert (user["light"].n_searches, user["light"].n_excluded) == (0, 1)
    assert user["light"].metrics["engine"]["ndcg@10"] is None
    for cells in rep.segments.values():
        assert sum(c.n_searches for c in cells.values()) == ov.n_searches
        assert sum(c.n_excluded for c in cells.values()) == ov.n_excluded
        assert sum(c.n_rows for c in cells.values()) == ov.n_rows
    assert rep.segments["query"]["broad"].metrics["engine"]["mrr"] == pytest.approx((0.5 + 1.0) / 2)


def test_delta_vs_engine_captured_gain_and_best() -> None:
    methods, labels, groups, segments = small_data()
    methods = {**methods, "half": np.array([3.0, 2.0, 1.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0, 1.0])}
    rep = evaluate(methods, labels, groups, segments)
    e = rep.value("engine", "ndcg@10")
    assert e is not None
    d = rep.overall.delta_vs_engine
    assert d["engine"]["ndcg@10"] == 0.0
    assert d["model"]["ndcg@10"] == pytest.approx(1.0 - e)
    assert d["model"]["mse"] is None
    # "half" fixes search 2 only (positive moved from 3rd to 1st), search 0 still has it at 2nd
    h = (1 / L3 + 1.0 + 1.0) / 3
    assert rep.value("half", "ndcg@10") == pytest.approx(h)
    assert rep.captured_gain("half") == pytest.approx((h - e) / (1.0 - e))
    assert rep.captured_gain("model") == pytest.approx(1.0)
    assert rep.captured_gain("engine") == pytest.approx(0.0)
    heavy = rep.segments["user"]["heavy"]
    assert heavy.delta_vs_engine["half"]["ndcg@10"] == pytest.approx((1 / L3 + 1.0) / 2 - (1 / L3 + 0.5) / 2)
    assert rep.best("ndcg@10") == "model"  # the oracle ties but is not a contender
    assert rep.best("ndcg@10", include_oracle=True) == "model"  # ties go to the earlier method
    assert rep.best("mrr", segment=("user", "heavy")) == "model"
    with pytest.raises(ValueError, match="unknown metric"):
        rep.best("precision")
    without_oracle = evaluate({"engine": methods["engine"], "model": methods["model"]}, labels, groups)
    with pytest.raises(ValueError, match="oracle"):
        without_oracle.captured_gain("model")
    assert without_oracle.overall.delta_vs_engine["model"]["mrr"] is not None
    no_engine = evaluate({"model": methods["model"]}, labels, groups)
    assert no_engine.overall.delta_vs_engine == {}


def test_best_prefers_lower_mse() -> None:
    labels = np.array([1, 0, 1, 0])
    groups = np.array([0, 0, 1, 1])
    good = np.array([0.9, 0.1, 0.8, 0.2])
    bad = np.array([0.6, 0.4, 0.6, 0.4])
    rep = evaluate({"bad": bad, "good": good}, labels, groups, probabilistic={"bad", "good"})
    assert rep.best("mse") == "good"


def test_as_dict_is_json_serialisable() -> None:
    methods, labels, groups, segments = small_data()
    rep = evaluate(methods, labels, groups, segments, probabilistic={"model"})
    doc = json.loads(json.dumps(rep.as_dict(), allow_nan=False))
    assert doc["methods"] == ["engine", "model", "oracle"]
    assert doc["overall"]["n_searches"] == 3
    assert doc["segments"]["user"]["light"]["n_excluded"] == 1
    assert doc["captured_gain"]["model"]["ndcg@10"] == pytest.approx(1.0)


def test_evaluate_rejects_bad_inputs() -> None:
    methods, labels, groups, _ = small_data()
    with pytest.raises(ValueError, match="not constant within search 1"):
        evaluate(methods, labels, groups, {"user": np.array(["a"] * 4 + ["b"] * 8)})
    with pytest.raises(ValueError, match="outside"):
        evaluate(methods, labels, groups, probabilistic={"engine"})
    with pytest.raises(ValueError, match="unknown methods"):
        evaluate(methods, labels, groups, probabilistic={"mlp"})
    with pytest.raises(ValueError, match="NaN"):
        evaluate({"m": np.full(12, np.nan)}, labels, groups)


# ---------------------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------------------


def ranked(scores: np.ndarray, groups: np.ndarray | None = None, g: int = 0) -> list[int]:
    groups = np.zeros(scores.size, dtype=np.int64) if groups is None else groups
    return order_within(scores, groups, g)


def test_dense_rank_scores_keeps_ties_equal() -> None:
    s = dense_rank_scores(np.array([1.0, 1.0, 0.0, 1.0]), np.array([2.0, 2.0, 5.0, 3.0]))
    assert s.tolist() == [1.0, 1.0, 0.0, 2.0]


def test_engine_scores_order() -> None:
    nan = np.nan
    engine_score = np.array([1.0, nan, 5.0, 5.0, nan, 2.0, nan])
    engine_rank = np.array([3.0, nan, 2.0, 1.0, nan, 2.0, nan])
    shown_rank = np.array([4.0, 2.0, 0.0, 1.0, 1.0, 3.0, nan])  # rows 2, 3: shown order disagrees
    s = engine_scores(engine_score, engine_rank, shown_rank)
    # by score (equal scores by engine rank, not shown rank), then unscored by shown rank, then rows with nothing
    assert ranked(s) == [3, 2, 5, 0, 4, 1, 6]
    # two searches: ordering is within each search
    groups = np.array([0, 0, 0, 1, 1, 1, 1])
    assert ranked(s, groups, 0) == [2, 0, 1]
    assert ranked(s, groups, 1) == [3, 5, 4, 6]


def test_popularity_and_query_popularity() -> None:
    assert ranked(popularity_scores([3.0, np.nan, 10.0, 0.0])) == [2, 0, 1, 3]
    engine = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    clicks = np.array([2.0, 0.0, np.nan, 1.0, 0.0])
    purchases = np.array([0.0, 1.0, 0.0, 0.0, np.nan])
    # engagement: 2, 3, 0, 1, 0 -> row 1, 0, 3, then 4 before 2 by engine
    assert ranked(query_popularity_scores(clicks, purchases, engine)) == [1, 0, 3, 4, 2]
    # without any history it is the engine order
    zeros = np.zeros(5)
    assert ranked(query_popularity_scores(zeros, zeros, engine)) == [4, 3, 2, 1, 0]


def test_latent_scores_missing_at_bottom_ties_by_engine() -> None:
    dot = np.array([-0.5, np.nan, 0.2, np.nan, 0.2, -3.0])
    engine = np.array([1.0, 5.0, 1.0, 2.0, 9.0, 0.0])
    # missing rows go below even a very negative affinity; the tie at 0.2 goes to the higher engine score
    assert ranked(latent_scores(dot, engine)) == [4, 2, 0, 5, 1, 3]
    assert ranked(latent_scores(dot)) == [2, 4, 0, 5, 1, 3]


def test_oracle_scores() -> None:
    u = np.array([0.1, 0.9, 0.5])
    assert ranked(oracle_scores(u)) == [1, 2, 0]
    with pytest.raises(ValueError, match="every row"):
        oracle_scores([np.nan, 1.0])


def test_hgb_reranker_beats_random_when_labels_depend_on_features() -> None:
    rng = np.random.default_rng(7)
    n_searches, size = 300, 10
    n = n_searches * size
    groups = np.repeat(np.arange(n_searches), size)
    X = rng.normal(size=(n, 5))
    utility = 1.5 * X[:, 0] - X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=n)
    labels = np.digitize(utility, [1.5, 2.5, 3.5])  # graded 0..3
    X[rng.random(n) < 0.1, 3] = np.nan  # missing features are tolerated
    train = groups < n_searches // 2
    test = ~train
    s = hgb_reranker(X[train], labels[train], X[test], seed=0, max_iter=50)
    assert s.shape == (int(test.sum()),)
    assert np.array_equal(s, hgb_reranker(X[train], labels[train], X[test], seed=0, max_iter=50))  # deterministic
    random_scores = rng.random(int(test.sum()))
    rep = evaluate({"random": random_scores, "hgb": s}, labels[test], groups[test])
    hgb, rnd = rep.value("hgb", "ndcg@10"), rep.value("random", "ndcg@10")
    assert hgb is not None and rnd is not None
    assert hgb > rnd + 0.2
    assert rep.best("ndcg@10") == "hgb"
