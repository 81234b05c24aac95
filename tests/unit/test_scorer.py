"""Scorers, blend, alpha tuning and NDCG: NumPy only (no TensorFlow here, so these run in about a second)."""

from __future__ import annotations

import io
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from fuserec_os.rerank.blend import Gate, blend, minmax, minmax_groups, tune_alpha
from fuserec_os.rerank.metrics import ndcg_at_k, ndcg_per_group
from fuserec_os.rerank.scorer import NoopScorer, NumpyMLPScorer, Scorer

NAMES = ("a", "b", "c", "d", "e")


def random_mlp(hidden: tuple[int, ...], output: str = "sigmoid", seed: int = 0) -> NumpyMLPScorer:
    rng = np.random.default_rng(seed)
    sizes = (len(NAMES), *hidden, 1)
    weights = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        weights += [rng.normal(0, 1 / math.sqrt(fan_in), (fan_in, fan_out)), rng.normal(0, 0.1, fan_out)]
    mean = rng.normal(0, 2, len(NAMES))
    std = rng.uniform(0.5, 3, len(NAMES))
    return NumpyMLPScorer(weights, mean, std, NAMES, output=output, version="t1", meta={"note": "test"})  # type: ignore[arg-type]


def reference_forward(s: NumpyMLPScorer, X: np.ndarray) -> np.ndarray:
    """Unfolded float64 forward pass from the stored blob: what the folded float32 pass must reproduce."""
    blob = np.load(io.BytesIO(s.to_bytes()))
    n_layers = s.n_layers
    h = (X - blob["mean"]) / blob["std"]
    for i in range(n_layers):
        h = h @ blob[f"w{2 * i}"].astype(np.float64) + blob[f"w{2 * i + 1}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0)
    z = h[:, 0]
    return 1 / (1 + np.exp(-z)) if s.output == "sigmoid" else z


# ------------------------------------------------------------------------------------------ scorers


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_numpy_mlp_matches_unfolded_reference(output: str) -> None:
    s = random_mlp((16, 8), output)
    X = np.random.default_rng(1).normal(0, 3, (200, len(NAMES)))
    got = s.predict(X)
    assert got.dtype == np.float64 and got.shape == (200,)
    np.testing.assert_allclose(got, reference_forward(s, X), atol=1e-5, rtol=1e-5)
    assert s.predict(np.zeros((0, len(NAMES)))).shape == (0,)


def test_bytes_round_trip_gives_identical_scores_and_metadata() -> None:
    s = random_mlp((16, 8))
    X = np.random.default_rng(2).normal(0, 3, (50, len(NAMES)))
    back = NumpyMLPScorer.from_bytes(s.to_bytes())
    assert np.array_equal(back.predict(X), s.predict(X))
    assert np.array_equal(back.explain(X), s.explain(X))
    assert back.version == "t1" and back.feature_names == NAMES and back.output == "sigmoid"
    assert back.meta == {"note": "test"}
    unnamed = random_mlp((4,))
    unnamed_version = NumpyMLPScorer(unnamed._raw, unnamed._mean, unnamed._std, NAMES).version
    assert unnamed_version.startswith("mlp-")  # content hash when no version is given
    with pytest.raises(ValueError, match="cannot read"):
        NumpyMLPScorer.from_bytes(b"not a zip")


def test_predict_rejects_wrong_column_count_naming_both_numbers() -> None:
    s = random_mlp((4,))
    with pytest.raises(ValueError, match=r"has 3 columns but the scorer expects 5"):
        s.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        s.predict(np.zeros(5))
    with pytest.raises(ValueError, match="has 6 columns but the scorer expects 5"):
        NoopScorer(NAMES).predict(np.zeros((2, 6)))


@pytest.mark.parametrize("output", ["sigmoid", "linear"])
def test_explain_is_exact_without_hidden_layers(output: str) -> None:
    s = random_mlp((), output)
    X = np.random.default_rng(3).normal(0, 3, (40, len(NAMES)))
    c = s.explain(X)
    assert c.shape == (40, len(NAMES)) and c.dtype == np.float64
    at_mean = s.predict(s._mean[None, :])[0]
    np.testing.assert_allclose(c.sum(axis=1), s.predict(X) - at_mean, atol=1e-5)
    # a feature at its training mean contributes nothing
    X[:, 2] = s._mean[2]
    assert np.allclose(s.explain(X)[:, 2], 0.0)


def test_explain_sums_to_score_difference_in_the_means_relu_region() -> None:
    base = random_mlp((16,), "linear")
    raw = [w.copy() for w in base._raw]
    raw[1] += 3.0  # every hidden unit well on at the mean: small moves stay in the mean's (linear) region
    s = NumpyMLPScorer(raw, base._mean, base._std, NAMES, output="linear")
    rng = np.random.default_rng(4)
    near = s._mean + rng.normal(0, 0.05, (30, len(NAMES))) * s._std
    np.testing.assert_allclose(s.explain(near).sum(axis=1), s.predict(near) - s.predict(s._mean[None, :])[0], atol=1e-5)
    deep = random_mlp((16, 8), "sigmoid")  # elsewhere only approximately, but strongly related
    far = deep._mean + rng.normal(0, 1, (500, len(NAMES))) * deep._std
    diff = deep.predict(far) - deep.predict(deep._mean[None, :])[0]
    assert np.corrcoef(deep.explain(far).sum(axis=1), diff)[0, 1] > 0.8


def test_noop_scorer_is_a_scorer_of_zeros() -> None:
    noop = NoopScorer(NAMES)
    assert isinstance(noop, Scorer) and isinstance(random_mlp((4,)), Scorer)
    X = np.ones((7, len(NAMES)))
    assert noop.version == "noop" and noop.feature_names == NAMES
    assert np.array_equal(noop.predict(X), np.zeros(7)) and np.array_equal(noop.explain(X), np.zeros((7, 5)))
    noop.close()


# ------------------------------------------------------------------------------------------ blend


def order(scores: np.ndarray) -> list[int]:
    return list(np.argsort(-scores, kind="stable"))


def test_minmax_handles_nan_constant_and_empty() -> None:
    assert np.allclose(minmax([2.0, np.nan, 4.0, 3.0]), [0.0, 0.0, 1.0, 0.5])
    assert np.array_equal(minmax([5.0, 5.0]), [0.0, 0.0])
    assert np.array_equal(minmax([np.nan, np.nan]), [0.0, 0.0])
    assert minmax([]).shape == (0,)


def test_minmax_groups_equals_per_list_minmax() -> None:
    rng = np.random.default_rng(5)
    s = rng.normal(size=60)
    s[[3, 17]] = np.nan
    g = rng.integers(0, 6, 60)  # not contiguous
    got = minmax_groups(s, g)
    for k in np.unique(g):
        assert np.allclose(got[g == k], minmax(s[g == k]))


def test_noop_blend_keeps_engine_order_and_alpha_one_is_model_order() -> None:
    engine = np.array([9.0, 7.5, np.nan, 7.5, 3.0, 1.0])  # NaN: a behavioural candidate, tie at 7.5
    X = np.random.default_rng(6).normal(size=(6, len(NAMES)))
    engine_order = [0, 1, 3, 4, 2, 5]  # missing engine score = 0 = the list's minimum; ties keep list order
    for alpha in (0.0, 0.3, 0.99):  # (alpha 1 with no model information is list order by construction)
        assert order(blend(engine, NoopScorer(NAMES).predict(X), alpha)) == engine_order
    model = random_mlp((8,)).predict(X)
    assert order(blend(engine, model, 1.0)) == order(model) != engine_order
    assert order(blend(engine, model, 0.0)) == engine_order
    with pytest.raises(ValueError, match="alpha"):
        blend(engine, model, 1.5)


def blend_data(informative: bool, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n_groups, size = 400, 20
    rel = rng.normal(size=n_groups * size)
    labels = np.digitize(rel + rng.normal(0, 0.3, rel.size), [1.0, 1.6, 2.2])
    engine = rel + rng.normal(0, 1.5, rel.size)  # a weak engine
    model = rel + rng.normal(0, 0.5, rel.size) if informative else rng.normal(size=rel.size)
    groups = np.repeat(np.arange(n_groups), size)
    return engine, model, labels, groups


def test_tune_alpha_picks_zero_for_noise_and_more_for_an_informative_model() -> None:
    alphas = [round(i / 10, 1) for i in range(11)]
    best, table = tune_alpha(*blend_data(False), alphas)
    assert best == 0.0 and set(table) == set(alphas) and table[0.0] > table[1.0]
    best, table = tune_alpha(*blend_data(True), alphas)
    assert best > 0.0 and table[best] > table[0.0]
    e, _, y, g = blend_data(True)
    best, table = tune_alpha(e, e * 3 + 1, y, g, alphas)  # model == engine order: all tie, engine wins
    assert best == 0.0 and len(set(np.round(list(table.values()), 12))) == 1
    # mask restricts to some groups: the table is their NDCG
    mask = g < 100
    _, t_mask = tune_alpha(e, e, y, g, [0.0], mask=mask)
    assert t_mask[0.0] == pytest.approx(ndcg_at_k(y[mask], e[mask], g[mask]))


def test_gate_segments_and_fit_never_personalise_unsupported_segments() -> None:
    gate = Gate(alpha_no_history=0.0, alpha_light=0.3, alpha_heavy=0.8, light_min_events=1, heavy_min_events=10)
    assert [gate.alpha(n) for n in (None, 0, 1, 9, 10, 500)] == [0.0, 0.0, 0.3, 0.3, 0.8, 0.8]
    assert list(gate.segments([np.nan, 0, 5, 50])) == ["none", "none", "light", "heavy"]
    e, m_good, y, g = blend_data(True)
    _, m_noise, _, _ = blend_data(False)
    n_events = np.where(g % 2 == 0, 0, 30)[:]  # even searches: users without history; odd: heavy users
    model = np.where(n_events == 0, m_noise, m_good)  # the model only knows the heavy users
    fitted, tables = Gate.fit(e, model, y, g, n_events, [0.0, 0.5, 1.0], heavy_min_events=20)
    assert fitted.alpha_no_history == 0.0 and fitted.alpha_heavy > 0.0
    assert fitted.alpha_light == 0.0 and tables["light"] == {}  # no light users: engine order
    with pytest.raises(ValueError, match="contain 0"):
        Gate.fit(e, model, y, g, n_events, [0.5, 1.0])
    with pytest.raises(ValueError, match="alpha_heavy"):
        Gate(alpha_heavy=2.0)


def test_gate_gives_a_segment_its_own_alpha_only_beyond_noise() -> None:
    """One search of a segment that a smaller alpha happens to rank better must not set its alpha (the larger
    simulated shop: validation gave users without history 0.7, the test period wanted 1.0)."""
    e, m, y, g = blend_data(True, seed=3)  # 400 heavy users' searches, an informative model: overall alpha high
    n = len(y)
    # 20 searches of users without history: the model agrees with the engine in 19 of them; in one the engine
    # puts the purchase first and the model last
    ne = np.tile(np.arange(5, 0, -1, dtype=np.float64), 20)
    nm = ne.copy()
    ny = np.tile([0, 1, 0, 0, 0], 20)
    ny[:5], nm[:5] = [3, 0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0, 5.0]
    e2, m2, y2 = np.r_[e, ne], np.r_[m, nm], np.r_[y, ny]
    g2 = np.r_[g, 1000 + np.repeat(np.arange(20), 5)]
    n_events = np.r_[np.full(n, 30), np.zeros(100)]
    overall, _ = tune_alpha(e2, m2, y2, g2, [0.0, 0.5, 1.0])
    own, _ = tune_alpha(e2, m2, y2, g2, [0.0, 0.5, 1.0], mask=n_events == 0)
    assert overall == 1.0 and own == 0.0  # on its own, the segment would take engine order...
    fitted, tables = Gate.fit(e2, m2, y2, g2, n_events, [0.0, 0.5, 1.0])
    assert fitted.alpha_no_history == fitted.alpha_heavy == overall  # ...on the strength of one search
    assert set(tables) == {"all", "none", "light", "heavy"} and tables["none"][0.0] > tables["none"][1.0]
    # with no bar at all, the segment's own best alpha is back
    assert Gate.fit(e2, m2, y2, g2, n_events, [0.0, 0.5, 1.0], evidence=-1e9)[0].alpha_no_history == 0.0
    # when the engine puts the purchase first and the model last in every one of its searches, the segment
    # keeps engine order: that is no noise
    bought_first = np.tile([3, 0, 0, 0, 0], 20)
    model_reversed = np.tile(np.arange(1.0, 6.0), 20)
    fitted, _ = Gate.fit(e2, np.r_[m, model_reversed], np.r_[y, bought_first], g2, n_events, [0.0, 0.5, 1.0])
    assert fitted.alpha_no_history == 0.0 and fitted.alpha_heavy == 1.0


# ------------------------------------------------------------------------------------------ ndcg


def test_ndcg_hand_computed() -> None:
    labels = [0, 1, 0, 2]
    ideal = 3 + 1 / math.log2(3)
    got = 1 / math.log2(3) + 3 / math.log2(5)
    assert ndcg_at_k(labels, [4, 3, 2, 1], [0, 0, 0, 0]) == pytest.approx(got / ideal)
    assert ndcg_at_k(labels, [0, 2, 1, 3], [0, 0, 0, 0]) == pytest.approx(1.0)
    # k=1: only the top item counts
    assert ndcg_at_k(labels, [4, 3, 2, 1], [0, 0, 0, 0], k=1) == 0.0


def test_ndcg_ties_keep_original_order_and_nan_ranks_last() -> None:
    # all tied: the list is read in row order -> positive at rank 2
    assert ndcg_at_k([0, 1], [5, 5], [0, 0]) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k([1, 0], [5, 5], [0, 0]) == pytest.approx(1.0)
    assert ndcg_at_k([1, 0], [np.nan, 0.0], [0, 0]) == pytest.approx(1 / math.log2(3))


def test_ndcg_groups_without_positives_are_skipped_and_k_beyond_list() -> None:
    labels = [1, 0, 0, 0, 0, 3]
    scores = [1, 2, 5, 4, 0, 1]
    groups = [7, 7, 8, 8, 9, 9]  # group 8 has no positive; group 9 is perfect
    g7 = (1 / math.log2(3)) / 1.0
    assert ndcg_at_k(labels, scores, groups, k=50) == pytest.approx((g7 + 1.0) / 2)
    ndcg, has_pos = ndcg_per_group(labels, scores, groups, k=50)
    assert list(has_pos) == [True, False, True] and ndcg[1] == 0.0
    assert ndcg_at_k([0, 0], [1, 2], [0, 0]) == 0.0  # nothing to rank anywhere


def test_ndcg_vectorised_matches_a_loop_and_ignores_group_layout() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    groups = np.sort(rng.integers(0, 200, n))
    labels = rng.integers(0, 4, n) * (rng.random(n) < 0.3)
    scores = np.round(rng.normal(size=n), 1)  # plenty of ties
    values = []
    for k in np.unique(groups):
        y, s = labels[groups == k], scores[groups == k]
        top = np.argsort(-s, kind="stable")[:10]
        ideal = np.sort(y)[::-1][:10]
        disc = 1 / np.log2(np.arange(2, 12))
        idcg = ((2.0**ideal - 1) * disc[: ideal.size]).sum()
        if idcg > 0:
            values.append(((2.0 ** y[top] - 1) * disc[: top.size]).sum() / idcg)
    assert ndcg_at_k(labels, scores, groups) == pytest.approx(np.mean(values), abs=1e-12)
    perm = rng.permutation(n)  # shuffled rows, non-contiguous groups: ties now break by the new row order
    shuffled = ndcg_at_k(labels[perm], scores[perm] + rng.normal(0, 1e-9, n)[perm] * 0, groups[perm])
    assert abs(shuffled - np.mean(values)) < 0.05
    jitter = scores + np.arange(n) * 1e-9  # no ties: layout must not matter at all
    assert ndcg_at_k(labels[perm], jitter[perm], groups[perm]) == pytest.approx(ndcg_at_k(labels, jitter, groups))


def test_importing_rerank_does_not_import_tensorflow() -> None:
    code = (
        "import sys, fuserec_os.rerank, fuserec_os.rerank.scorer, fuserec_os.rerank.blend, "
        "fuserec_os.learn.model, fuserec_os.learn.model_config\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
