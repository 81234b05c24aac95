"""Search latency: ``SearchBackend.search`` against a raw ``client.search`` of the same DSL.

Setup: one fresh index (default 5000 generated products, from mappings/products.json) behind an alias, in the
same engine for both sides. A seeded mix of realistic queries is built from the catalog's own vocabulary
(brands, product nouns and their synonyms, colours, tags, prices): free text, Boolean syntax (phrases,
AND/OR/NOT, ``-term``, ``field:value``, ranges), structured filters, category browsing with no text, non-
relevance sorts, deeper pages and other page sizes, facets and highlighting mostly on, as a shop UI sends.

* ours: ``backend.search(text, filters=<mapping>, sort=..., page=..., size=..., facets=..., highlight=...)``
  - request validation, ``build_query``, one ``_search``, ``parse_response`` into typed hits and facets.
* baseline: ``client.search(index=alias, body=body)`` with ``body`` built by ``build_query`` before the
  clock starts, so it pays no building or parsing cost.

After a warm-up (50 queries, both sides, untimed) each timed query runs on both sides back to back,
alternating which goes first. Both sides must return the same ids and totals (checked for every query).
Separately, the pure Python cost per query (request + ``build_query``, and ``parse_response`` of the
recorded engine answer) is timed without I/O. The target: overhead (ours - baseline) at the median <= 1 ms.

Run from the repo root:  .venv/bin/python benchmarks/search.py [--n 5000] [--queries 500]
Set FUSEREC_BENCH_OPENSEARCH_URL to measure a real cluster instead of a fresh in-memory osmem-server.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    load_spec,
    median,
    open_bench_engine,
    percentile,
    print_summary,
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/search.py",
        description=(
            "Measure search latency of fuserec's SearchBackend.search (build + search + parse) against a raw "
            "opensearch-py client.search of the same pre-built DSL, same engine and index, queries "
            "interleaved (alternating which side goes first) after an untimed warm-up. Reports median and "
            "p99 for both, the overhead (ours - baseline) at the median and p99, the pure Python cost "
            "(build_query + parse_response, no I/O), and whether the target (median overhead <= "
            f"{TARGET_MEDIAN_OVERHEAD_MS:g} ms) is MET or MISSED (exit status 0 either way). Writes "
            "benchmarks/results/search.json. Engine: FUSEREC_BENCH_OPENSEARCH_URL if set, else a fresh "
            "in-memory osmem-server."
        ),
    )
    p.add_argument("--n", type=int, default=5000, help="products in the index (default: 5000)")
    p.add_argument("--queries", type=int, default=500, help="timed queries (default: 500)")
    p.add_argument("--warmup", type=int, default=50, help="untimed warm-up queries, both sides (default: 50)")
    p.add_argument("--seed", type=int, default=7, help="seed for the catalog and the query mix (default: 7)")
    p.add_argument(
        "--python-reps",
        type=int,
        default=5,
        help="repetitions per query when timing the pure Python part; the per-query median is kept (default: 5)",
    )
    p.add_argument("--show-queries", type=int, default=0, help="print the first N generated queries and exit")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write search.json")
    args = p.parse_args(argv)
    if args.n < 1 or args.queries < 1 or args.warmup < 0 or args.python_reps < 1:
        p.error("--n, --queries and --python-reps must be >= 1, --warmup >= 0")
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw_docs = [product.doc for product in generate_catalog(args.n, seed=args.seed)]
    docs = []
    for raw in raw_docs:
        doc, reasons = normalize_product(raw)
        if doc is None:
            raise SystemExit(f"generated product rejected ({reasons})")
        docs.append(doc)
    mix = QueryMix(raw_docs, seed=args.seed)
    queries = mix.make(args.warmup + args.queries)
    if args.show_queries:
        for q in queries[: args.show_queries]:
            print(q)
        return 0
    warmup, timed = queries[: args.warmup], queries[args.warmup :]
    cfg = SearchConfig()
    bodies = [build_query(q.request(), cfg).body for q in queries]  # the baseline's pre-built DSL

    spec = load_spec()
    with open_bench_engine() as engine:
        try:
            alias = f"{engine.prefix}products"
            index = manager.create_index(engine.client, spec, alias, attach=True)
            t0 = time.perf_counter()
            index_documents(engine.client, index, docs)
            engine.client.indices.refresh(index=index)
            load_s = time.perf_counter() - t0
            loaded = int(engine.client.count(index=index)["count"])
            if loaded != len(docs):
                raise SystemExit(f"index holds {loaded} documents, expected {len(docs)}")
            print(f"indexed {loaded} products in {load_s:.1f} s; warm-up {len(warmup)}, timed {len(timed)}", flush=True)

            backend = SearchBackend(engine.client, alias=alias, config=cfg)
            client = engine.client

            for q, body in zip(warmup, bodies[: args.warmup], strict=True):
                backend.search(q.text, **q.kwargs())
                client.search(index=alias, body=body)

            ours_ms: list[float] = []
            base_ms: list[float] = []
            responses: list[dict[str, Any]] = []
            mismatches: list[dict[str, Any]] = []
            for i, (q, body) in enumerate(zip(timed, bodies[args.warmup :], strict=True)):
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
            engine.cleanup()
        engine_desc = engine.describe()

        # pure Python part, no I/O: request + build_query, and parse_response of the recorded answers
        build_ms, parse_ms = [], []
        for q, resp in zip(timed, responses, strict=True):
            build_one, parse_one = time_python(q, resp, cfg, args.python_reps)
            build_ms.append(build_one)
            parse_ms.append(parse_one)
        python_ms = [b + p for b, p in zip(build_ms, parse_ms, strict=True)]

        paired = [o - b for o, b in zip(ours_ms, base_ms, strict=True)]
        ours_s, base_s = _stats(ours_ms), _stats(base_ms)
        overhead_median = ours_s["median_ms"] - base_s["median_ms"]
        overhead_p99 = ours_s["p99_ms"] - base_s["p99_ms"]
        met = overhead_median <= TARGET_MEDIAN_OVERHEAD_MS

        by_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"ours": [], "baseline": []})
        for q, o, b in zip(timed, ours_ms, base_ms, strict=True):
            by_kind[q.kind]["ours"].append(o)
            by_kind[q.kind]["baseline"].append(b)
        kinds = Counter(q.kind for q in timed)

        print_summary(
            f"search: {len(timed)} queries on {args.n} products (warm-up {len(warmup)})",
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
                ("same ids and totals", f"{len(timed) - len(mismatches)}/{len(timed)} queries"),
                ("query mix", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
                ("target", f"median overhead <= {TARGET_MEDIAN_OVERHEAD_MS:g} ms: {verdict(met)}"),
            ],
            engine,
        )

    out = write_results(
        NAME,
        {
            "engine": engine_desc,
            "params": {
                "n": args.n,
                "queries": len(timed),
                "warmup": len(warmup),
                "seed": args.seed,
                "python_reps": args.python_reps,
                "index_load_seconds": load_s,
            },
            "method": (
                "ours = SearchBackend.search(text, filters=mapping, sort, page, size, facets, highlight); "
                "baseline = client.search(index=alias, body=build_query(...).body pre-built); same engine, "
                "index and client; per query both back to back, alternating which goes first; "
                "pure Python = (Filters.from_mapping + SearchRequest + build_query) and parse_response of "
                "the recorded baseline answer, per-query median over python_reps, no I/O"
            ),
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
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
