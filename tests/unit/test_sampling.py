"""Sampling the pointwise training candidates (model.sample): what is kept, the weights, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from fuserec_os.errors import ConfigError
from fuserec_os.learn.model import synthetic_ranking_data, train_mlp
from fuserec_os.learn.model_config import ModelConfig, SampleConfig
from fuserec_os.learn.sampling import ranks_in_group, sample_candidates, should_sample
from fuserec_os.rerank.metrics import ndcg_at_k

ON = SampleConfig(enabled=True, keep_top=3, rate=0.2, correction="weight")
OFFSET = SampleConfig(enabled=True, keep_top=3, rate=0.2, correction="offset")


def wide(n_groups: int = 200, size: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n_groups * size) < 0.05).astype(np.int8) * rng.integers(1, 4, n_groups * size).astype(np.int8)
    groups = np.repeat(np.arange(n_groups), size)
    ranks = np.concatenate([rng.permutation(size) + 1 for _ in range(n_groups)]).astype(np.float64)
    return y, groups, ranks


def test_keeps_every_positive_and_the_engine_top_and_weights_the_rest() -> None:
    y, g, r = wide()
    s = sample_candidates(y, g, r, ON, seed=7)
    assert s.applied and s.rows_before == y.size and 0 < s.rows < y.size
    assert np.all(np.diff(s.index) > 0)  # ascending, no duplicates
    must = np.flatnonzero((y > 0) | (r <= 3))
    assert np.isin(must, s.index).all()
    kept_weight = s.weight[np.isin(s.index, must)]
    assert np.all(kept_weight == 1.0)
    drawn = s.weight[~np.isin(s.index, must)]
    assert drawn.size > 0 and np.allclose(drawn, 1 / 0.2)
    rest = y.size - must.size
    assert drawn.size == pytest.approx(0.2 * rest, rel=0.15)


def test_unranked_candidates_are_never_in_the_top_and_ranks_default_to_row_order() -> None:
    y = np.zeros(6, dtype=np.int8)
    g = np.array([0, 0, 0, 1, 1, 1])
    r = np.array([1.0, np.nan, 2.0, np.nan, np.nan, np.nan])
    s = sample_candidates(y, g, r, SampleConfig(enabled=True, keep_top=1, rate=1e-9), seed=0)
    assert s.index.tolist() == [0]
    np.testing.assert_array_equal(ranks_in_group([5, 5, 2, 5, 2]), [1, 2, 1, 3, 2])
    s = sample_candidates(y, g, None, SampleConfig(enabled=True, keep_top=2, rate=1e-9), seed=0)
    assert s.index.tolist() == [0, 1, 3, 4]


def test_deterministic_by_seed() -> None:
    y, g, r = wide()
    a, b = sample_candidates(y, g, r, ON, seed=7), sample_candidates(y, g, r, ON, seed=7)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.index, sample_candidates(y, g, r, ON, seed=8).index)


def test_weighted_loss_is_unbiased_on_a_toy_example() -> None:
    """E[sum over the sample of weight x loss] equals the full set's summed loss (Horvitz-Thompson)."""
    y, g, r = wide(n_groups=40, size=25, seed=3)
    p = np.random.default_rng(1).uniform(0.02, 0.98, y.size)  # some model's predicted probabilities
    t = (y > 0).astype(np.float64)
    loss = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    full = loss.sum()
    estimates = []
    for seed in range(3000):
        s = sample_candidates(y, g, r, ON, seed=seed)
        estimates.append(float((s.weight * loss[s.index]).sum()))
    assert np.mean(estimates) == pytest.approx(full, rel=0.005)
    unweighted = np.mean([loss[sample_candidates(y, g, r, ON, seed=s).index].sum() for s in range(50)])
    assert unweighted < 0.7 * full  # without the weights the negatives' share of the loss is far too small


def test_auto_threshold_and_off() -> None:
    y, g, r = wide()
    auto = SampleConfig(above_rows=y.size)
    assert not should_sample(auto, y.size)[0] and should_sample(auto, y.size + 1)[0]
    off = sample_candidates(y, g, r, SampleConfig(enabled=False), seed=0)
    assert not off.applied and off.rows == y.size and np.all(off.weight == 1.0)
    assert "above_rows" in sample_candidates(y, g, r, auto, seed=0).reason


def test_config_is_validated_and_read_from_the_model_section() -> None:
    cfg = ModelConfig.from_dict({"sample": {"enabled": True, "keep_top": 20, "rate": 1}})
    assert cfg.sample == SampleConfig(enabled=True, keep_top=20, rate=1.0)
    assert ModelConfig.from_dict({"sample": None}).sample == SampleConfig()
    assert ModelConfig().sample.enabled == "auto"
    for bad, key in (
        ({"rate": 0}, "model.sample.rate"),
        ({"rate": 1.5}, "model.sample.rate"),
        ({"keep_top": -1}, "model.sample.keep_top"),
        ({"enabled": "yes"}, "model.sample.enabled"),
        ({"above_rows": 1.5}, "model.sample.above_rows"),
        ({"rat": 0.1}, "model.sample.rat"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            ModelConfig.from_dict({"sample": bad})
    with pytest.raises(ConfigError, match=r"model\.sample"):
        ModelConfig.from_dict({"sample": 0.1})


def test_training_samples_only_pointwise_training_rows() -> None:
    Xt, yt, gt = synthetic_ranking_data(120, 20, 6, seed=1)
    Xv, yv, gv = synthetic_ranking_data(40, 20, 6, seed=2)
    cfg = ModelConfig(hidden=(8,), dropout=0.0, epochs=2, batch_size=256, patience=2, loss="auto", max_list_size=20)
    lines: list[str] = []
    sampled = SampleConfig(enabled=True, keep_top=2, rate=0.3)
    result = train_mlp(
        Xt, yt, gt, Xv, yv, gv, ModelConfig(**{**cfg.__dict__, "sample": sampled}),
        feature_names=[f"f{i}" for i in range(6)], progress=lines.append,
    )  # fmt: skip
    assert any(line.startswith("pointwise training on ") for line in lines), lines
    pw = sample_candidates(yt, gt, None, sampled, cfg.seed)
    # loss auto on a sampled set: the listwise lists would have to stay whole, so only pointwise trains
    assert result.loss == "pointwise" and result.scorer.meta["sample"]["rows"] == pw.rows
    assert result.decision == "auto: the training set is sampled, and listwise needs whole lists"
    assert not any(line.startswith("listwise epoch") for line in lines), lines
    whole = train_mlp(
        Xt, yt, gt, Xv, yv, gv, ModelConfig(**{**cfg.__dict__, "loss": "listwise", "sample": sampled}),
        feature_names=[f"f{i}" for i in range(6)],
    )  # fmt: skip
    assert "sample" not in whole.scorer.meta  # the listwise lists stay whole
    # validation is measured on every validation row (never sampled): recomputing it on the whole set agrees
    assert ndcg_at_k(yv, result.scorer.predict(Xv), gv, 10) == pytest.approx(result.valid_ndcg, abs=1e-6)


def test_offset_correction_marks_the_sampled_stratum_and_keeps_unit_weights() -> None:
    y, g, r = wide()
    s = sample_candidates(y, g, r, OFFSET, seed=7)
    w = sample_candidates(y, g, r, ON, seed=7)
    np.testing.assert_array_equal(s.index, w.index)  # the same rows; only the correction differs
    assert s.offset is not None and np.all(s.weight == 1.0)
    rest = r[s.index] > 3
    np.testing.assert_allclose(s.offset[rest], np.log(1 / 0.2), rtol=1e-6)
    assert np.all(s.offset[~rest] == 0.0)
    assert w.offset is None


def test_offset_loss_is_the_cross_entropy_of_the_shifted_logit() -> None:
    from fuserec_os.learn.model import _offset_bce

    p = np.array([[0.1], [0.5], [0.9], [0.3]], dtype=np.float32)
    y = np.array([[1.0, 0.0], [0.0, np.log(5.0)], [1.0, np.log(5.0)], [0.0, 0.0]], dtype=np.float32)
    logit = np.log(p[:, 0] / (1 - p[:, 0])) + y[:, 1]
    q = 1 / (1 + np.exp(-logit))
    want = -(y[:, 0] * np.log(q) + (1 - y[:, 0]) * np.log(1 - q))
    np.testing.assert_allclose(np.asarray(_offset_bce(y, p)), want, rtol=1e-4)


def test_offset_correction_recovers_the_population_probability() -> None:
    """Logistic regression on a case-control sample with the offset estimates the full data's intercept."""
    rng = np.random.default_rng(0)
    n = 200_000
    y = (rng.random(n) < 0.04).astype(np.int8)
    g = np.repeat(np.arange(n // 50), 50)
    r = np.tile(np.arange(1, 51), n // 50).astype(np.float64)
    s = sample_candidates(y, g, r, SampleConfig(enabled=True, keep_top=0, rate=0.1, correction="offset"), seed=1)
    assert s.offset is not None
    # the intercept-only model: solve mean(sigmoid(b + offset)) == mean(label) on the sample by bisection
    ys, off = (y[s.index] > 0).astype(np.float64), s.offset.astype(np.float64)
    lo, hi = -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + np.exp(-(mid + off)))).mean() < ys.mean() else (lo, mid)
    assert 1 / (1 + np.exp(-lo)) == pytest.approx(0.04, rel=0.05)


def test_the_model_records_the_sample_it_was_trained_on() -> None:
    Xt, yt, gt = synthetic_ranking_data(60, 20, 6, seed=1)
    Xv, yv, gv = synthetic_ranking_data(20, 20, 6, seed=2)
    for correction in ("offset", "weight"):
        sampled = SampleConfig(enabled=True, keep_top=2, rate=0.3, correction=correction, batch_size=64)
        cfg = ModelConfig(hidden=(8,), dropout=0.0, epochs=1, patience=1, sample=sampled)
        result = train_mlp(Xt, yt, gt, Xv, yv, gv, cfg, feature_names=[f"f{i}" for i in range(6)])
        assert result.scorer.meta["sample"]["rows"] == sample_candidates(yt, gt, None, sampled, cfg.seed).rows
