"""Experiments: what assignment costs a proxied search, and how long a report takes at shop sizes.

What is measured, in one run (no engine needed):

* per search, on the proxy's path: finding the experiment of the index, assigning the shopper (salted blake2b),
  and the impression fields; and separately team-draft interleaving of two 100-product rankings. Median and
  99th percentile over ``--requests`` calls, timed one by one. Target: assignment under 0.5 ms at the median
  (issue 12's budget for assignment plus impression logging; logging is the proxy's existing in-memory queue).
* the report (attribution, per-search outcomes, the bootstrap over users with ``--replicates``) from frames of
  ``--users`` synthetic shoppers searching a few times each: seconds per size.

Run from the repo root:  .venv/bin/python benchmarks/experiments.py [--users 10000,100000] [--requests 20000]
Writes benchmarks/results/experiments.json; prints MET/MISSED for the target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import argparse_type, median, parse_sizes, percentile, print_summary, verdict, write_results
from fuserec_os.behaviour.events import events_frame
from fuserec_os.behaviour.search_log import impressions_frame
from fuserec_os.config import parse_ranking_config
from fuserec_os.experiments.assign import active_experiment, assign, impression_fields
from fuserec_os.experiments.config import ExperimentsConfig
from fuserec_os.experiments.interleave import interleave_request
from fuserec_os.experiments.report import compute_report

NAME = "experiments"
ASSIGN_TARGET_MS = 0.5
CONFIG: dict[str, Any] = {
    "ab": {
        "indices": ["products"],
        "variants": {"control": {"share": 0.5, "engine": True}, "treatment": {"share": 0.5, "model_version": "v2"}},
    },
    "il": {
        "mode": "interleave",
        "indices": ["catalog"],
        "variants": {"control": {"engine": True}, "treatment": {"model_version": "v2"}},
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/experiments.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20_000, help="assignment calls timed (default: 20000)")
    p.add_argument(
        "--users",
        type=argparse_type(parse_sizes),
        default=(10_000, 100_000),
        help="report sizes in shoppers, comma-separated (default: 10000,100000)",
    )
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates of the report (default: 2000)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write experiments.json")
    return p.parse_args(argv)


def time_calls(fn: Any, n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls of ``fn(i)``."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def per_request(config: ExperimentsConfig, n: int) -> dict[str, Any]:
    def ab(i: int) -> None:
        exp = active_experiment(config, "shop-products", prefix="shop-", stopped=())
        assert exp is not None
        a = assign(exp, f"user-{i}", f"session-{i}")
        assert a is not None
        impression_fields(a)

    control = [f"P{i:05d}" for i in range(100)]
    treatment = list(reversed(control))
    il = config.get("il")

    def interleave(i: int) -> None:
        a = assign(il, f"user-{i}")
        assert a is not None
        mixed = interleave_request(a, control, treatment, f"req-{i}", size=100)
        impression_fields(a, mixed.teams)

    time_calls(ab, 1000)  # warm-up
    ab_ms = time_calls(ab, n)
    il_ms = time_calls(interleave, max(1, n // 10))
    return {
        "assign_ms": {"median": median(ab_ms), "p99": percentile(ab_ms, 99.0), "calls": len(ab_ms)},
        "interleave_100_ms": {"median": median(il_ms), "p99": percentile(il_ms, 99.0), "calls": len(il_ms)},
    }


def synthetic_log(users: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shoppers under the ``ab`` experiment searching 1-5 times, some clicking (with the request id) and buying
    (without it), as a proxy and a shop would log them."""
    rng = np.random.default_rng(seed)
    exp = parse_ranking_config({"experiments": CONFIG}).experiments.get("ab")
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    searches, events = [], []
    for u in range(users):
        uid = f"U{u:07d}"
        a = assign(exp, uid)
        assert a is not None and a.variant is not None
        for s in range(int(rng.integers(1, 6))):
            rid = f"{uid}-{s}"
            ts = t0 + pd.Timedelta(seconds=int(rng.integers(0, 7 * 86_400)))
            shown = [f"P{int(p)}" for p in rng.integers(0, 5000, 20)]
            searches.append(
                {"request_id": rid, "user_id": uid, "timestamp": ts, "product_ids": shown, "experiment": "ab",
                 "variant": a.variant.name}
            )  # fmt: skip
            if rng.random() < 0.3:
                click = {"event_id": f"c{rid}", "user_id": uid, "type": "click", "product_id": shown[0]}
                events.append({**click, "timestamp": ts + pd.Timedelta(seconds=20), "request_id": rid})
                if rng.random() < 0.15:
                    buy = {"event_id": f"b{rid}", "user_id": uid, "type": "purchase", "product_id": shown[0]}
                    events.append({**buy, "timestamp": ts + pd.Timedelta(minutes=10), "price": 30.0})
    return impressions_frame(searches), events_frame(events)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = parse_ranking_config({"experiments": CONFIG}).experiments
    request = per_request(config, args.requests)
    reports = []
    for users in args.users:
        imps, events = synthetic_log(users)
        start = time.perf_counter()
        report = compute_report(config.get("ab"), imps, events, replicates=args.replicates)
        seconds = time.perf_counter() - start
        reports.append(
            {
                "users": users,
                "searches": len(imps),
                "events": len(events),
                "seconds": seconds,
                "attributed": report.attribution["attributed"],
            }
        )
    met = request["assign_ms"]["median"] < ASSIGN_TARGET_MS
    a_ms, il_ms = request["assign_ms"], request["interleave_100_ms"]
    rows = [
        (
            "assign + impression fields",
            f"median {a_ms['median'] * 1000:.1f} us, p99 {a_ms['p99'] * 1000:.1f} us "
            f"(target < {ASSIGN_TARGET_MS} ms: {verdict(met)})",
        ),
        ("team draft of 2 x 100", f"median {il_ms['median'] * 1000:.1f} us, p99 {il_ms['p99'] * 1000:.1f} us"),
    ]
    for r in reports:
        what = f"{r['searches']:,} searches, {r['events']:,} events, {args.replicates} replicates"
        rows.append((f"report, {r['users']:,} users", f"{r['seconds']:.2f} s ({what})"))
    print_summary("experiments", rows)
    path = write_results(
        NAME,
        {"per_request": request, "reports": reports, "replicates": args.replicates, "target_met": met},
        args.results_dir,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
