"""Training throughput: ``train_mlp`` on 1,000,000 synthetic examples with 96 features, default architecture.

What is measured: the wall time of ``train_mlp`` (scaler fit, Keras training, the per-epoch NumPy validation
NDCG@10, export) for ``--epochs`` epochs (early stopping off: patience = epochs), the seconds of each epoch as
the progress lines report them, and the process's peak RSS (``ru_maxrss``, which includes the generated data
and TensorFlow itself). Data: ``synthetic_ranking_data`` (labels depend non-linearly on 4 of the features),
groups of ``--group-size`` rows, plus a validation set of ``--valid`` rows. Pointwise by default; ``--listwise``
also trains the listwise loss on the same data. Target: pointwise under 90 s for 2 epochs.

Run from the repo root:  .venv/bin/python benchmarks/train.py [--rows 1000000] [--epochs 2] [--listwise]
Writes benchmarks/results/train.json; prints MET/MISSED and exits 0 either way.

``--compare-sampling`` (issue 11, "Training that scales") measures instead, in one run, full and sampled
pointwise training (``model.sample``; ``--loss listwise`` to see that the listwise loss is never sampled) on
wide candidate lists shaped like a 40k-click log: ``--searches``
training searches (default 40,000) of ``--list-size`` candidates (default 50; 2,000,000 rows) with few
positives per list (``--positives``, default 4% of the rows: 2 per list), an engine score that sees relevance
through noise (a feature, and the ranks sampling keeps the top of), plus whole validation and test lists
(``--valid-searches``, ``--test-searches``). Both runs use the default schedule (``model.epochs`` 20 as a
maximum, early stopping after ``model.patience`` 3 epochs without a better validation NDCG@10) unless
``--epochs`` / ``--patience`` say otherwise. Printed: wall time, seconds per epoch, epochs run and test
NDCG@10 on the whole test lists for each, and the difference. Targets: sampled < 180 s, |NDCG@10 difference|
<= 0.005. Writes benchmarks/results/train_sampling.json.

    .venv/bin/python benchmarks/train.py --compare-sampling [--searches 40000] [--list-size 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_summary, verdict, write_results
from fuserec_os.learn.model import synthetic_ranking_data, train_mlp
from fuserec_os.learn.model_config import ModelConfig, SampleConfig
from fuserec_os.rerank.metrics import ndcg_at_k

NAME = "train"
TARGET_S = 90.0
SAMPLED_TARGET_S = 180.0
NDCG_TOLERANCE = 0.005


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/train.py",
        description=(
            "Measure train_mlp on synthetic data (default 1,000,000 rows x 96 features, 2 epochs, default "
            "architecture 512-256-128, dropout 0.5, batch 1024): total seconds, seconds per epoch and peak RSS. "
            f"Target: pointwise < {TARGET_S:.0f} s; prints MET/MISSED (exit 0 either way) and writes "
            "benchmarks/results/train.json."
        ),
    )
    p.add_argument("--rows", type=int, default=1_000_000, help="training rows (default: 1000000)")
    p.add_argument("--features", type=int, default=96, help="features (default: 96)")
    p.add_argument("--group-size", type=int, default=40, help="rows per search (default: 40)")
    p.add_argument("--valid", type=int, default=50_000, help="validation rows (default: 50000)")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs (default: 2; with --compare-sampling the model default, 20)"
    )
    p.add_argument("--listwise", action="store_true", help="also train the listwise loss")
    p.add_argument("--seed", type=int, default=7, help="data and model seed (default: 7)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write train.json")
    c = p.add_argument_group("--compare-sampling (full vs sampled training on wide lists)")
    c.add_argument("--compare-sampling", action="store_true", help="full vs sampled training, in one run")
    c.add_argument("--searches", type=int, default=40_000, help="training searches (default: 40000)")
    c.add_argument("--list-size", type=int, default=50, help="candidates per search (default: 50)")
    c.add_argument("--valid-searches", type=int, default=2000, help="validation searches (default: 2000)")
    c.add_argument("--test-searches", type=int, default=4000, help="test searches (default: 4000)")
    c.add_argument("--positives", type=float, default=0.04, help="share of rows with a label > 0 (default: 0.04)")
    c.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: model default)")
    c.add_argument("--keep-top", type=int, default=None, help="model.sample.keep_top (default: model default)")
    c.add_argument("--rate", type=float, default=None, help="model.sample.rate (default: model default)")
    c.add_argument("--skip-full", action="store_true", help="only the sampled run (no comparison)")
    c.add_argument(
        "--loss",
        choices=("pointwise", "listwise"),
        default="pointwise",
        help="the loss (default: pointwise, the one model.sample samples; listwise trains whole lists either way)",
    )
    args = p.parse_args(argv)
    if args.compare_sampling:
        if min(args.searches, args.list_size, args.valid_searches, args.test_searches) < 1:
            p.error("--searches, --list-size, --valid-searches, --test-searches must be >= 1")
        if not 0 < args.positives < 1:
            p.error("--positives must be in (0, 1)")
        return args
    if min(args.rows, args.group_size, args.valid, args.epochs) < 1 or args.features < 4:
        p.error("--rows, --group-size, --valid, --epochs must be >= 1 and --features >= 4")
    return args


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def wide_lists(
    n_searches: int, list_size: int, n_features: int, positives: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, groups, engine_ranks)``: ``synthetic_ranking_data``'s features and relevance, labels for only the
    top ``positives`` share of rows (graded 1..3 at the top 100%, 33% and 10% of them), and an engine score
    (relevance plus noise, feature 4) whose order within each search gives the engine's ranks (1-based)."""
    X, _, g = synthetic_ranking_data(n_searches, list_size, n_features, seed)
    rng = np.random.default_rng(seed + 1000)
    r = 1.5 * X[:, 0] * X[:, 1] + np.sin(2.0 * X[:, 2]) + 0.8 * np.abs(X[:, 3])
    noisy = r + rng.normal(0.0, 0.5, r.size).astype(np.float32)
    cuts = np.quantile(noisy, [1 - positives, 1 - positives / 3, 1 - positives / 10])
    y = np.digitize(noisy, cuts).astype(np.int8)
    engine = (r + rng.normal(0.0, 2.0, r.size)).astype(np.float32)
    X[:, 4] = engine
    order = np.lexsort((-engine, g))
    ranks = np.empty(r.size, dtype=np.float64)
    ranks[order] = np.tile(np.arange(1, list_size + 1), n_searches)
    return X, y, g, ranks


def compare_sampling(args: argparse.Namespace) -> int:
    f = args.features
    Xt, yt, gt, rt = wide_lists(args.searches, args.list_size, f, args.positives, args.seed)
    Xv, yv, gv, _ = wide_lists(args.valid_searches, args.list_size, f, args.positives, args.seed + 1)
    Xs, ys, gs, rs = wide_lists(args.test_searches, args.list_size, f, args.positives, args.seed + 2)
    names = [f"f{i}" for i in range(f)]
    engine_ndcg = ndcg_at_k(ys, -rs, gs, 10)
    print(
        f"data: {Xt.shape[0]:,} training rows ({args.searches:,} searches x {args.list_size}, "
        f"{(yt > 0).mean():.1%} with a label > 0) x {f} features; whole lists for validation "
        f"({Xv.shape[0]:,} rows) and test ({Xs.shape[0]:,} rows); engine order test NDCG@10 {engine_ndcg:.4f}",
        flush=True,
    )
    default = ModelConfig()
    sample = SampleConfig(
        enabled=True,
        keep_top=default.sample.keep_top if args.keep_top is None else args.keep_top,
        rate=default.sample.rate if args.rate is None else args.rate,
    )
    base = ModelConfig(
        epochs=args.epochs or default.epochs,
        patience=args.patience or default.patience,
        seed=args.seed,
        loss=args.loss,
    )
    runs: dict[str, dict[str, Any]] = {}
    modes = ("sampled",) if args.skip_full else ("sampled", "full")  # sampled first: its number comes early
    for mode in modes:
        cfg = replace(base, sample=sample if mode == "sampled" else SampleConfig(enabled=False))
        print(f"{mode}:", flush=True)
        t0 = time.perf_counter()
        result = train_mlp(
            Xt, yt, gt, Xv, yv, gv, cfg, feature_names=names, ranks_train=rt,
            progress=lambda line: print(f"  {line}", flush=True),
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        test = ndcg_at_k(ys, result.scorer.predict(Xs), gs, 10)
        epochs = [h["seconds"] for h in result.history]
        runs[mode] = {
            "seconds": seconds,
            "epochs": len(epochs),
            "best_epoch": result.best_epoch,
            "epoch_seconds": epochs,
            "rows": int(result.scorer.meta.get("sample", {}).get("rows", Xt.shape[0])),
            "valid_ndcg": result.valid_ndcg,
            "test_ndcg": test,
            "peak_rss_mib": peak_rss_mib(),
        }
        print(f"{mode}: {seconds:.1f} s, test NDCG@10 {test:.4f}", flush=True)

    rows = [("engine order", f"test NDCG@10 {engine_ndcg:.4f}")]
    for mode, r in runs.items():
        per_epoch = sum(r["epoch_seconds"]) / max(1, len(r["epoch_seconds"]))
        rows.append(
            (
                mode,
                f"{r['rows']:,} rows; {r['seconds']:.1f} s total, {per_epoch:.1f} s/epoch, {r['epochs']} epochs "
                f"(best {r['best_epoch']}); valid NDCG@10 {r['valid_ndcg']:.4f}, test NDCG@10 {r['test_ndcg']:.4f}",
            )
        )
    sampled = runs["sampled"]
    met_time = sampled["seconds"] < SAMPLED_TARGET_S
    diff = None
    if "full" in runs:
        full = runs["full"]
        diff = sampled["test_ndcg"] - full["test_ndcg"]
        rows.append(("difference", f"test NDCG@10 {diff:+.4f}; {full['seconds'] / sampled['seconds']:.1f}x faster"))
    rows.append(("target", f"sampled < {SAMPLED_TARGET_S:.0f} s: {verdict(met_time)}"))
    met_ndcg = diff is not None and abs(diff) <= NDCG_TOLERANCE
    rows.append(("target", f"|test NDCG@10 difference| <= {NDCG_TOLERANCE}: {verdict(met_ndcg)}"))
    print_summary(
        f"train --compare-sampling: {base.loss}, {Xt.shape[0]:,} rows x {f} features, hidden {base.hidden}, "
        f"max {base.epochs} epochs, patience {base.patience}, batch {base.batch_size}; sample keep_top "
        f"{sample.keep_top}, rate {sample.rate:g}, correction {sample.correction}, batch {sample.batch_size}",
        rows,
    )
    out = write_results(
        f"{NAME}_sampling",
        {
            "params": {
                "loss": base.loss,
                "searches": args.searches,
                "list_size": args.list_size,
                "features": f,
                "positives": args.positives,
                "valid_searches": args.valid_searches,
                "test_searches": args.test_searches,
                "epochs": base.epochs,
                "patience": base.patience,
                "keep_top": sample.keep_top,
                "rate": sample.rate,
                "seed": args.seed,
            },
            "engine_test_ndcg": engine_ndcg,
            "runs": runs,
            "test_ndcg_difference": diff,
            "target": {
                "sampled_seconds_below": SAMPLED_TARGET_S,
                "ndcg_tolerance": NDCG_TOLERANCE,
                "met": met_time and met_ndcg,
                "verdict": verdict(met_time and met_ndcg),
            },
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare_sampling:
        return compare_sampling(args)
    Xt, yt, gt = synthetic_ranking_data(args.rows // args.group_size, args.group_size, args.features, args.seed)
    Xv, yv, gv = synthetic_ranking_data(
        max(1, args.valid // args.group_size), args.group_size, args.features, args.seed + 1
    )
    names = [f"f{i}" for i in range(args.features)]
    rss_data = peak_rss_mib()
    print(
        f"data: {Xt.shape[0]:,} x {Xt.shape[1]} train, {Xv.shape[0]:,} valid; peak RSS {rss_data:,.0f} MiB", flush=True
    )
    base = ModelConfig(epochs=args.epochs, patience=args.epochs, seed=args.seed)

    runs: dict[str, dict[str, Any]] = {}
    for loss in ("pointwise", "listwise") if args.listwise else ("pointwise",):
        t0 = time.perf_counter()
        result = train_mlp(
            Xt, yt, gt, Xv, yv, gv, replace(base, loss=loss), feature_names=names,
            progress=lambda line: print(f"  {line}", flush=True),
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        runs[loss] = {
            "seconds": seconds,
            "epoch_seconds": [h["seconds"] for h in result.history],
            "history": result.history,
            "valid_ndcg": result.valid_ndcg,
            "peak_rss_mib": peak_rss_mib(),
        }
        print(f"{loss}: {seconds:.1f} s total, valid NDCG@10 {result.valid_ndcg:.4f}", flush=True)

    pw = runs["pointwise"]
    met = pw["seconds"] < TARGET_S
    rows = []
    for loss, r in runs.items():
        epochs = ", ".join(f"{s:.1f}" for s in r["epoch_seconds"])
        rows.append((loss, f"{r['seconds']:.1f} s total; per epoch {epochs} s; valid NDCG@10 {r['valid_ndcg']:.4f}"))
    rows.append(("peak RSS", f"{max(r['peak_rss_mib'] for r in runs.values()):,.0f} MiB (data alone {rss_data:,.0f})"))
    rows.append(("target", f"pointwise < {TARGET_S:.0f} s: {verdict(met)}"))
    print_summary(
        f"train: {Xt.shape[0]:,} rows x {args.features} features, {args.epochs} epochs, hidden {base.hidden}", rows
    )
    out = write_results(
        NAME,
        {
            "params": {
                "rows": int(Xt.shape[0]),
                "features": args.features,
                "group_size": args.group_size,
                "valid_rows": int(Xv.shape[0]),
                "epochs": args.epochs,
                "hidden": list(base.hidden),
                "dropout": base.dropout,
                "batch_size": base.batch_size,
                "seed": args.seed,
            },
            "runs": runs,
            "peak_rss_mib_after_data": rss_data,
            "target": {"pointwise_seconds_below": TARGET_S, "met": met, "verdict": verdict(met)},
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
