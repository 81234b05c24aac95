"""Scorer latency: the NumPy MLP scorer against Keras on the same weights, per request of K candidates.

What is measured, in one process, on the default architecture (96 inputs -> 512 -> 256 -> 128 -> 1, randomly
initialised by Keras, then exported with ``export_scorer``): for K = 10, 100, 1000 candidates, the wall time of

* ours: ``NumpyMLPScorer.predict(X)`` with BLAS limited to 1 thread (threadpoolctl), as a server worker runs it;
* Keras eager ``model(x, training=False)`` and ``model.predict_on_batch(x)`` (TensorFlow's default threads).

Each side gets untimed warm-up calls, then ``--calls`` timed calls (fewer for Keras, which is slower); median and
p99 per side, and the Keras/NumPy ratios. Scores are checked equal (max |diff|) on every K. The BLAS library
and kernel are logged (an old OPENBLAS_CORETYPE is 1.6-4x slower). Targets: K=100 median < 1 ms, K=1000 < 6 ms.

Run from the repo root:  .venv/bin/python benchmarks/score.py [--calls 2000]
Writes benchmarks/results/score.json; prints MET/MISSED per target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks._common import median, percentile, print_summary, verdict, write_results

NAME = "score"
TARGETS_MS = {100: 1.0, 1000: 6.0}
KS = (10, 100, 1000)
N_FEATURES = 96


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/score.py",
        description=(
            "Measure NumpyMLPScorer.predict latency (BLAS 1 thread) for K = 10, 100, 1000 candidates against "
            "Keras eager model(x) and predict_on_batch on the same weights (default architecture, 96 features), "
            "median and p99 per call, with ratios and a score equality check. Targets: K=100 median "
            f"< {TARGETS_MS[100]} ms, K=1000 < {TARGETS_MS[1000]} ms; prints MET/MISSED (exit 0 either way) "
            "and writes benchmarks/results/score.json."
        ),
    )
    p.add_argument("--calls", type=int, default=2000, help="timed NumPy calls per K (default: 2000)")
    p.add_argument("--keras-calls", type=int, default=200, help="timed Keras calls per K and API (default: 200)")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls per side and K (default: 50)")
    p.add_argument("--seed", type=int, default=7, help="seed for weights and inputs (default: 7)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write score.json")
    args = p.parse_args(argv)
    if args.calls < 10 or args.keras_calls < 10 or args.warmup < 0:
        p.error("--calls and --keras-calls must be >= 10, --warmup >= 0")
    return args


def timed(fn: Any, x: Any, calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn(x)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": median(ms), "p99_ms": percentile(ms, 99.0), "mean_ms": float(np.mean(ms)), "calls": len(ms)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_import = time.perf_counter()
    import keras  # the benchmark compares against Keras; the scorer itself never imports it

    import_s = time.perf_counter() - t_import
    from fuserec_os.learn.model import Scaler, _build, _inference_model, export_scorer
    from fuserec_os.learn.model_config import ModelConfig

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    names = [f"f{i}" for i in range(N_FEATURES)]
    X_fit = rng.normal(0, 2, (5000, N_FEATURES)).astype(np.float32)
    scaler = Scaler.fit(X_fit)
    cfg = ModelConfig()
    _, dense = _build(keras, N_FEATURES, cfg, listwise=False)
    model = _inference_model(dense, scaler, N_FEATURES)
    scorer = export_scorer(model, scaler, names)
    blas = [
        {k: p.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads", "filepath")}
        for p in threadpool_info()
    ]
    blas_line = "; ".join(f"{b['internal_api']} {b['version']} {b['architecture']}" for b in blas)
    print(f"BLAS: {blas_line}", flush=True)

    rows: dict[int, dict[str, Any]] = {}
    for k in KS:
        x = rng.normal(0, 2, (k, N_FEATURES)).astype(np.float32)
        with threadpool_limits(limits=1, user_api="blas"):
            ours = timed(scorer.predict, x, args.calls, args.warmup)
            ours_scores = scorer.predict(x)
        eager = timed(lambda v: model(v, training=False), x, args.keras_calls, args.warmup)
        on_batch = timed(model.predict_on_batch, x, args.keras_calls, args.warmup)
        keras_scores = np.asarray(model.predict_on_batch(x)).ravel()
        diff = float(np.max(np.abs(ours_scores - keras_scores)))
        r = {
            "numpy_blas1": stats(ours),
            "keras_eager_call": stats(eager),
            "keras_predict_on_batch": stats(on_batch),
            "max_abs_score_diff": diff,
        }
        r["ratio_eager_over_numpy"] = r["keras_eager_call"]["median_ms"] / r["numpy_blas1"]["median_ms"]
        r["ratio_on_batch_over_numpy"] = r["keras_predict_on_batch"]["median_ms"] / r["numpy_blas1"]["median_ms"]
        rows[k] = r
        print(
            f"K={k}: numpy {r['numpy_blas1']['median_ms']:.3f} ms (p99 {r['numpy_blas1']['p99_ms']:.3f}), "
            f"keras eager {r['keras_eager_call']['median_ms']:.3f} ms, predict_on_batch "
            f"{r['keras_predict_on_batch']['median_ms']:.3f} ms, max |diff| {diff:.2e}",
            flush=True,
        )

    targets = {
        k: {"median_ms_below": t, "met": rows[k]["numpy_blas1"]["median_ms"] < t, "verdict": ""}
        for k, t in TARGETS_MS.items()
    }
    for t in targets.values():
        t["verdict"] = verdict(bool(t["met"]))
    summary = []
    for k in KS:
        r = rows[k]
        summary.append(
            (
                f"K={k}",
                f"numpy {r['numpy_blas1']['median_ms']:.3f} ms median / {r['numpy_blas1']['p99_ms']:.3f} ms p99; "
                f"eager {r['keras_eager_call']['median_ms']:.2f} ms ({r['ratio_eager_over_numpy']:.1f}x), "
                f"predict_on_batch {r['keras_predict_on_batch']['median_ms']:.2f} ms "
                f"({r['ratio_on_batch_over_numpy']:.1f}x); max |diff| {r['max_abs_score_diff']:.1e}",
            )
        )
    for k, t in targets.items():
        summary.append((f"target K={k}", f"median < {t['median_ms_below']} ms: {t['verdict']}"))
    summary.append(("blas", blas_line))
    print_summary(f"score: NumpyMLPScorer vs Keras, {N_FEATURES} features, hidden {cfg.hidden}", summary)
    out = write_results(
        NAME,
        {
            "params": {
                "calls": args.calls,
                "keras_calls": args.keras_calls,
                "warmup": args.warmup,
                "seed": args.seed,
                "n_features": N_FEATURES,
                "hidden": list(cfg.hidden),
                "keras": keras.__version__,
                "keras_import_s": import_s,
            },
            "blas": blas,
            "method": (
                "NumpyMLPScorer.predict under threadpool_limits(1, blas) vs Keras model(x, training=False) and "
                "predict_on_batch (TF default threads) on the same weights, same inputs; perf_counter per call"
            ),
            "results": {str(k): v for k, v in rows.items()},
            "targets": {str(k): v for k, v in targets.items()},
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
