"""Shopper simulator end to end: ``simulate`` against the engine's BM25, then writing its files.

Setup (not timed): a catalog from ``generate_catalog(--products)`` written to JSON Lines and loaded with
``ingest_products`` into a fresh index from mappings/products.json.

Measured, in this process, against the same engine:

(a) ``simulate(catalog, EngineRetriever(client, alias, k=--k), users=--users, days=--days, seed=--seed)``:
    user tastes, session plans, BM25 for every distinct query (``_msearch`` batches, cached per query), the
    shop's pages, clicks/carts/purchases, sorting, and the BM25 recall@k report. Seconds and events/s.
    Target: 1,000,000 events in under 300 s. The verdict is judged at the measured rate
    (``seconds * 1,000,000 / events``); a run below 1,000,000 events says its verdict is projected, and
    is pessimistic: the engine's queries (a few hundred distinct ones even for a small run) are a fixed cost.
(b) ``write_simulation`` of the events, impressions and truth (users' hidden tastes) files, JSON Lines by
    default or Parquet (``--format``): seconds and bytes. No target.

Also reported: peak RSS of this process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: before ``simulate``,
after it, and after writing; an osmem-server is a separate process and is not in it), the engine's
``_msearch`` calls and distinct queries, the BM25 recall report (clicks, purchases, clicks by query kind) and
``preference_lift`` (how much more users click and buy what they secretly like; 1.0 = no signal; computed
after the clocks).

The default 56,100 users over 30 days yield about 1,000,000 events (about 18 events per user a month).

Run from the repo root:  .venv/bin/python benchmarks/simulate.py [--users 56100] [--days 30] [--format jsonl]
Set FUSEREC_BENCH_OPENSEARCH_URL to measure a real cluster instead of a fresh in-memory osmem-server.
Writes benchmarks/results/simulate.json; prints MET/MISSED against the target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import load_spec, open_bench_engine, print_summary, verdict, write_results
from fuserec_os.index.ingest import ingest_products
from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.simulate.catalog import generate_catalog, write_catalog
from fuserec_os.simulate.shoppers import preference_lift, simulate, write_simulation

NAME = "simulate"
TARGET_EVENTS = 1_000_000
TARGET_SECONDS = 300.0
DEFAULT_USERS = 56_100  # ~18 events per user over 30 days: about 1,000,000 events


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/simulate.py",
        description=(
            "Measure the shopper simulator end to end: generate and load a catalog (untimed), time "
            "simulate() with BM25 from the engine (EngineRetriever, _msearch batches), then time writing the "
            "events, impressions and truth files. Prints events, events/s, simulate and write seconds, peak "
            "RSS, the engine's _msearch calls and distinct queries, the BM25 recall@k report and the "
            f"preference lift, and whether the target ({TARGET_EVENTS:,} events in < {TARGET_SECONDS:.0f} s "
            "for simulate alone, judged at the measured rate) is MET or MISSED (exit status 0 either way). "
            f"The defaults yield about {TARGET_EVENTS:,} events. Writes benchmarks/results/simulate.json. "
            "Engine: FUSEREC_BENCH_OPENSEARCH_URL if set, else a fresh in-memory osmem-server."
        ),
    )
    p.add_argument(
        "--users", type=int, default=DEFAULT_USERS, help=f"simulated users (default: {DEFAULT_USERS}, ~1M events)"
    )
    p.add_argument("--days", type=float, default=30.0, help="days simulated (default: 30)")
    p.add_argument("--products", type=int, default=5000, help="products in the generated catalog (default: 5000)")
    p.add_argument("--seed", type=int, default=7, help="seed for the catalog and the simulation (default: 7)")
    p.add_argument("--k", type=int, default=100, help="BM25 depth and recall@k (default: 100)")
    p.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="format of the events/impressions/truth files written in (b) (default: jsonl)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the written files in this folder (default: a temporary folder, deleted afterwards)",
    )
    p.add_argument("--results-dir", type=Path, default=None, help="where to write simulate.json")
    args = p.parse_args(argv)
    if min(args.users, args.products, args.k) < 1 or not args.days > 0:
        p.error("--users, --products and --k must be >= 1, --days > 0")
    return args


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_files(result: Any, folder: Path, fmt: str) -> dict[str, Any]:
    """(b): write the three files; the clock covers write_simulation only."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.{fmt}" for name in ("events", "impressions", "truth")}
    t0 = time.perf_counter()
    write_simulation(result, paths["events"], paths["impressions"], paths["truth"])
    seconds = time.perf_counter() - t0
    sizes = {name: path.stat().st_size for name, path in paths.items()}
    return {
        "seconds": seconds,
        "format": fmt,
        "folder": str(folder),
        "bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "rows": {"events": len(result.events), "impressions": len(result.impressions), "truth": len(result.users)},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_spec()
    catalog = generate_catalog(args.products, seed=args.seed)

    with open_bench_engine() as engine:
        try:
            alias = f"{engine.prefix}products"
            with tempfile.TemporaryDirectory(prefix="fuserec-bench-") as tmp:
                path = Path(tmp) / "catalog.jsonl"
                write_catalog(catalog, path)
                t0 = time.perf_counter()
                report = ingest_products(engine.client, path, spec, alias, progress=False)
                ingest_s = time.perf_counter() - t0
            if report.indexed != args.products or report.rejected or report.engine_rejected:
                raise SystemExit(f"ingest_products did not load the catalog cleanly: {report.as_dict()}")
            print(f"loaded {report.indexed:,} products in {ingest_s:.1f} s (not timed)", flush=True)

            retriever = EngineRetriever(engine.client, alias, k=args.k)
            rss_before = _max_rss_mib()
            t0 = time.perf_counter()
            result = simulate(catalog, retriever, users=args.users, days=args.days, seed=args.seed, recall_k=args.k)
            sim_s = time.perf_counter() - t0
            rss_sim = _max_rss_mib()
            n_events = len(result.events)
            rate = n_events / sim_s if sim_s > 0 else 0.0
            print(
                f"(a) simulate: {n_events:,} events in {sim_s:.1f} s ({rate:,.0f} events/s), "
                f"{retriever.requests:,} _msearch calls, {retriever.queries_sent:,} queries",
                flush=True,
            )
        finally:
            engine.cleanup()
        engine_desc = engine.describe()

    if args.out is not None:
        written = write_files(result, args.out, args.format)
    else:
        with tempfile.TemporaryDirectory(prefix="fuserec-bench-simulate-") as tmp:
            written = write_files(result, Path(tmp), args.format)
        written["folder"] = None  # deleted with the temporary folder
    rss_end = _max_rss_mib()
    print(
        f"(b) write: {written['seconds']:.1f} s, {written['total_bytes'] / 2**20:,.0f} MiB ({args.format})",
        flush=True,
    )

    t0 = time.perf_counter()
    lift = preference_lift(result, catalog)
    lift_s = time.perf_counter() - t0

    stats = result.stats
    recall = stats["bm25_recall"]
    per_million_s = sim_s * TARGET_EVENTS / n_events if n_events else float("inf")
    direct = n_events >= TARGET_EVENTS
    met = per_million_s < TARGET_SECONDS
    how = (
        f"{n_events:,} events in {sim_s:.1f} s"
        if direct
        else f"not checked: only {n_events:,} events (run the default size; naive projection {per_million_s:.0f} s)"
    )
    shown_verdict = verdict(met) if direct else "NOT CHECKED"
    rows = [
        ("events", f"{n_events:,} (" + ", ".join(f"{k} {v:,}" for k, v in stats["events_by_type"].items()) + ")"),
        (
            "users / sessions",
            f"{stats['users']:,} users ({stats['active_users']:,} active, {stats['new_users']:,} new), "
            f"{stats['sessions']:,} sessions, {stats['searches']:,} searches",
        ),
        ("(a) simulate", f"{sim_s:.2f} s, {rate:,.0f} events/s"),
        (
            "    engine",
            f"{retriever.requests:,} _msearch calls, {retriever.queries_sent:,} distinct queries sent "
            f"({stats['distinct_queries']:,} distinct queries searched)",
        ),
        (
            "(b) write files",
            f"{written['seconds']:.2f} s, {args.format}: "
            + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in written["bytes"].items()),
        ),
        (
            "peak RSS",
            f"{rss_sim:,.0f} MiB after simulate ({rss_before:,.0f} MiB before it), {rss_end:,.0f} MiB after writing",
        ),
        (
            f"BM25 recall@{recall['k']}",
            f"clicks {recall['clicks']:.3f} (of {recall['clicked']:,}), "
            f"purchases {recall['purchases']:.3f} (of {recall['purchased']:,})",
        ),
        (
            "    clicks by query kind",
            ", ".join(f"{k} {v['recall']:.2f} (n={v['n']:,})" for k, v in recall["clicks_by_kind"].items()),
        ),
        (
            "preference lift",
            "  ".join(
                f"{etype}: "
                + ", ".join(
                    f"{name} {lift[f'{etype}_{name}_lift']:.2f}"
                    for name in ("leaf", "brand", "style")
                    if f"{etype}_{name}_lift" in lift
                )
                for etype in ("click", "purchase")
            )
            + " (own share / base share; 1.0 = no signal)",
        ),
        ("target", f"{TARGET_EVENTS:,} events in < {TARGET_SECONDS:.0f} s (simulate): {how}: {shown_verdict}"),
    ]
    print_summary(
        f"simulate: {args.users:,} users, {args.days:g} days, {args.products:,} products, seed {args.seed}",
        rows,
        engine,
    )

    out = write_results(
        NAME,
        {
            "engine": engine_desc,
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "method": (
                "setup (generate_catalog + ingest_products into a fresh index) untimed; (a) simulate() with an "
                "EngineRetriever (BM25, _msearch batches of 100, cached per query) timed with perf_counter, "
                "recall report included; (b) write_simulation of events, impressions and truth timed alone; "
                "peak RSS is getrusage(RUSAGE_SELF).ru_maxrss of this process (the engine excluded); "
                "preference_lift after the clocks; target judged at the measured rate"
            ),
            "setup": {"products": report.indexed, "ingest_seconds": ingest_s},
            "simulate": {
                "seconds": sim_s,
                "events": n_events,
                "events_per_s": rate,
                "msearch_calls": retriever.requests,
                "queries_sent": retriever.queries_sent,
                "peak_rss_before_mib": rss_before,
                "peak_rss_after_mib": rss_sim,
                "stats": stats,
            },
            "write": {**written, "peak_rss_after_mib": rss_end},
            "preference_lift": lift,
            "preference_lift_seconds": lift_s,
            "target": {
                "events": TARGET_EVENTS,
                "seconds_under": TARGET_SECONDS,
                "seconds_per_target_events": per_million_s,
                "measured_directly": direct,
                "met": met if direct else None,
                "verdict": shown_verdict,
            },
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
