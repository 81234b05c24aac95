"""Ingest throughput: ``ingest_products`` against a bare opensearch-py ``helpers.bulk``.

What is compared, in the same process, against the same engine, with the same chunk size:

* ours: ``ingest_products(client, <catalog file>, spec, alias)`` - reads the file, validates and normalises
  every row, bulk-indexes with ``streaming_bulk`` and refreshes (progress bar off).
* baseline: ``helpers.bulk`` of the very same documents, already read and normalised before the clock
  starts (the bulk actions are pre-built too), then one refresh.

Each side loads into its own fresh index created from mappings/products.json before its clock starts (ours
with the alias attached, so ``ingest_products`` finds it). The order alternates every repeat (ours first,
then baseline first, ...) so neither side always gets the warmer engine. One small untimed warm-up of each
side runs first. The headline is the median over repeats of ours/baseline docs/s; the target is >= 0.8x.

Run from the repo root:  .venv/bin/python benchmarks/ingest.py [--n 5000] [--repeats 3]
Set FUSEREC_BENCH_OPENSEARCH_URL to measure a real cluster instead of a fresh in-memory osmem-server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opensearchpy import helpers

from benchmarks._common import (
    BenchEngine,
    load_spec,
    median,
    open_bench_engine,
    print_summary,
    verdict,
    write_results,
)
from fuserec_os.index import manager
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import read_rows
from fuserec_os.index.validate import normalize_product
from fuserec_os.simulate.catalog import generate_catalog, write_catalog

NAME = "ingest"
TARGET_RATIO = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description=(
            "Measure ingest throughput (docs/s) of fuserec's ingest_products (read file + validate + "
            "bulk + refresh) against opensearch-py helpers.bulk of the same pre-normalised documents, "
            "same engine, same run, same chunk size, each into a fresh index from mappings/products.json. "
            f"Prints both rates, the median ours/baseline ratio and whether the target (>= {TARGET_RATIO}x) "
            "is MET or MISSED (exit status 0 either way), and writes benchmarks/results/ingest.json. "
            "Engine: FUSEREC_BENCH_OPENSEARCH_URL if set, else a fresh in-memory osmem-server."
        ),
    )
    p.add_argument("--n", type=int, default=5000, help="products in the generated catalog (default: 5000)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, order alternating (default: 3)")
    p.add_argument("--chunk-size", type=int, default=1000, help="bulk chunk size for both sides (default: 1000)")
    p.add_argument("--seed", type=int, default=7, help="catalog seed (default: 7)")
    p.add_argument(
        "--format",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="catalog file format ingest_products reads (default: jsonl)",
    )
    p.add_argument("--warmup", type=int, default=500, help="docs in the untimed warm-up of each side (0: none)")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write ingest.json")
    args = p.parse_args(argv)
    if args.n < 1 or args.repeats < 1 or args.chunk_size < 1 or args.warmup < 0:
        p.error("--n, --repeats and --chunk-size must be >= 1, --warmup >= 0")
    return args


def load_docs(path: Path) -> list[dict[str, Any]]:
    """The documents ingest_products would send: the file read and normalised exactly as it does."""
    docs = []
    for _, row in read_rows(path):
        doc, reasons = normalize_product(row)
        if doc is None:
            raise SystemExit(f"generated catalog row rejected ({reasons}); the benchmark needs a clean file")
        docs.append(doc)
    return docs


def run_ours(engine: BenchEngine, spec: MappingSpec, path: Path, tag: str, chunk_size: int) -> dict[str, Any]:
    alias = f"{engine.prefix}ours-{tag}"
    index = manager.create_index(engine.client, spec, alias, attach=True)  # fresh, outside the clock
    t0 = time.perf_counter()
    report = ingest_products(engine.client, path, spec, alias, chunk_size=chunk_size, progress=False)
    seconds = time.perf_counter() - t0
    if report.index != index or report.indexed != report.read or report.rejected or report.engine_rejected:
        raise SystemExit(f"ingest_products did not load the file cleanly: {report.as_dict()}")
    return {"index": index, "docs": report.indexed, "seconds": seconds, "docs_per_s": report.indexed / seconds}


def run_baseline(
    engine: BenchEngine, spec: MappingSpec, docs: list[dict[str, Any]], tag: str, chunk_size: int
) -> dict[str, Any]:
    index = manager.create_index(engine.client, spec, f"{engine.prefix}base-{tag}", attach=False)
    actions = [{"_index": index, "_id": d["product_id"], "_source": d} for d in docs]  # pre-built
    t0 = time.perf_counter()
    ok, _ = helpers.bulk(engine.client, actions, chunk_size=chunk_size, request_timeout=120)
    engine.client.indices.refresh(index=index)
    seconds = time.perf_counter() - t0
    return {"index": index, "docs": int(ok), "seconds": seconds, "docs_per_s": ok / seconds}


def check_counts(engine: BenchEngine, *results: dict[str, Any]) -> None:
    for r in results:
        n = int(engine.client.count(index=r["index"])["count"])
        if n != r["docs"]:
            raise SystemExit(f"{r['index']} holds {n} documents, expected {r['docs']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_spec()
    with tempfile.TemporaryDirectory(prefix="fuserec-bench-") as tmp:
        path = Path(tmp) / f"catalog.{args.format}"
        write_catalog(generate_catalog(args.n, seed=args.seed), path)
        docs = load_docs(path)
        warm_path = Path(tmp) / f"warmup.{args.format}"
        if args.warmup:
            write_catalog(generate_catalog(args.warmup, seed=args.seed + 1), warm_path)

        with open_bench_engine() as engine:
            try:
                if args.warmup:
                    run_ours(engine, spec, warm_path, "warmup", args.chunk_size)
                    run_baseline(engine, spec, load_docs(warm_path), "warmup", args.chunk_size)
                    engine.cleanup()
                repeats = []
                for i in range(args.repeats):
                    order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
                    got: dict[str, dict[str, Any]] = {}
                    for side in order:
                        if side == "ours":
                            got[side] = run_ours(engine, spec, path, f"r{i}", args.chunk_size)
                        else:
                            got[side] = run_baseline(engine, spec, docs, f"r{i}", args.chunk_size)
                    check_counts(engine, got["ours"], got["baseline"])
                    engine.cleanup()  # keep engine memory flat across repeats
                    ratio = got["ours"]["docs_per_s"] / got["baseline"]["docs_per_s"]
                    repeats.append(
                        {
                            "repeat": i,
                            "order": list(order),
                            "ours": {k: v for k, v in got["ours"].items() if k != "index"},
                            "baseline": {k: v for k, v in got["baseline"].items() if k != "index"},
                            "ratio": ratio,
                        }
                    )
                    print(
                        f"repeat {i + 1}/{args.repeats} ({' then '.join(order)}): "
                        f"ours {got['ours']['docs_per_s']:,.0f} docs/s, "
                        f"baseline {got['baseline']['docs_per_s']:,.0f} docs/s, ratio {ratio:.3f}",
                        flush=True,
                    )
            finally:
                engine.cleanup()
            engine_desc = engine.describe()

            ours_rate = median([r["ours"]["docs_per_s"] for r in repeats])
            base_rate = median([r["baseline"]["docs_per_s"] for r in repeats])
            ratio = median([r["ratio"] for r in repeats])
            met = ratio >= TARGET_RATIO
            print_summary(
                f"ingest: {args.n} products, chunk {args.chunk_size}, {args.repeats} repeats, {args.format}",
                [
                    ("ours (ingest_products)", f"{ours_rate:,.0f} docs/s (median)"),
                    ("baseline (helpers.bulk)", f"{base_rate:,.0f} docs/s (median)"),
                    (
                        "ratio ours/baseline",
                        f"{ratio:.3f}x (median of per-repeat ratios; "
                        f"range {min(r['ratio'] for r in repeats):.3f}-{max(r['ratio'] for r in repeats):.3f})",
                    ),
                    ("target", f">= {TARGET_RATIO}x: {verdict(met)}"),
                ],
                engine,
            )

    out = write_results(
        NAME,
        {
            "engine": engine_desc,
            "params": {
                "n": args.n,
                "repeats": args.repeats,
                "chunk_size": args.chunk_size,
                "seed": args.seed,
                "format": args.format,
                "warmup_docs": args.warmup,
            },
            "method": (
                "ours = ingest_products(file, progress=False) into a fresh aliased index (read+validate+"
                "streaming_bulk+refresh); baseline = helpers.bulk of the same pre-normalised docs with "
                "pre-built actions into a fresh index, then refresh; index creation outside both clocks; "
                "order alternates per repeat"
            ),
            "repeats": repeats,
            "summary": {
                "ours_docs_per_s_median": ours_rate,
                "baseline_docs_per_s_median": base_rate,
                "ratio_median": ratio,
                "ratio_mean": statistics.fmean(r["ratio"] for r in repeats),
            },
            "target": {"ratio_at_least": TARGET_RATIO, "met": met, "verdict": verdict(met)},
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
