"""Training throughput: ``train_mlp`` on 1,000,000 synthetic examples with 96 features, default architecture.

What is measured: the wall time of ``train_mlp`` (scaler fit, Keras training, the per-epoch NumPy validation
NDCG@10, export) for ``--epochs`` epochs (early stopping off: patience = epochs), the seconds of each epoch as
the progress lines report them, and the process's peak RSS (``ru_maxrss``, which includes the generated data
and TensorFlow itself). Data: ``synthetic_ranking_data`` (labels depend non-linearly on 4 of the features),
groups of ``--group-size`` rows, plus a validation set of ``--valid`` rows. Pointwise by default; ``--listwise``
also trains the listwise loss on the same data. Target: pointwise under 90 s for 2 epochs.

Run from the repo root:  .venv/bin/python benchmarks/train.py [--rows 1000000] [--epochs 2] [--listwise]
Writes benchmarks/results/train.json; prints MET/MISSED and exits 0 either way.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_summary, verdict, write_results
from fuserec_os.learn.model import synthetic_ranking_data, train_mlp
from fuserec_os.learn.model_config import ModelConfig

NAME = "train"
TARGET_S = 90.0


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
    p.add_argument("--epochs", type=int, default=2, help="epochs (default: 2)")
    p.add_argument("--listwise", action="store_true", help="also train the listwise loss")
    p.add_argument("--seed", type=int, default=7, help="data and model seed (default: 7)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write train.json")
    args = p.parse_args(argv)
    if min(args.rows, args.group_size, args.valid, args.epochs) < 1 or args.features < 4:
        p.error("--rows, --group-size, --valid, --epochs must be >= 1 and --features >= 4")
    return args


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
