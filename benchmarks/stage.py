"""The rerank stage alone: candidates in, one page out, no I/O (``RerankStage.run``).

Setup (not timed): a generated catalog (default 5,000 products), synthetic behaviour (default 200k events of
5,000 users, heavy-tailed activity, Zipf-like product popularity) turned into user profiles, product latent
vectors, query statistics and item signals (held in memory, as a proxy holds them) exactly as the profile job
builds them; a NumPy MLP of the default architecture
(512-256-128, random weights) over the default feature set, loaded as a :class:`LoadedModel` (the item table
precomputed once, as at model load).

Timed, per window (default 100 and 1000 engine candidates plus 20 behavioural ones): ``RerankStage.run`` for a
mix of users (with and without a profile) and queries (with and without statistics), ``explain`` off; the
engine hits are random catalog products with descending scores. Reported: median, p95, p99 per call and the
share of each step (features, score) at the median. Target: window 100 under 1.5 ms at the median. BLAS is
limited to one thread, as a multi-worker server should run it.

Run from the repo root:  .venv/bin/python benchmarks/stage.py [--windows 100,1000] [--calls 2000]
Writes benchmarks/results/stage.json; prints MET/MISSED and exits 0 either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks._common import median, percentile, print_summary, verdict, write_results
from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.features.spec import DEFAULT_FEATURES
from fuserec_os.profiles.compute import build_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import ItemSignals
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.scorer import NumpyMLPScorer
from fuserec_os.rerank.stage import EngineHit, LoadedModel, RerankSettings, RerankStage, StageInput
from fuserec_os.simulate.catalog import generate_catalog

NAME = "stage"
TARGET_MS = {100: 1.5}
QUERIES = ("running shoes", "coffee maker", "wireless headphones", "desk lamp", "yoga mat", "socks")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/stage.py",
        description=(
            "Measure the rerank stage alone (RerankStage.run: feature assembly, NumPy MLP, blend, page; no I/O) "
            "at each window, for users with and without a profile and queries with and without statistics, "
            "BLAS limited to 1 thread. Prints median/p95/p99 per call and the per-step split; target: window 100 "
            f"median < {TARGET_MS[100]} ms (MET/MISSED, exit 0 either way). Writes benchmarks/results/stage.json."
        ),
    )
    p.add_argument("--windows", default="100,1000", help="engine windows to time, comma-separated (default: 100,1000)")
    p.add_argument("--behavioural", type=int, default=20, help="behavioural candidates added (default: 20)")
    p.add_argument("--calls", type=int, default=2000, help="timed calls per window (default: 2000)")
    p.add_argument("--warmup", type=int, default=100, help="untimed calls per window (default: 100)")
    p.add_argument("--products", type=int, default=5000, help="catalog size (default: 5000)")
    p.add_argument("--events", type=int, default=200_000, help="synthetic events (default: 200000)")
    p.add_argument("--users", type=int, default=5000, help="users (default: 5000)")
    p.add_argument("--seed", type=int, default=7, help="seed (default: 7)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write stage.json")
    args = p.parse_args(argv)
    try:
        args.window_list = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError:
        p.error(f"--windows: {args.windows!r} must be whole numbers separated by commas, e.g. 100,1000")
    if not args.window_list or min(args.window_list) < 1 or args.calls < 10 or args.behavioural < 0:
        p.error("--windows must be >= 1, --calls >= 10, --behavioural >= 0")
    return args


def synth_events(
    rng: np.random.Generator,
    n: int,
    products: np.ndarray,
    n_users: int,
    queries: tuple[str, ...] = QUERIES,
    start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """``n`` events in the events_frame schema: heavy-tailed users, Zipf-like products, 40% after a query
    (one of ``queries``, already normalised), over the 30 days from ``start`` (default 2026-01-01)."""
    activity = rng.lognormal(0.0, 1.2, n_users)
    popularity = 1.0 / np.arange(1, len(products) + 1) ** 0.8
    u = rng.choice(n_users, size=n, p=activity / activity.sum())
    pr = rng.choice(len(products), size=n, p=popularity / popularity.sum())
    t = rng.choice(len(EVENT_TYPES), size=n, p=[0.70, 0.20, 0.07, 0.03])
    start = start if start is not None else pd.Timestamp("2026-01-01T00:00:00Z")
    ts = start + pd.to_timedelta(rng.integers(0, 30 * 86_400_000, n), unit="ms")
    q = np.where(rng.random(n) < 0.4, np.array(queries, dtype=object)[rng.integers(0, len(queries), n)], None)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"U{i:06d}" for i in u],
            "session_id": [f"s{i}" for i in u],
            "type": np.array(EVENT_TYPES, dtype=object)[t],
            "product_id": products[pr],
            "timestamp": pd.Series(ts, dtype="datetime64[ns, UTC]"),
            "query": q,
            "query_norm": q,
            "position": pd.array(rng.integers(1, 40, n), dtype="Int64"),
            "price": np.nan,
            "quantity": pd.array(np.ones(n, dtype=np.int64), dtype="Int64"),
            "request_id": None,
        }
    )


class HeldSignals:
    """The stage's item-signals source: one in-memory copy, as the proxy's cache hands out."""

    def __init__(self, signals: ItemSignals) -> None:
        self.signals = signals

    def current(self) -> ItemSignals:
        return self.signals


def random_scorer(rng: np.random.Generator, names: tuple[str, ...], hidden: tuple[int, ...]) -> NumpyMLPScorer:
    sizes = (len(names), *hidden, 1)
    weights: list[np.ndarray] = []
    for fan_in, fan_out in pairwise(sizes):
        weights.append(rng.normal(0.0, (2.0 / fan_in) ** 0.5, (fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return NumpyMLPScorer(weights, np.zeros(len(names)), np.ones(len(names)), names, version="bench")


def time_windows(
    stage: RerankStage,
    pids: np.ndarray,
    profiles: list[Any],
    views: dict[str, Any],
    windows: list[int],
    *,
    calls: int,
    warmup: int,
    behavioural: int,
    rng: np.random.Generator,
    now: pd.Timestamp,
) -> dict[int, dict[str, Any]]:
    """Time ``stage.run`` per window (``calls`` timed after ``warmup`` untimed) over a mix of users (a quarter
    without a profile) and queries (``views``: query -> statistics view; a third without statistics); engine
    hits are random catalog products with descending scores. Exits if the stage ever falls back. The caller
    limits BLAS threads. Returns per window: median/p95/p99 and the features/score medians, in ms."""
    queries = list(views)
    runs: dict[int, dict[str, Any]] = {}
    for window in windows:
        inputs = []
        for i in range(calls + warmup):
            picks = rng.choice(len(pids), size=window + behavioural, replace=False)
            hits = [EngineHit(str(pids[j]), float(window - k)) for k, j in enumerate(picks[:window])]
            extra = [EngineHit(str(pids[j]), None) for j in picks[window:]]
            q = queries[i % len(queries)]
            user = profiles[i % len(profiles)] if i % 4 else None  # a quarter without a profile
            inputs.append(
                StageInput(
                    query=q,
                    hits=hits,
                    behavioural=extra,
                    user_id=user.user_id if user else "anonymous",
                    profile=user,
                    stats=views[q] if i % 3 else None,
                    now=now,
                )
            )
        total: list[float] = []
        feats: list[float] = []
        score: list[float] = []
        for i, inp in enumerate(inputs):
            t = time.perf_counter()
            res = stage.run(inp, window=window)
            elapsed = (time.perf_counter() - t) * 1000
            if not res.applied:
                raise SystemExit(f"the stage fell back ({res.fallback}): {res.notes}")
            if i >= warmup:
                total.append(elapsed)
                feats.append(res.timings_ms.get("features", 0.0))
                score.append(res.timings_ms.get("score", 0.0))
        runs[window] = {
            "median_ms": median(total),
            "p95_ms": percentile(total, 95),
            "p99_ms": percentile(total, 99),
            "features_median_ms": median(feats),
            "score_median_ms": median(score),
            "candidates": window + behavioural,
        }
        print(f"window {window}: median {runs[window]['median_ms']:.3f} ms", flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"setup: {args.products:,} products, {args.events:,} events, {args.users:,} users ...", flush=True)
    t_setup = time.perf_counter()
    products = pd.DataFrame([g.doc for g in generate_catalog(args.products, seed=args.seed)])
    pids = products["product_id"].to_numpy(dtype=object)
    events = synth_events(rng, args.events, pids, args.users)
    built = build_profiles(events, products, ProfilesConfig(), as_of=pd.Timestamp("2026-02-01T00:00:00Z"))
    stats = QueryStats().add_events(events)
    signals = HeldSignals(ItemSignals.from_config(ProfilesConfig()).add_events(events))
    names = DEFAULT_FEATURES.names
    artifact = ModelArtifact(
        scorer=random_scorer(rng, DEFAULT_FEATURES.columns, (512, 256, 128)),
        features=names,
        gate=Gate(alpha_no_history=0.3, alpha_light=0.5, alpha_heavy=0.7),
        product_vectors=dict(built.product_vectors),
    )
    t_load = time.perf_counter()
    model = LoadedModel.build("bench", artifact, products)
    load_s = time.perf_counter() - t_load
    model.warm()
    stage = RerankStage(model, RerankSettings(max_window=max(1000, *args.window_list)), signals=signals)
    profiles = list(built.profiles.values())
    views = {q: stats.view(q) for q in QUERIES}
    now = pd.Timestamp("2026-02-01T00:00:00Z")
    setup_s = time.perf_counter() - t_setup
    print(f"setup done in {setup_s:.1f} s (model load with item table {load_s:.2f} s)", flush=True)

    with threadpool_limits(1):
        runs = time_windows(
            stage, pids, profiles, views, args.window_list, calls=args.calls, warmup=args.warmup,
            behavioural=args.behavioural, rng=rng, now=now,
        )  # fmt: skip

    rows = []
    for window, r in runs.items():
        target = TARGET_MS.get(window)
        rows.append(
            (
                f"window {window} (+{args.behavioural} behavioural)",
                f"median {r['median_ms']:.3f} ms, p95 {r['p95_ms']:.3f}, p99 {r['p99_ms']:.3f} "
                f"(features {r['features_median_ms']:.3f}, score {r['score_median_ms']:.3f})"
                + (f"; target < {target} ms: {verdict(r['median_ms'] < target)}" if target else ""),
            )
        )
    print_summary(f"rerank stage alone: {args.calls} calls per window, BLAS 1 thread", rows)
    out = write_results(
        NAME,
        {
            "params": {k: v for k, v in vars(args).items() if k not in {"results_dir", "window_list"}},
            "setup_s": setup_s,
            "model_load_s": load_s,
            "runs": {str(k): v for k, v in runs.items()},
            "targets_ms": {str(k): v for k, v in TARGET_MS.items()},
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
