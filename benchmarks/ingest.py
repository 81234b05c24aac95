"""Ingest throughput: ``ingest_products`` against a bare opensearch-py ``helpers.bulk``, on each engine, side
by side.

What is compared, in the same process, against the same engine, with the same chunk size:

* ours: ``ingest_products(client, <catalog file>, spec, alias)`` - reads the file, validates and normalises
  every row, bulk-indexes with ``streaming_bulk`` and refreshes (progress bar off).
* baseline: ``helpers.bulk`` of the very same documents, already read and normalised before the clock
  starts (the bulk actions are pre-built too), then one refresh.

Each side loads into its own fresh index created from mappings/products.json before its clock starts (ours
with the alias attached, so ``ingest_products`` finds it). The order alternates every repeat (ours first,
then baseline first, ...) so neither side always gets the warmer engine. One small untimed warm-up of each
side runs first on every engine. The headline is the median over repeats of ours/baseline docs/s; the
target, per engine and size, is >= 0.8x.

Engines (``--engines``, default ``osmem,opensearch``), measured one after the other, never together:
osmem (a fresh in-memory osmem-server), opensearch (a real single-node OpenSearch started for the run in a
temporary folder, stopped afterwards; needs a JDK 21+ and Maven, else the run fails saying which is missing),
cluster (FUSEREC_BENCH_OPENSEARCH_URL). The final table has one row per (size, engine) and, for every engine
but osmem, its throughputs divided by osmem's at the same size.

Run from the repo root:  .venv/bin/python benchmarks/ingest.py [--engines osmem,opensearch] [--n 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opensearchpy import helpers

from benchmarks._common import (
    DEFAULT_ENGINES,
    DEFAULT_HEAP,
    ENGINES_HELP,
    BenchEngine,
    argparse_type,
    describe_engine,
    format_table,
    load_spec,
    median,
    open_bench_engines,
    osmem_run,
    parse_engines,
    parse_sizes,
    print_machine,
    print_summary,
    ratio_text,
    ratios_vs_osmem,
    run_engines_main,
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
DEFAULT_N = 5000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/ingest.py",
        description=(
            "Measure ingest throughput (docs/s) of fuserec's ingest_products (read file + validate + "
            "bulk + refresh) against opensearch-py helpers.bulk of the same pre-normalised documents, "
            "same engine, same run, same chunk size, each into a fresh index from mappings/products.json, "
            "for every engine and catalog size. Per run it prints both rates, the median ours/baseline ratio "
            f"and whether the target (>= {TARGET_RATIO}x) is MET or MISSED (exit status 0 either way); then "
            "one table with a row per (size, engine): both rates, their ratio (fuserec's own cost: 1.00x "
            "means none) and each engine's rates divided by osmem's at the same size (above 1x: faster than "
            "osmem). Writes benchmarks/results/ingest.json (every run, with each engine's kind and version)."
        ),
        epilog=(
            "Engines run one after the other. A missing JDK or Maven for opensearch stops the run before "
            "anything is measured, with what to install (exit 3)."
        ),
    )
    p.add_argument(
        "--engines", type=argparse_type(parse_engines), default=DEFAULT_ENGINES, metavar="LIST", help=ENGINES_HELP
    )
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--n", type=int, default=None, help="products in the generated catalog (default: 5000)")
    sizes.add_argument(
        "--sizes",
        type=argparse_type(parse_sizes),
        default=None,
        metavar="LIST",
        help="several catalog sizes, one run per size and engine, e.g. 5000,50000 (instead of --n)",
    )
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
    p.add_argument("--heap", default=DEFAULT_HEAP, help=f"the opensearch node's -Xmx (default: {DEFAULT_HEAP})")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write ingest.json")
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        p.error("--n must be >= 1")
    args.sizes = args.sizes or (args.n or DEFAULT_N,)
    if args.repeats < 1 or args.chunk_size < 1 or args.warmup < 0:
        p.error("--repeats and --chunk-size must be >= 1, --warmup >= 0")
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


def measure(
    engine: BenchEngine, spec: MappingSpec, path: Path, docs: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    """Every repeat of one size on one engine; the run's record (and a printout)."""
    size = len(docs)
    repeats = []
    try:
        for i in range(args.repeats):
            order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
            got: dict[str, dict[str, Any]] = {}
            for side in order:
                if side == "ours":
                    got[side] = run_ours(engine, spec, path, f"{size}-r{i}", args.chunk_size)
                else:
                    got[side] = run_baseline(engine, spec, docs, f"{size}-r{i}", args.chunk_size)
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
                f"{engine.kind}, {size:,} products, repeat {i + 1}/{args.repeats} ({' then '.join(order)}): "
                f"ours {got['ours']['docs_per_s']:,.0f} docs/s, "
                f"baseline {got['baseline']['docs_per_s']:,.0f} docs/s, ratio {ratio:.3f}",
                flush=True,
            )
    finally:
        engine.cleanup()

    ours_rate = median([r["ours"]["docs_per_s"] for r in repeats])
    base_rate = median([r["baseline"]["docs_per_s"] for r in repeats])
    ratio = median([r["ratio"] for r in repeats])
    met = ratio >= TARGET_RATIO
    print_summary(
        f"ingest on {engine.kind}: {size:,} products, chunk {args.chunk_size}, {args.repeats} repeats, {args.format}",
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
    return {
        "engine": engine.describe(),
        "size": size,
        "repeats": repeats,
        "summary": {
            "ours_docs_per_s_median": ours_rate,
            "baseline_docs_per_s_median": base_rate,
            "ratio_median": ratio,
            "ratio_mean": statistics.fmean(r["ratio"] for r in repeats),
        },
        "target": {"ratio_at_least": TARGET_RATIO, "met": met, "verdict": verdict(met)},
    }


# ------------------------------------------------------------------------------------------ side by side

TABLE_HEADERS = (
    "size",
    "engine",
    "ours docs/s",
    "baseline docs/s",
    "ours/baseline",
    "target",
    "docs/s vs osmem (ours, baseline)",
)
TABLE_ALIGN = "rlrrrlr"


def comparison(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every non-osmem run's median throughputs divided by osmem's at the same size (where osmem ran)."""
    sides = ("ours", "baseline")
    return ratios_vs_osmem(runs, lambda r: {f"{s}_docs_per_s": r["summary"][f"{s}_docs_per_s_median"] for s in sides})


def table_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per run, sorted by size, then engine in run order."""
    order = {id(r): i for i, r in enumerate(runs)}
    rows = []
    for run in sorted(runs, key=lambda r: (r["size"], order[id(r)])):
        summary = run["summary"]
        base = osmem_run(runs, run["size"])
        if base is None or base is run:
            versus = "-"
        else:
            ours = ratio_text(summary["ours_docs_per_s_median"], base["summary"]["ours_docs_per_s_median"])
            raw = ratio_text(summary["baseline_docs_per_s_median"], base["summary"]["baseline_docs_per_s_median"])
            versus = f"{ours}, {raw}"
        rows.append(
            [
                f"{run['size']:,}",
                run["engine"]["kind"],
                f"{summary['ours_docs_per_s_median']:,.0f}",
                f"{summary['baseline_docs_per_s_median']:,.0f}",
                f"{summary['ratio_median']:.3f}x",
                run["target"]["verdict"],
                versus,
            ]
        )
    return rows


def print_table(runs: Sequence[dict[str, Any]], engines: Sequence[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"== ingest throughput, side by side: medians of {args.repeats} repeats, chunk {args.chunk_size}, "
        f"{args.format} =="
    )
    for desc in engines:
        print(f"engine {desc['kind']}: {describe_engine(desc)}")
    print_machine()
    print("ours = ingest_products (read + validate + bulk + refresh); baseline = helpers.bulk of pre-built actions")
    for line in format_table(TABLE_HEADERS, table_rows(runs), TABLE_ALIGN):
        print(f"  {line}")
    for run in runs:
        print(
            f"target ({run['engine']['kind']}, {run['size']:,} products): ours/baseline >= {TARGET_RATIO}x: "
            f"{run['target']['verdict']} ({run['summary']['ratio_median']:.3f}x)"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    return run_engines_main(run, parse_args(argv))


def run(args: argparse.Namespace) -> int:
    spec = load_spec()
    params = {
        "engines": list(args.engines),
        "sizes": list(args.sizes),
        "repeats": args.repeats,
        "chunk_size": args.chunk_size,
        "seed": args.seed,
        "format": args.format,
        "warmup_docs": args.warmup,
        "heap": args.heap if "opensearch" in args.engines else None,
    }
    runs: list[dict[str, Any]] = []
    engines: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fuserec-bench-") as tmp:
        catalogs: dict[int, tuple[Path, list[dict[str, Any]]]] = {}
        for size in args.sizes:
            path = Path(tmp) / f"catalog-{size}.{args.format}"
            write_catalog(generate_catalog(size, seed=args.seed), path)
            catalogs[size] = (path, load_docs(path))
        warm_path = Path(tmp) / f"warmup.{args.format}"
        if args.warmup:
            write_catalog(generate_catalog(args.warmup, seed=args.seed + 1), warm_path)

        with closing(open_bench_engines(args.engines, heap=args.heap)) as opened:
            for engine in opened:
                engines.append(engine.describe())
                if args.warmup:
                    try:
                        run_ours(engine, spec, warm_path, "warmup", args.chunk_size)
                        run_baseline(engine, spec, load_docs(warm_path), "warmup", args.chunk_size)
                    finally:
                        engine.cleanup()
                for size in args.sizes:
                    path, docs = catalogs[size]
                    runs.append(measure(engine, spec, path, docs, args))
                    _write(runs, engines, params, args.results_dir, complete=False)
    print_table(runs, engines, args)
    out = _write(runs, engines, params, args.results_dir, complete=True)
    print(f"results: {out}")
    return 0


def _write(
    runs: list[dict[str, Any]],
    engines: list[dict[str, Any]],
    params: dict[str, Any],
    results_dir: Path | None,
    *,
    complete: bool,
) -> Path:
    """ingest.json with every run so far (rewritten after each run; ``complete`` false until the last)."""
    return write_results(
        NAME,
        {
            "complete": complete,
            "engines": engines,
            "params": params,
            "method": (
                "per engine (one after the other) and size: ours = ingest_products(file, progress=False) into "
                "a fresh aliased index (read+validate+streaming_bulk+refresh); baseline = helpers.bulk of the "
                "same pre-normalised docs with pre-built actions into a fresh index, then refresh; index "
                "creation outside both clocks; order alternates per repeat; one untimed warm-up per engine"
            ),
            "runs": runs,
            "comparison": comparison(runs),
        },
        results_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
