"""Training the MLP with Keras (tiny models, few epochs) and its export to the NumPy scorer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fuserec_os.errors import ConfigError
from fuserec_os.learn.model import (
    Scaler,
    TrainResult,
    export_scorer,
    load_keras_model,
    pad_lists,
    save_keras_model,
    synthetic_ranking_data,
    train_mlp,
)
from fuserec_os.learn.model_config import DEFAULT_ALPHAS, ModelConfig
from fuserec_os.rerank.metrics import ndcg_at_k
from fuserec_os.rerank.scorer import NumpyMLPScorer

# Keras 3's saving calls np.array() on TF variables, whose __array__ lacks NumPy 2's `copy` keyword: TF's own
# DeprecationWarning (keras/src/backend/tensorflow/core.py convert_to_numpy), not something our code can avoid.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

D = 8
NAMES = tuple(f"f{i}" for i in range(D))
TINY = {
    "hidden": (32, 16),
    "dropout": 0.0,
    "epochs": 8,
    "batch_size": 128,
    "patience": 3,
    "max_list_size": 32,
    "learning_rate": 3e-3,
}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    Xt, yt, gt = synthetic_ranking_data(300, 20, D, seed=1)
    Xv, yv, gv = synthetic_ranking_data(100, 20, D, seed=2)
    Xh, yh, gh = synthetic_ranking_data(100, 20, D, seed=3)  # held out: never seen by early stopping
    return {"Xt": Xt, "yt": yt, "gt": gt, "Xv": Xv, "yv": yv, "gv": gv, "Xh": Xh, "yh": yh, "gh": gh}


def train(data: dict[str, np.ndarray], lines: list[str] | None = None, **cfg: object) -> TrainResult:
    config = ModelConfig(**{**TINY, **cfg})  # type: ignore[arg-type]
    return train_mlp(
        data["Xt"], data["yt"], data["gt"], data["Xv"], data["yv"], data["gv"], config,
        feature_names=NAMES, progress=None if lines is None else lines.append,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pointwise(data: dict[str, np.ndarray]) -> tuple[TrainResult, list[str]]:
    lines: list[str] = []
    return train(data, lines, loss="pointwise"), lines


@pytest.fixture(scope="module")
def listwise(data: dict[str, np.ndarray]) -> TrainResult:
    return train(data, loss="listwise")


def test_training_beats_random_and_a_linear_baseline(data: dict[str, np.ndarray], pointwise: tuple) -> None:
    result, lines = pointwise
    yh, gh, Xh = data["yh"], data["gh"], data["Xh"]
    random_ndcg = ndcg_at_k(yh, np.random.default_rng(0).random(yh.size), gh)
    linear = LogisticRegression(max_iter=500).fit(data["Xt"], data["yt"] > 0)
    linear_ndcg = ndcg_at_k(yh, linear.decision_function(Xh), gh)
    mlp_ndcg = ndcg_at_k(yh, result.scorer.predict(Xh), gh)
    assert mlp_ndcg > linear_ndcg + 0.05 and mlp_ndcg > random_ndcg + 0.1, (mlp_ndcg, linear_ndcg, random_ndcg)
    # history, progress lines and the kept epoch agree
    assert result.loss == "pointwise" and 1 <= result.best_epoch <= len(result.history) <= 8
    assert result.decision == "configured"  # printed as "loss: pointwise (configured)": the loss named once
    assert result.valid_ndcg == max(h["valid_ndcg"] for h in result.history)
    assert result.valid_ndcg == pytest.approx(ndcg_at_k(data["yv"], result.scorer.predict(data["Xv"]), data["gv"]))
    assert sum(line.startswith("pointwise epoch ") for line in lines) == len(result.history)
    assert lines[-1].startswith(f"pointwise: kept epoch {result.best_epoch}")
    assert set(result.history[0]) >= {"epoch", "loss", "valid_ndcg", "seconds"}


@pytest.mark.parametrize("which", ["pointwise", "listwise"])
def test_numpy_scorer_equals_keras_predict(data: dict, pointwise: tuple, listwise: TrainResult, which: str) -> None:
    result = pointwise[0] if which == "pointwise" else listwise
    keras_scores = np.asarray(result.keras_model.predict(data["Xh"], verbose=0)).ravel()
    np.testing.assert_allclose(result.scorer.predict(data["Xh"]), keras_scores, atol=1e-5, rtol=0)
    assert result.scorer.output == ("sigmoid" if which == "pointwise" else "linear")
    assert result.scorer.meta["loss"] == which


def test_listwise_learns_the_ranking(data: dict[str, np.ndarray], listwise: TrainResult) -> None:
    random_ndcg = ndcg_at_k(data["yh"], np.random.default_rng(0).random(data["yh"].size), data["gh"])
    assert ndcg_at_k(data["yh"], listwise.scorer.predict(data["Xh"]), data["gh"]) > random_ndcg + 0.1


def test_keras_save_reload_and_bytes_round_trip(data: dict, pointwise: tuple, tmp_path: Path) -> None:
    result = pointwise[0]
    path = save_keras_model(result.keras_model, tmp_path / "model.keras")
    reloaded = load_keras_model(path)
    before = np.asarray(result.keras_model.predict(data["Xh"], verbose=0))
    np.testing.assert_array_equal(np.asarray(reloaded.predict(data["Xh"], verbose=0)), before)
    again = export_scorer(reloaded, result.scaler, NAMES)
    np.testing.assert_array_equal(again.predict(data["Xh"]), result.scorer.predict(data["Xh"]))
    back = NumpyMLPScorer.from_bytes(result.scorer.to_bytes())
    np.testing.assert_array_equal(back.predict(data["Xh"]), result.scorer.predict(data["Xh"]))
    with pytest.raises(ValueError, match=r"\.keras"):
        save_keras_model(result.keras_model, tmp_path / "model.h5")


def test_auto_trains_both_and_writes_the_decision_down(data: dict[str, np.ndarray]) -> None:
    lines: list[str] = []
    result = train(data, lines, loss="auto", hidden=(8,), epochs=2)
    assert set(result.compared) == {"pointwise", "listwise"}
    assert result.valid_ndcg == max(result.compared.values())
    other = ({"pointwise", "listwise"} - {result.loss}).pop()
    # "loss: pointwise (auto: valid NDCG@10 0.6123 vs listwise 0.6011)": the kept loss is named once, by the caller
    assert result.decision.startswith("auto: valid NDCG@10 ") and f" {other} " in result.decision
    assert result.loss not in result.decision
    assert f"{result.loss} kept ({result.decision})" in lines
    assert result.scorer.meta["auto"]["decision"] == result.decision
    assert {h["loss_kind"] for h in result.history} == {"pointwise", "listwise"}


def test_pad_lists_keeps_positives_first_and_skips_groups_without() -> None:
    X = np.arange(9, dtype=np.float32).reshape(9, 1)
    y = np.array([0, 0, 0, 2, 1, 0, 0, 0, 3])
    g = np.array([5, 5, 5, 5, 5, 6, 6, 7, 7])  # group 6 has no positive
    Xl, yl = pad_lists(X, y, g, max_list_size=3)
    assert Xl.shape == (2, 3, 1) and yl.shape == (2, 3)
    assert list(yl[0]) == [2, 1, 0] and list(Xl[0, :, 0]) == [3, 4, 0]  # positives kept, then row order
    assert list(yl[1]) == [3, 0, -1] and list(Xl[1, :, 0]) == [8, 7, 0]  # padded with label -1


def test_listwise_loss_matches_numpy() -> None:
    from fuserec_os.learn.model import _listwise_loss

    y = np.array([[3, 0, 1, -1], [0, 2, -1, -1]], dtype=np.float32)
    s = np.array([[0.5, -1.0, 2.0, 9.0], [1.0, 0.0, 5.0, 5.0]], dtype=np.float32)
    expected = []
    for yr, sr in zip(y, s, strict=True):
        m = yr >= 0
        target = (2.0 ** yr[m] - 1) / (2.0 ** yr[m] - 1).sum()
        logp = sr[m] - np.log(np.exp(sr[m]).sum())  # padding (huge scores) must not count
        expected.append(-(target * logp).sum())
    np.testing.assert_allclose(np.asarray(_listwise_loss(y, s)), expected, rtol=1e-5)


def test_scaler_uses_training_rows_and_guards_constant_columns() -> None:
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    sc = Scaler.fit(X)
    assert list(sc.mean) == [2.0, 5.0] and list(sc.std) == [1.0, 1.0]
    assert np.allclose(sc.transform(X), [[-1.0, 0.0], [1.0, 0.0]])


def test_train_rejects_bad_inputs(data: dict[str, np.ndarray]) -> None:
    cfg = ModelConfig(**TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has 8 columns, expected 3"):
        train_mlp(data["Xt"], data["yt"], data["gt"], data["Xv"], data["yv"], data["gv"], cfg, feature_names="abc")
    bad = data["Xt"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_mlp(bad, data["yt"], data["gt"], data["Xv"], data["yv"], data["gv"], cfg, feature_names=NAMES)


def test_model_config_defaults_and_errors_name_the_key() -> None:
    cfg = ModelConfig.from_dict(None)
    assert cfg.hidden == (512, 256, 128) and cfg.dropout == 0.5 and cfg.loss == "auto"
    assert (cfg.epochs, cfg.batch_size, cfg.patience, cfg.seed, cfg.max_list_size) == (20, 1024, 3, 7, 64)
    assert cfg.learning_rate == 1e-3 and cfg.blend_alphas == DEFAULT_ALPHAS and DEFAULT_ALPHAS[0] == 0.0
    got = ModelConfig.from_dict({"hidden": [64, 32], "loss": "auto", "blend_alphas": [0, 0.5, 1]})
    assert got.hidden == (64, 32) and got.loss == "auto" and got.blend_alphas == (0.0, 0.5, 1.0)
    for raw, match in [
        ({"dropuot": 0.1}, "model.dropuot"),
        ({"loss": "pairwise"}, "model.loss.*pointwise, listwise, auto"),
        ({"hidden": [64, 0]}, "model.hidden"),
        ({"hidden": 64}, "model.hidden"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"epochs": 0}, "model.epochs"),
        ({"batch_size": True}, "model.batch_size"),
        ({"learning_rate": -1}, "model.learning_rate"),
        ({"max_list_size": 1}, "model.max_list_size"),
        ({"blend_alphas": [0.5, 1.0]}, "must contain 0"),
        ({"blend_alphas": [0, 1.5]}, "model.blend_alphas"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ModelConfig.from_dict(raw)
    with pytest.raises(ConfigError, match="mapping"):
        ModelConfig.from_dict([1])  # type: ignore[arg-type]


def test_importing_the_training_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys, fuserec_os.learn.model\n"
        "print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_auto_without_any_engaged_training_candidate_trains_pointwise_alone() -> None:
    """Listwise learns from lists holding an engaged candidate; a tiny log may have none (the engaged product was
    not among the candidates): auto then keeps the pointwise model instead of failing the whole training."""
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    g = np.repeat(np.arange(4), 10)
    y_valid = np.zeros(40, dtype=np.int64)
    y_valid[::10] = 1
    lines: list[str] = []
    cfg = ModelConfig(hidden=(4,), epochs=1, patience=1, loss="auto")
    result = train_mlp(X, np.zeros(40), g, X, y_valid, g, cfg, feature_names=list("abcd"), progress=lines.append)
    assert result.loss == "pointwise" and "listwise needs a training list with an engaged candidate" in result.decision
    assert any("no training candidate was engaged" in line for line in lines)
