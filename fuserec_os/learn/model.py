"""Training the reranking MLP with Keras, and exporting it to a TensorFlow-free NumPy scorer.

This is the only module that imports TensorFlow/Keras, and only inside functions: ``import fuserec_os`` (or
this module) never loads TF (~6 s, ~700 MB). Serving uses :class:`~fuserec_os.rerank.scorer.NumpyMLPScorer`.

Inputs are standardised with a :class:`Scaler` fitted on the training rows only (mean/std, std 0 -> 1).
The network is ``Dense(h, relu) -> Dropout`` per hidden layer, then ``Dense(1)``:

* pointwise: binary cross-entropy on ``y > 0``, sigmoid output, batches of ``batch_size`` rows;
* listwise: each training search is one list, padded to the longest list (at most ``max_list_size``; padding
  masked out); the Dense layers are applied per item and the loss is the softmax cross-entropy between the list's
  scores and the target distribution proportional to ``2**y - 1`` (ListNet top-1 with NDCG's gains), linear
  output. Searches without a positive carry no target and are skipped. A search with more candidates than
  ``max_list_size`` is truncated keeping its positives first (highest label first), then its other candidates in
  their original (engine) order. Batches hold ``max(1, batch_size // max_list_size)`` lists.

Every epoch the validation NDCG@10 is computed in NumPy (through the exported scorer, so the export path is
exercised every epoch); training stops after ``patience`` epochs without improvement and the best epoch's
weights are restored. Seeds are fixed (``keras.utils.set_random_seed``) and TF op determinism is enabled.

:class:`TrainResult.keras_model` is a per-item inference model ``raw features [n, d] -> score [n, 1]`` for
either loss (a ``Normalization`` layer with the training scaler, then the trained Dense layers), so its
``predict`` is directly comparable with the NumPy scorer and it round-trips through ``.keras`` files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fuserec_os.learn.model_config import ModelConfig
from fuserec_os.learn.sampling import Sample, sample_candidates
from fuserec_os.rerank.metrics import GroupIndex, ndcg_at_k
from fuserec_os.rerank.scorer import NumpyMLPScorer

Progress = Callable[[str], None]
MASK_LOGIT = -1e9
#: Optimizer steps per call into TensorFlow's compiled step. Training on the small batches of a sampled set is
#: bound by steps, and one Python-to-graph dispatch per step cost about a fifth of each epoch on this 2-core
#: machine; 32 steps per dispatch do the same arithmetic in the same order (the same weights to float noise).
STEPS_PER_EXECUTION = 32


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation fitted on training rows: ``(x - mean) / std`` (std 0 or NaN -> 1)."""

    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]

    @classmethod
    def fit(cls, X: npt.ArrayLike) -> Scaler:
        x = np.asarray(X)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"cannot fit a scaler on an array of shape {x.shape}")
        mean = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        x = np.asarray(X, dtype=np.float64)
        return ((x - self.mean) / self.std).astype(np.float32)


@dataclass
class TrainResult:
    """What :func:`train_mlp` produced. ``decision`` says why ``loss`` was used, without naming it again (it is
    printed as ``loss: <loss> (<decision>)``): ``configured``, or for ``loss: auto`` e.g. ``auto: valid NDCG@10
    0.5581 vs listwise 0.5541``; ``compared`` then holds both losses' validation NDCG@10."""

    scorer: NumpyMLPScorer
    history: list[dict[str, Any]]
    loss: str
    valid_ndcg: float
    keras_model: Any
    scaler: Scaler
    best_epoch: int
    compared: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------ data helpers


def _check_inputs(
    X: npt.ArrayLike, y: npt.ArrayLike, g: npt.ArrayLike, what: str, d: int | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[Any]]:
    x = np.asarray(X, dtype=np.float32)
    yy = np.asarray(y).ravel()
    gg = np.asarray(g).ravel()
    if x.ndim != 2:
        raise ValueError(f"X_{what} must be 2-D [rows, features]; got shape {x.shape}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"X_{what} has {x.shape[1]} columns, expected {d} (one per feature name)")
    if not (x.shape[0] == yy.size == gg.size) or x.shape[0] == 0:
        raise ValueError(
            f"X_{what}, y_{what}, g_{what} must be non-empty and equally long (got {x.shape[0]}, {yy.size}, {gg.size})"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"X_{what} holds NaN or inf (missing features must be 0 plus a __missing indicator)")
    if yy.min() < 0 or not np.all(np.equal(np.mod(yy, 1), 0)):
        raise ValueError(f"y_{what} must hold graded labels 0, 1, 2, 3 (whole numbers >= 0)")
    return x, yy.astype(np.int64), gg


def pad_lists(
    X: npt.NDArray[np.float32], y: npt.ArrayLike, groups: npt.ArrayLike, max_list_size: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``(X_lists [G, L, d], y_lists [G, L])`` for the groups with a positive label; padding label is -1.

    A group longer than ``L`` keeps its positives first (highest label first), then the rest in row order.
    """
    yy = np.asarray(y).ravel()
    gi = GroupIndex.of(groups)
    n = yy.size
    order = np.lexsort((np.arange(n), -yy, gi.inverse))
    sorted_g = gi.inverse[order]
    starts = np.searchsorted(sorted_g, np.arange(gi.n_groups))
    rank = np.arange(n) - starts[sorted_g]
    has_pos = np.bincount(gi.inverse[yy > 0], minlength=gi.n_groups) > 0
    new_id = np.cumsum(has_pos) - 1
    keep = (rank < max_list_size) & has_pos[sorted_g]
    rows = order[keep]
    lists = new_id[sorted_g[keep]]
    slots = rank[keep]
    n_lists = int(has_pos.sum())
    X_lists = np.zeros((n_lists, max_list_size, X.shape[1]), dtype=np.float32)
    y_lists = np.full((n_lists, max_list_size), -1.0, dtype=np.float32)
    X_lists[lists, slots] = X[rows]
    y_lists[lists, slots] = yy[rows]
    return X_lists, y_lists


# ------------------------------------------------------------------------------------------ keras pieces


def _keras() -> Any:
    # TensorFlow's C++ logging (oneDNN notes, CUDA probing on a GPU-less machine) would bury the training
    # progress in noise; keep warnings and errors unless the user asked for more.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def _dense_layers(model: Any) -> list[Any]:
    keras = _keras()
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def _inference_model(dense: Sequence[Any], scaler: Scaler, d: int) -> Any:
    """raw features [n, d] -> score [n, 1]: Normalization(training scaler), then the trained Dense layers."""
    keras = _keras()
    inp = keras.Input(shape=(d,), name="features")
    h = keras.layers.Normalization(mean=scaler.mean, variance=scaler.std**2, name="scaler")(inp)
    for layer in dense:
        h = layer(h)
    return keras.Model(inp, h, name="fuserec_mlp")


def _build(keras: Any, d: int, cfg: ModelConfig, listwise: bool, list_size: int = 0) -> tuple[Any, list[Any]]:
    """The training model and its Dense layers (shared with the inference model); listwise lists of
    ``list_size`` slots (default ``cfg.max_list_size``)."""
    dense: list[Any] = []
    slots = list_size or cfg.max_list_size
    inp = keras.Input(shape=(slots, d) if listwise else (d,), name="features")
    h = inp
    for i, units in enumerate(cfg.hidden):
        layer = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")
        dense.append(layer)
        h = layer(h)
        if cfg.dropout > 0:
            h = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(h)
    out = keras.layers.Dense(1, activation="linear" if listwise else "sigmoid", name="score")
    dense.append(out)
    h = out(h)
    if listwise:
        h = keras.layers.Reshape((slots,), name="list_scores")(h)
    return keras.Model(inp, h, name=f"fuserec_mlp_{'listwise' if listwise else 'pointwise'}_train"), dense


def _listwise_loss(y_true: Any, y_pred: Any) -> Any:
    """Masked softmax cross-entropy against ``(2**y - 1) / sum(2**y - 1)``; padding has y = -1."""
    ops = _keras().ops
    mask = ops.greater_equal(y_true, 0.0)
    gains = ops.where(mask, ops.power(2.0, y_true) - 1.0, 0.0)
    target = gains / ops.maximum(ops.sum(gains, axis=1, keepdims=True), 1e-12)
    logits = ops.where(mask, y_pred, MASK_LOGIT)
    logp = ops.log_softmax(logits, axis=1)
    return -ops.sum(ops.where(mask, target * logp, 0.0), axis=1)


def _offset_bce(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy of ``sigmoid(logit(y_pred) + offset)`` against the label; ``y_true`` is
    ``[label, offset]`` per row. Training on a sample whose negatives were kept at rate ``r`` with offset
    ``log(1 / r)`` makes ``y_pred`` estimate the population's probability (case-control offset correction)."""
    ops = _keras().ops
    eps = 1e-7
    p = ops.clip(ops.reshape(y_pred, (-1,)), eps, 1.0 - eps)
    label, offset = y_true[:, 0], y_true[:, 1]
    logit = ops.log(p) - ops.log(1.0 - p) + offset
    # softplus(logit) - label * logit, written stably
    return ops.maximum(logit, 0.0) - logit * label + ops.log(1.0 + ops.exp(-ops.abs(logit)))


def export_scorer(
    keras_model: Any, scaler: Scaler, feature_names: Sequence[str], meta: Mapping[str, Any] | None = None
) -> NumpyMLPScorer:
    """A :class:`NumpyMLPScorer` from a trained model's Dense layers (in order) and the training scaler.

    Works on the training model (pointwise or listwise: Dense layers act per item either way) and on the
    inference model; the output activation is read from the last Dense layer.
    """
    dense = _dense_layers(keras_model)
    if not dense:
        raise ValueError("the model has no Dense layers to export")
    weights = [w for layer in dense for w in layer.get_weights()]
    activation = dense[-1].get_config().get("activation")
    output = "sigmoid" if activation == "sigmoid" else "linear"
    if activation not in ("sigmoid", "linear"):
        raise ValueError(f"the last Dense layer's activation {activation!r} is neither sigmoid nor linear")
    return NumpyMLPScorer(weights, scaler.mean, scaler.std, feature_names, output=output, meta=meta)  # type: ignore[arg-type]


def save_keras_model(keras_model: Any, path: str | Path) -> Path:
    """Save as a ``.keras`` file (the suffix is required by Keras 3)."""
    p = Path(path)
    if p.suffix != ".keras":
        raise ValueError(f"{p}: Keras model files must end in .keras")
    keras_model.save(p)
    return p


def load_keras_model(path: str | Path) -> Any:
    """Load a model saved by :func:`save_keras_model`, for inference (not compiled)."""
    return _keras().saving.load_model(Path(path), compile=False)


# ------------------------------------------------------------------------------------------ training


def _train_one(
    loss: str,
    Xs_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    g_train: npt.NDArray[Any],
    X_valid: npt.NDArray[np.float32],
    y_valid: npt.NDArray[np.int64],
    g_valid: npt.NDArray[Any],
    scaler: Scaler,
    cfg: ModelConfig,
    feature_names: tuple[str, ...],
    say: Progress,
    sample: Sample | None = None,
) -> TrainResult:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    listwise = loss == "listwise"
    d = Xs_train.shape[1]
    opt = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    weight: npt.NDArray[np.float32] | None = None
    if listwise:
        x_fit, y_fit = pad_lists(Xs_train, y_train, g_train, cfg.max_list_size)
        if x_fit.shape[0] == 0:
            raise ValueError("listwise training needs at least one training search with a positive label")
        # padding is masked out of the loss: lists only as long as the longest one, the same loss for less work
        slots = max(1, int((y_fit >= 0).sum(axis=1).max()))
        x_fit, y_fit = x_fit[:, :slots], y_fit[:, :slots]
        model, dense = _build(keras, d, cfg, listwise, slots)
        batch = max(1, cfg.batch_size // cfg.max_list_size)
        model.compile(optimizer=opt, loss=_listwise_loss, steps_per_execution=STEPS_PER_EXECUTION)
    else:
        model, dense = _build(keras, d, cfg, listwise)
        x_fit, y_fit = Xs_train, (y_train > 0).astype(np.float32)
        loss_fn: Any = keras.losses.BinaryCrossentropy()
        if sample is not None and sample.applied:
            x_fit, y_fit = x_fit[sample.index], y_fit[sample.index]
            if sample.offset is not None:  # the label and the row's logit offset travel together as y
                y_fit = np.stack([y_fit, sample.offset], axis=1)
                loss_fn = _offset_bce
            else:
                weight = sample.weight
        batch = cfg.sample.batch_size if sample is not None and sample.applied else cfg.batch_size
        model.compile(optimizer=opt, loss=loss_fn, steps_per_execution=STEPS_PER_EXECUTION)
    meta: dict[str, Any] = {"loss": loss, "hidden": list(cfg.hidden), "dropout": cfg.dropout, "seed": cfg.seed}
    if not listwise and sample is not None and sample.applied:
        meta["sample"] = sample.summary()

    history: list[dict[str, Any]] = []
    state: dict[str, Any] = {"best": -1.0, "best_epoch": 0, "weights": None, "t0": 0.0, "stale": 0}

    class EarlyStopOnNDCG(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            state["t0"] = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            scorer = export_scorer(model, scaler, feature_names)
            ndcg = ndcg_at_k(y_valid, scorer.predict(X_valid), g_valid, 10)
            seconds = time.perf_counter() - state["t0"]
            train_loss = float((logs or {}).get("loss", float("nan")))
            improved = ndcg > state["best"]
            history.append(
                {"epoch": epoch + 1, "loss_kind": loss, "loss": train_loss, "valid_ndcg": ndcg, "seconds": seconds}
            )
            say(
                f"{loss} epoch {epoch + 1}/{cfg.epochs}: loss {train_loss:.4f}, valid NDCG@10 {ndcg:.4f}"
                f"{' (best)' if improved else ''}, {seconds:.1f} s"
            )
            if improved:
                state.update(best=ndcg, best_epoch=epoch + 1, weights=model.get_weights(), stale=0)
            else:
                state["stale"] += 1
                if state["stale"] >= cfg.patience:
                    say(f"{loss}: no better validation NDCG@10 for {cfg.patience} epoch(s); stopping")
                    self.model.stop_training = True

    model.fit(
        x_fit, y_fit, sample_weight=weight, batch_size=batch, epochs=cfg.epochs, shuffle=True, verbose=0,
        callbacks=[EarlyStopOnNDCG()],
    )  # fmt: skip
    if state["weights"] is not None:
        model.set_weights(state["weights"])
    say(f"{loss}: kept epoch {state['best_epoch']} (valid NDCG@10 {state['best']:.4f})")
    meta["best_epoch"] = state["best_epoch"]
    meta["valid_ndcg"] = state["best"]
    scorer = export_scorer(model, scaler, feature_names, meta)
    return TrainResult(
        scorer=scorer,
        history=history,
        loss=loss,
        valid_ndcg=float(state["best"]),
        keras_model=_inference_model(dense, scaler, d),
        scaler=scaler,
        best_epoch=int(state["best_epoch"]),
        compared={loss: float(state["best"])},
        decision="configured",
    )


def train_mlp(
    X_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    g_train: npt.ArrayLike,
    X_valid: npt.ArrayLike,
    y_valid: npt.ArrayLike,
    g_valid: npt.ArrayLike,
    cfg: ModelConfig,
    *,
    feature_names: Sequence[str],
    progress: Progress | None = None,
    ranks_train: npt.ArrayLike | None = None,
) -> TrainResult:
    """Train the reranking MLP; ``y`` graded labels (0..3), ``g`` group (search) ids, one per row.

    ``cfg.loss == "auto"`` trains both losses (same seed, same data) and keeps the better validation NDCG@10;
    a tie keeps pointwise (calibrated probabilities, simpler batches). ``compared`` and ``decision`` record it.
    The pointwise loss trains on a weighted sample of the training rows when ``cfg.sample`` says so (see
    :mod:`fuserec_os.learn.sampling`; ``ranks_train`` is the engine's rank of each training row, None for the
    row order within its search); the listwise loss and the validation set always use every row.
    TensorFlow's native start-up notices are filtered out of stderr (see :mod:`fuserec_os.learn.native_log`).
    """
    from fuserec_os.learn.native_log import filtered_native_stderr

    with filtered_native_stderr():
        return _train_mlp(
            X_train, y_train, g_train, X_valid, y_valid, g_valid, cfg, feature_names=feature_names,
            progress=progress, ranks_train=ranks_train,
        )  # fmt: skip


def _train_mlp(
    X_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    g_train: npt.ArrayLike,
    X_valid: npt.ArrayLike,
    y_valid: npt.ArrayLike,
    g_valid: npt.ArrayLike,
    cfg: ModelConfig,
    *,
    feature_names: Sequence[str],
    progress: Progress | None = None,
    ranks_train: npt.ArrayLike | None = None,
) -> TrainResult:
    """Train the reranking MLP; ``y`` graded labels (0..3), ``g`` group (search) ids, one per row.

    ``cfg.loss == "auto"`` trains both losses (same seed, same data) and keeps the better validation NDCG@10;
    a tie keeps pointwise (calibrated probabilities, simpler batches). ``compared`` and ``decision`` record it.
    On a training set large enough to be sampled (``cfg.sample``), ``auto`` trains the pointwise loss only: the
    listwise loss needs whole lists (a sampled softmax measured 0.03 NDCG@10 below whole lists on the
    ``benchmarks/train.py --compare-sampling`` log), so it would cost the time sampling saves.
    """
    say: Progress = progress or (lambda _msg: None)
    names = tuple(str(n) for n in feature_names)
    xt, yt, gt = _check_inputs(X_train, y_train, g_train, "train", len(names))
    xv, yv, gv = _check_inputs(X_valid, y_valid, g_valid, "valid", len(names))
    t0 = time.perf_counter()
    scaler = Scaler.fit(xt)
    xs = scaler.transform(xt)
    losses = ("pointwise", "listwise") if cfg.loss == "auto" else (cfg.loss,)
    sample = None
    if "pointwise" in losses:
        sample = sample_candidates(yt, gt, ranks_train, cfg.sample, cfg.seed)
        if sample.applied:
            say(f"pointwise training on {sample.rows:,} of {sample.rows_before:,} rows ({sample.reason})")
            if cfg.loss == "auto":
                losses = ("pointwise",)
                say("loss auto on a sampled training set: pointwise only (the listwise loss needs whole lists)")
    if cfg.loss == "auto" and len(losses) == 2 and not (yt > 0).any():
        losses = ("pointwise",)
        say("loss auto: no training candidate was engaged, so no list to learn from: pointwise only")
    results = [_train_one(loss, xs, yt, gt, xv, yv, gv, scaler, cfg, names, say, sample) for loss in losses]
    best = results[0]
    if len(results) == 2:
        pw, lw = results
        best = lw if lw.valid_ndcg > pw.valid_ndcg else pw
        other = pw if best is lw else lw
        best.compared = {"pointwise": pw.valid_ndcg, "listwise": lw.valid_ndcg}
        tie = "" if best.valid_ndcg > other.valid_ndcg else " (a tie keeps the calibrated one)"
        best.decision = f"auto: valid NDCG@10 {best.valid_ndcg:.4f} vs {other.loss} {other.valid_ndcg:.4f}{tie}"
        best.history = pw.history + lw.history
        best.scorer.meta["auto"] = {"compared": best.compared, "decision": best.decision}
        say(f"{best.loss} kept ({best.decision})")
    elif cfg.loss == "auto":
        sampled = sample is not None and sample.applied
        best.decision = (
            "auto: the training set is sampled, and listwise needs whole lists"
            if sampled
            else "auto: listwise needs a training list with an engaged candidate"
        )
        best.scorer.meta["auto"] = {"compared": best.compared, "decision": best.decision}
    best.seconds = time.perf_counter() - t0
    return best


def synthetic_ranking_data(
    n_groups: int, group_size: int, n_features: int, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int8], npt.NDArray[np.int32]]:
    """``(X, y, groups)`` for tests and benchmarks: labels depend on a few features non-linearly.

    Relevance ``r = 1.5 * x0 * x1 + sin(2 * x2) + 0.8 * |x3|`` (an interaction, a wave, a V): a linear model
    on the raw features sees almost none of it. ``y = digitize(r + noise, [1.0, 1.8, 2.5])`` in 0..3; the
    other features are noise. ``n_features`` must be >= 4.
    """
    if n_features < 4:
        raise ValueError("synthetic_ranking_data needs at least 4 features")
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    X = rng.standard_normal((n, n_features), dtype=np.float32)
    r = 1.5 * X[:, 0] * X[:, 1] + np.sin(2.0 * X[:, 2]) + 0.8 * np.abs(X[:, 3])
    noisy = r + rng.normal(0.0, 0.5, n).astype(np.float32)
    y = np.digitize(noisy, [1.0, 1.8, 2.5]).astype(np.int8)
    groups = np.repeat(np.arange(n_groups, dtype=np.int32), group_size)
    return X, y, groups
