"""Search latency: ``SearchBackend.search`` against a raw ``client.search`` of the same DSL, on each engine
and index size, side by side.

Setup, per engine and size: one fresh index (default 5,000 and 50,000 generated products, from
mappings/products.json) behind an alias, in the same engine for both sides. A seeded mix of realistic
queries is built from the catalog's own vocabulary (brands, product nouns and their synonyms, colours, tags,
prices): free text, Boolean syntax (phrases, AND/OR/NOT, ``-term``, ``field:value``, ranges), structured
filters, category browsing with no text, non-relevance sorts, deeper pages and other page sizes, facets and
highlighting mostly on, as a shop UI sends. The same catalog and queries go to every engine.

* ours: ``backend.search(text, filters=<mapping>, sort=..., page=..., size=..., facets=..., highlight=...)``
  - request validation, ``build_query``, one ``_search``, ``parse_response`` into typed hits and facets.
* baseline: ``client.search(index=alias, body=body)`` with ``body`` built by ``build_query`` before the
  clock starts, so it pays no building or parsing cost.

After a warm-up (300 queries per engine and size, both sides, untimed: a fresh JVM needs it) each timed
query runs on both sides back to back, alternating which goes first. Both sides must return the same ids
and totals (checked for every query).
Separately, the pure Python cost per query (request + ``build_query``, and ``parse_response`` of the
recorded engine answer) is timed without I/O. The target, per engine and size: overhead (ours - baseline)
at the median <= 1 ms.

Engines (``--engines``, default ``osmem,opensearch``), measured one after the other, never together:
osmem (a fresh in-memory osmem-server), opensearch (a real single-node OpenSearch started for the run in a
temporary folder, stopped afterwards; needs a JDK 21+ and Maven, else the run fails saying which is missing),
cluster (FUSEREC_BENCH_OPENSEARCH_URL). The final table has one row per (size, engine) and, for every engine
but osmem, its medians divided by osmem's at the same size.

Run from the repo root:  .venv/bin/python benchmarks/search.py [--engines osmem,opensearch] [--sizes 5000,50000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    percentile,
    print_machine,
    print_summary,
    ratio_text,
    ratios_vs_osmem,
    run_engines_main,
    verdict,
    write_results,
)
from fuserec_os.index import manager
from fuserec_os.index.ingest import index_documents
from fuserec_os.index.validate import normalize_product
from fuserec_os.search.backend import SearchBackend, parse_response
from fuserec_os.search.query_builder import build_query
from fuserec_os.search.request import Filters, SearchConfig, SearchRequest, Sort
from fuserec_os.simulate.catalog import CATEGORY_TREE, generate_catalog

NAME = "search"
TARGET_MEDIAN_OVERHEAD_MS = 1.0


DEFAULT_SIZES = (5000, 50000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/search.py",
        description=(
            "Measure search latency of fuserec's SearchBackend.search (build + search + parse) against a raw "
            "opensearch-py client.search of the same pre-built DSL, same engine and index, queries "
            "interleaved (alternating which side goes first) after an untimed warm-up, for every engine and "
            "index size. Per run it prints median and p99 for both, the overhead (ours - baseline) at the "
            "median and p99, the pure Python cost (build_query + parse_response, no I/O), and whether the "
            f"target (median overhead <= {TARGET_MEDIAN_OVERHEAD_MS:g} ms) is MET or MISSED (exit status 0 "
            "either way); then one table with a row per (size, engine): ours and raw medians and p99s in ms, "
            "the median overhead, and each engine's medians divided by osmem's at the same size (below 1x: "
            "faster than osmem). The overhead is fuserec's own cost; the raw latency is the engine's. "
            "Writes benchmarks/results/search.json (every run, with each engine's kind and version)."
        ),
        epilog=(
            "Engines run one after the other. osmem indexes slowly past ~10k documents (minutes for 50k; "
            "progress is printed). A missing JDK or Maven for opensearch stops the run before anything is "
            "measured, with what to install (exit 3)."
        ),
    )
    p.add_argument(
        "--engines",
        type=argparse_type(parse_engines),
        default=DEFAULT_ENGINES,
        metavar="LIST",
        help=ENGINES_HELP,
    )
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument(
        "--sizes",
        type=argparse_type(parse_sizes),
        default=DEFAULT_SIZES,
        metavar="LIST",
        help=f"products in the index, one run per size and engine (default: {','.join(map(str, DEFAULT_SIZES))})",
    )
    sizes.add_argument("--n", type=int, default=None, help="one size only: the same as --sizes N")
    p.add_argument("--queries", type=int, default=500, help="timed queries per run (default: 500)")
    p.add_argument(
        "--warmup",
        type=int,
        default=300,
        help="untimed warm-up queries per engine and size, both sides (default: 300: a fresh JVM needs a few hundred "
        "queries before its JIT settles, or the first size measured pays for it)",
    )
    p.add_argument("--seed", type=int, default=7, help="seed for the catalog and the query mix (default: 7)")
    p.add_argument("--heap", default=DEFAULT_HEAP, help=f"the opensearch node's -Xmx (default: {DEFAULT_HEAP})")
    p.add_argument(
        "--python-reps",
        type=int,
        default=5,
        help="repetitions per query when timing the pure Python part; the per-query median is kept (default: 5)",
    )
    p.add_argument("--show-queries", type=int, default=0, help="print the first N generated queries and exit")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write search.json")
    args = p.parse_args(argv)
    if args.n is not None:
        if args.n < 1:
            p.error("--n must be >= 1")
        args.sizes = (args.n,)
    if args.queries < 1 or args.warmup < 0 or args.python_reps < 1:
        p.error("--queries and --python-reps must be >= 1, --warmup >= 0")
    return args


# ------------------------------------------------------------------------------------------ the query mix


@dataclass(frozen=True)
class Query:
    kind: str
    text: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    sort: str = "relevance"
    page: int = 1
    size: int = 10
    facets: bool = True
    highlight: bool = True

    def kwargs(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "sort": self.sort,
            "page": self.page,
            "size": self.size,
            "facets": self.facets,
            "highlight": self.highlight,
        }

    def request(self) -> SearchRequest:
        """What SearchBackend.search builds from the same arguments."""
        return SearchRequest(
            text=self.text,
            filters=Filters.from_mapping(self.filters),
            sort=Sort.parse(self.sort),
            page=self.page,
            size=self.size,
            facets=self.facets,
            highlight=self.highlight,
        )


def _quote(value: str) -> str:
    return f'"{value}"' if " " in value or "-" in value else value


class QueryMix:
    """Seeded queries drawn from the catalog: anchors are picked by popularity, as real traffic is skewed."""

    KINDS: tuple[tuple[str, float], ...] = (
        ("free_text", 0.35),
        ("boolean", 0.15),
        ("filtered", 0.20),
        ("browse", 0.15),
        ("sorted_paged", 0.15),
    )

    def __init__(self, docs: list[dict[str, Any]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.docs = docs
        self.weights = [1.0 + float(d.get("popularity", 0.0)) for d in docs]
        self.brands = sorted({d["brand"] for d in docs})
        self.categories = sorted({d["category"] for d in docs})
        self.tops = sorted({c.split(" > ")[0] for c in self.categories})
        self.colors = sorted({d["attributes"]["color"] for d in docs if "color" in d.get("attributes", {})})
        self._builders: dict[str, Callable[[], Query]] = {
            "free_text": self.free_text,
            "boolean": self.boolean,
            "filtered": self.filtered,
            "browse": self.browse,
            "sorted_paged": self.sorted_paged,
        }

    # helpers
    def _anchor(self) -> dict[str, Any]:
        return self.rng.choices(self.docs, weights=self.weights)[0]

    def _nouns(self, doc: dict[str, Any]) -> tuple[str, ...]:
        top, leaf = doc["category"].split(" > ", 1)
        return CATEGORY_TREE[top][leaf].nouns

    def _noun(self, doc: dict[str, Any]) -> str:
        return self.rng.choice(self._nouns(doc))

    def _color(self, doc: dict[str, Any]) -> str | None:
        color = doc.get("attributes", {}).get("color")
        return None if color is None else str(color)

    def _page_size(self) -> tuple[int, int]:
        size = self.rng.choice((10, 10, 10, 20, 24, 48))
        page = 1 if self.rng.random() < 0.75 else self.rng.randint(2, 5)
        return page, size

    def _price_band(self, doc: dict[str, Any]) -> tuple[float, float]:
        p = float(doc["price"])
        return float(int(p * 0.5)), float(int(p * 1.5) + 1)

    def _common(self) -> dict[str, Any]:
        return {"facets": self.rng.random() < 0.8, "highlight": self.rng.random() < 0.7}

    # kinds
    def free_text(self) -> Query:
        d = self._anchor()
        noun = self._noun(d)
        color = self._color(d)
        model = " ".join(d["title"].removeprefix(d["brand"]).split()[:1])  # "Pegasus" of "Nike Pegasus 41 ..."
        options = [noun, f"{d['brand']} {noun}", f"{d['brand']} {model}", f"{noun} {self.rng.choice(d['tags'])}"]
        if color:
            options.append(f"{color} {noun}")
        if self.rng.random() < 0.3:
            options.append(f"{d['brand'].lower()} {noun} {color or ''}".strip())
        page, size = self._page_size()
        return Query("free_text", self.rng.choice(options), page=page, size=size, **self._common())

    def boolean(self) -> Query:
        d = self._anchor()
        nouns = self._nouns(d)
        noun, noun2 = self.rng.sample(nouns, 2) if len(nouns) > 1 else (nouns[0], nouns[0])
        color = self._color(d) or "black"
        other_color = self.rng.choice([c for c in self.colors if c != color] or [color])
        lo, hi = self._price_band(d)
        other_brand = self.rng.choice(self.brands)
        templates = [
            f'"{noun}" AND brand:{_quote(d["brand"])}',
            f"{noun} -{_quote(other_color)}",
            f"({_quote(noun)} OR {_quote(noun2)}) price:[{lo:g} TO {hi:g}]",
            f"{noun} rating:>=4",
            f"title:{_quote(noun)} NOT tags:sale",
            f"attr.color:{_quote(color)} {noun}",
            f"brand:{_quote(d['brand'])} OR brand:{_quote(other_brand)}",
            f"{noun} in_stock:true price:<{hi:g}",
            f"+{noun.split()[0]} {self.rng.choice(d['tags'])} -{_quote(other_color)}",
            # a broken one: falls back to plain text, as real users type
            f'{noun} AND ("{color}',
        ]
        page, size = self._page_size()
        return Query("boolean", self.rng.choice(templates), page=page, size=size, **self._common())

    def filtered(self) -> Query:
        d = self._anchor()
        text = self.rng.choice((self._noun(d), f"{self._color(d) or ''} {self._noun(d)}".strip()))
        filters: dict[str, Any] = {}
        r = self.rng.random
        if r() < 0.5:
            filters["brand"] = d["brand"] if r() < 0.7 else [d["brand"], self.rng.choice(self.brands)]
        if r() < 0.5:
            lo, hi = self._price_band(d)
            filters["price_min"], filters["price_max"] = lo, hi
        if r() < 0.35:
            filters["rating_min"] = self.rng.choice((3.0, 4.0, 4.5))
        if r() < 0.4:
            filters["in_stock"] = True
        if r() < 0.3:
            filters["category"] = d["category"] if r() < 0.6 else d["category"].split(" > ")[0]
        if r() < 0.15:
            filters["tags"] = self.rng.choice(d["tags"])
        if r() < 0.15 and self._color(d):
            filters["attributes"] = {"color": self._color(d)}
        if not filters:
            filters["in_stock"] = True
        page, size = self._page_size()
        return Query("filtered", text, filters=filters, page=page, size=size, **self._common())

    def browse(self) -> Query:
        d = self._anchor()
        category = d["category"] if self.rng.random() < 0.6 else d["category"].split(" > ")[0]
        filters: dict[str, Any] = {"category": category}
        if self.rng.random() < 0.3:
            filters["in_stock"] = True
        sort = self.rng.choice(("relevance", "price_asc", "price_desc", "rating", "newest", "rating"))
        page, size = self._page_size()
        return Query("browse", "", filters=filters, sort=sort, page=page, size=size, facets=True, highlight=False)

    def sorted_paged(self) -> Query:
        d = self._anchor()
        text = self.rng.choice((self._noun(d), f"{d['brand']} {self._noun(d)}", self.rng.choice(self.tops)))
        sort = self.rng.choice(("price_asc", "price_desc", "rating", "newest"))
        return Query(
            "sorted_paged",
            text,
            sort=sort,
            page=self.rng.randint(1, 8),
            size=self.rng.choice((10, 20, 24)),
            **self._common(),
        )

    def make(self, count: int) -> list[Query]:
        names = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        return [self._builders[self.rng.choices(names, weights=weights)[0]]() for _ in range(count)]


# ------------------------------------------------------------------------------------------ measuring


def _ms(ns: int) -> float:
    return ns / 1e6


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": median(values),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "mean_ms": sum(values) / len(values),
        "min_ms": min(values),
        "max_ms": max(values),
    }


def time_python(q: Query, resp: dict[str, Any], cfg: SearchConfig, reps: int) -> tuple[float, float]:
    """Per-query median over ``reps`` of (request + build_query) and (parse_response), in ms; no I/O."""
    build_ns, parse_ns = [], []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        req = q.request()
        built = build_query(req, cfg)
        t1 = time.perf_counter_ns()
        parse_response(resp, req, built.warnings)
        t2 = time.perf_counter_ns()
        build_ns.append(t1 - t0)
        parse_ns.append(t2 - t1)
    return median([_ms(x) for x in build_ns]), median([_ms(x) for x in parse_ns])


@dataclass
class Workload:
    """One index size: its normalised documents and the queries (the same for every engine)."""

    size: int
    docs: list[dict[str, Any]]
    warmup: list[Query]
    timed: list[Query]
    bodies: list[dict[str, Any]]  # the baseline's pre-built DSL, warm-up first


def make_workload(size: int, args: argparse.Namespace, cfg: SearchConfig) -> Workload:
    raw_docs = [product.doc for product in generate_catalog(size, seed=args.seed)]
    docs = []
    for raw in raw_docs:
        doc, reasons = normalize_product(raw)
        if doc is None:
            raise SystemExit(f"generated product rejected ({reasons})")
        docs.append(doc)
    queries = QueryMix(raw_docs, seed=args.seed).make(args.warmup + args.queries)
    bodies = [build_query(q.request(), cfg).body for q in queries]
    return Workload(size, docs, queries[: args.warmup], queries[args.warmup :], bodies)


LOAD_SLICE = 5000  # documents between two progress lines while indexing


def load_index(engine: BenchEngine, index: str, docs: list[dict[str, Any]]) -> float:
    """Bulk-index ``docs`` and refresh; prints progress for large loads; returns the seconds it took."""
    t0 = time.perf_counter()
    for start in range(0, len(docs), LOAD_SLICE):
        index_documents(engine.client, index, docs[start : start + LOAD_SLICE])
        done = min(start + LOAD_SLICE, len(docs))
        if len(docs) > LOAD_SLICE:
            print(f"  {engine.kind}: {done:,}/{len(docs):,} indexed, {time.perf_counter() - t0:.1f} s", flush=True)
    engine.client.indices.refresh(index=index)
    load_s = time.perf_counter() - t0
    loaded = int(engine.client.count(index=index)["count"])
    if loaded != len(docs):
        raise SystemExit(f"{engine.kind}: index holds {loaded} documents, expected {len(docs)}")
    return load_s


def measure(engine: BenchEngine, work: Workload, spec: Any, cfg: SearchConfig, python_reps: int) -> dict[str, Any]:
    """One run: index ``work.docs``, warm up, time every query on both sides; the run's record (and a printout)."""
    print(f"{engine.kind}: indexing {work.size:,} products ...", flush=True)
    try:
        alias = f"{engine.prefix}products-{work.size}"
        index = manager.create_index(engine.client, spec, alias, attach=True)
        load_s = load_index(engine, index, work.docs)
        print(
            f"{engine.kind}: indexed {work.size:,} products in {load_s:.1f} s; "
            f"warm-up {len(work.warmup)}, timed {len(work.timed)}",
            flush=True,
        )

        backend = SearchBackend(engine.client, alias=alias, config=cfg)
        client = engine.client

        for q, body in zip(work.warmup, work.bodies[: len(work.warmup)], strict=True):
            backend.search(q.text, **q.kwargs())
            client.search(index=alias, body=body)

        ours_ms: list[float] = []
        base_ms: list[float] = []
        responses: list[dict[str, Any]] = []
        mismatches: list[dict[str, Any]] = []
        for i, (q, body) in enumerate(zip(work.timed, work.bodies[len(work.warmup) :], strict=True)):
            # alternate which side goes first, so neither always meets a warmer engine or cache
            if i % 2 == 0:
                t0 = time.perf_counter_ns()
                result = backend.search(q.text, **q.kwargs())
                t1 = time.perf_counter_ns()
                resp = client.search(index=alias, body=body)
                t2 = time.perf_counter_ns()
                ours_ms.append(_ms(t1 - t0))
                base_ms.append(_ms(t2 - t1))
            else:
                t0 = time.perf_counter_ns()
                resp = client.search(index=alias, body=body)
                t1 = time.perf_counter_ns()
                result = backend.search(q.text, **q.kwargs())
                t2 = time.perf_counter_ns()
                base_ms.append(_ms(t1 - t0))
                ours_ms.append(_ms(t2 - t1))
            responses.append(resp)
            base_ids = [str(h["_id"]) for h in resp["hits"]["hits"]]
            base_total = resp["hits"]["total"]["value"]
            if result.ids != base_ids or result.total != base_total:
                mismatches.append({"query": q.__dict__, "ours": result.ids[:5], "baseline": base_ids[:5]})
    finally:
        engine.cleanup()  # the next size starts from an empty engine

    # pure Python part, no I/O: request + build_query, and parse_response of the recorded answers
    build_ms, parse_ms = [], []
    for q, resp in zip(work.timed, responses, strict=True):
        build_one, parse_one = time_python(q, resp, cfg, python_reps)
        build_ms.append(build_one)
        parse_ms.append(parse_one)
    python_ms = [b + p for b, p in zip(build_ms, parse_ms, strict=True)]

    paired = [o - b for o, b in zip(ours_ms, base_ms, strict=True)]
    ours_s, base_s = _stats(ours_ms), _stats(base_ms)
    overhead_median = ours_s["median_ms"] - base_s["median_ms"]
    overhead_p99 = ours_s["p99_ms"] - base_s["p99_ms"]
    met = overhead_median <= TARGET_MEDIAN_OVERHEAD_MS

    by_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ours": [], "baseline": []})
    for q, o, b in zip(work.timed, ours_ms, base_ms, strict=True):
        by_kind[q.kind]["ours"].append(o)
        by_kind[q.kind]["baseline"].append(b)
    kinds = Counter(q.kind for q in work.timed)

    print_summary(
        f"search on {engine.kind}: {len(work.timed)} queries on {work.size:,} products (warm-up {len(work.warmup)})",
        [
            ("ours  (SearchBackend.search)", f"median {ours_s['median_ms']:.2f} ms, p99 {ours_s['p99_ms']:.2f} ms"),
            ("baseline (raw client.search)", f"median {base_s['median_ms']:.2f} ms, p99 {base_s['p99_ms']:.2f} ms"),
            ("overhead at the median", f"{overhead_median:+.3f} ms"),
            ("overhead at p99", f"{overhead_p99:+.3f} ms"),
            ("paired overhead per query", f"median {median(paired):+.3f} ms, p99 {percentile(paired, 99):+.3f} ms"),
            (
                "pure Python (no I/O)",
                f"median {median(python_ms):.3f} ms = request+build_query {median(build_ms):.3f} ms"
                f" + parse_response {median(parse_ms):.3f} ms; p99 {percentile(python_ms, 99):.3f} ms",
            ),
            ("same ids and totals", f"{len(work.timed) - len(mismatches)}/{len(work.timed)} queries"),
            ("index load", f"{work.size:,} products in {load_s:.1f} s"),
            ("query mix", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
            ("target", f"median overhead <= {TARGET_MEDIAN_OVERHEAD_MS:g} ms: {verdict(met)}"),
        ],
        engine,
    )
    return {
        "engine": engine.describe(),
        "size": work.size,
        "index_load_seconds": load_s,
        "query_mix": dict(sorted(kinds.items())),
        "ours": ours_s,
        "baseline": base_s,
        "overhead": {
            "median_ms": overhead_median,
            "p99_ms": overhead_p99,
            "paired_median_ms": median(paired),
            "paired_p99_ms": percentile(paired, 99),
        },
        "python_overhead": {
            "median_ms": median(python_ms),
            "p99_ms": percentile(python_ms, 99),
            "build_median_ms": median(build_ms),
            "parse_median_ms": median(parse_ms),
        },
        "by_kind": {
            k: {
                "count": len(v["ours"]),
                "ours_median_ms": median(v["ours"]),
                "baseline_median_ms": median(v["baseline"]),
            }
            for k, v in sorted(by_kind.items())
        },
        "result_mismatches": {"count": len(mismatches), "first": mismatches[:5]},
        "target": {"median_overhead_ms_at_most": TARGET_MEDIAN_OVERHEAD_MS, "met": met, "verdict": verdict(met)},
    }


# ------------------------------------------------------------------------------------------ side by side

TABLE_HEADERS = (
    "size",
    "engine",
    "ours median",
    "ours p99",
    "raw median",
    "raw p99",
    "overhead median",
    "target",
    "median vs osmem (ours, raw)",
)
TABLE_ALIGN = "rlrrrrrlr"


def comparison(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every non-osmem run's medians and p99s divided by osmem's at the same size (where osmem ran)."""
    return ratios_vs_osmem(
        runs,
        lambda r: {
            f"{side}_{stat}": r[side][f"{stat}_ms"] for side in ("ours", "baseline") for stat in ("median", "p99")
        },
    )


def table_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per run, sorted by size, then engine in run order; latencies in ms."""
    order = {id(r): i for i, r in enumerate(runs)}
    rows = []
    for run in sorted(runs, key=lambda r: (r["size"], order[id(r)])):
        base = osmem_run(runs, run["size"])
        if base is None or base is run:
            versus = "-"
        else:
            ours_ratio = ratio_text(run["ours"]["median_ms"], base["ours"]["median_ms"])
            raw_ratio = ratio_text(run["baseline"]["median_ms"], base["baseline"]["median_ms"])
            versus = f"{ours_ratio}, {raw_ratio}"
        rows.append(
            [
                f"{run['size']:,}",
                run["engine"]["kind"],
                f"{run['ours']['median_ms']:.2f} ms",
                f"{run['ours']['p99_ms']:.2f} ms",
                f"{run['baseline']['median_ms']:.2f} ms",
                f"{run['baseline']['p99_ms']:.2f} ms",
                f"{run['overhead']['median_ms']:+.3f} ms",
                run["target"]["verdict"],
                versus,
            ]
        )
    return rows


def print_table(runs: Sequence[dict[str, Any]], engines: Sequence[dict[str, Any]], queries: int) -> None:
    print()
    print(f"== search latency, side by side: {queries} timed queries per row ==")
    for desc in engines:
        print(f"engine {desc['kind']}: {describe_engine(desc)}")
    print_machine()
    print("ours = SearchBackend.search (build + search + parse); raw = client.search of the pre-built DSL")
    for line in format_table(TABLE_HEADERS, table_rows(runs), TABLE_ALIGN):
        print(f"  {line}")
    for run in runs:
        print(
            f"target ({run['engine']['kind']}, {run['size']:,} products): median overhead <= "
            f"{TARGET_MEDIAN_OVERHEAD_MS:g} ms: {run['target']['verdict']} ({run['overhead']['median_ms']:+.3f} ms)"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    return run_engines_main(run, parse_args(argv))


def run(args: argparse.Namespace) -> int:
    cfg = SearchConfig()
    if args.show_queries:
        work = make_workload(args.sizes[0], args, cfg)
        for q in [*work.warmup, *work.timed][: args.show_queries]:
            print(q)
        return 0

    spec = load_spec()
    workloads: dict[int, Workload] = {}
    runs: list[dict[str, Any]] = []
    engines: list[dict[str, Any]] = []
    params = {
        "engines": list(args.engines),
        "sizes": list(args.sizes),
        "queries": args.queries,
        "warmup": args.warmup,
        "seed": args.seed,
        "python_reps": args.python_reps,
        "heap": args.heap if "opensearch" in args.engines else None,
    }
    out = None
    with closing(open_bench_engines(args.engines, heap=args.heap)) as opened:
        for engine in opened:
            engines.append(engine.describe())
            for size in args.sizes:
                if size not in workloads:
                    workloads[size] = make_workload(size, args, cfg)
                runs.append(measure(engine, workloads[size], spec, cfg, args.python_reps))
                out = _write(runs, engines, params, args.results_dir, complete=False)
    print_table(runs, engines, args.queries)
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
    """search.json with every run so far (rewritten after each run; ``complete`` false until the last)."""
    return write_results(
        NAME,
        {
            "complete": complete,
            "engines": engines,
            "params": params,
            "method": (
                "per engine (one after the other) and size: a fresh index of `size` generated products; "
                "ours = SearchBackend.search(text, filters=mapping, sort, page, size, facets, highlight); "
                "baseline = client.search(index=alias, body=build_query(...).body pre-built); same engine, "
                "index and client; per query both back to back, alternating which goes first; "
                "pure Python = (Filters.from_mapping + SearchRequest + build_query) and parse_response of "
                "the recorded baseline answer, per-query median over python_reps, no I/O; the same catalog "
                "and queries on every engine"
            ),
            "runs": runs,
            "comparison": comparison(runs),
        },
        results_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
