"""Measure the shopper simulator end to end against a fresh osmem engine (run by hand, never in the test suite).

``python -m fuserec_os.simulate.bench --products 5000 --users 60000 --days 30`` generates a catalog, loads it
into a throw-away in-memory engine, simulates with BM25 from that engine, prints the summary, the timings and
the preference checks, and optionally writes the log (``--out DIR``: events.jsonl, impressions.jsonl,
truth.jsonl).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> None:
    from dataclasses import replace

    from osmem_server import OsmemServer

    from fuserec_os.engine import close_osmem
    from fuserec_os.engine.client import make_client
    from fuserec_os.index.ingest import ingest_products
    from fuserec_os.index.mappings import load_mapping
    from fuserec_os.settings import Settings
    from fuserec_os.simulate.catalog import generate_catalog, write_catalog
    from fuserec_os.simulate.retrieval import EngineRetriever
    from fuserec_os.simulate.shoppers import preference_lift, simulate, write_simulation

    ap = argparse.ArgumentParser(prog="python -m fuserec_os.simulate.bench", description=__doc__)
    ap.add_argument("--products", type=int, default=5000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--days", type=float, default=14)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--mapping", type=Path, default=Path("mappings/products.json"))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    server = OsmemServer.start(japanese=False)
    try:
        settings = replace(Settings.from_values({"FUSEREC_OPENSEARCH_URL": server.url}), index_prefix="simbench-")
        client = make_client(settings)
        alias = settings.alias("products")
        catalog = generate_catalog(args.products, seed=args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "catalog.jsonl"
            write_catalog(catalog, path)
            t0 = time.monotonic()
            ingest_products(client, path, load_mapping(args.mapping, "products"), alias, progress=False)
            t_ingest = time.monotonic() - t0
        retriever = EngineRetriever(client, alias, k=100)
        t0 = time.monotonic()
        result = simulate(catalog, retriever, users=args.users, days=args.days, seed=args.seed)
        t_sim = time.monotonic() - t0
        checks = preference_lift(result, catalog)
        print(result.summary())
        print(
            f"ingest {t_ingest:.1f} s; simulate {t_sim:.1f} s for {len(result.events)} events "
            f"({len(result.events) / t_sim:,.0f} events/s); engine: {retriever.requests} _msearch calls, "
            f"{retriever.queries_sent} queries"
        )
        print("preference lift (own share / base share):", checks)
        if args.out is not None:
            t0 = time.monotonic()
            args.out.mkdir(parents=True, exist_ok=True)
            write_simulation(
                result, args.out / "events.jsonl", args.out / "impressions.jsonl", args.out / "truth.jsonl"
            )
            print(f"wrote {args.out} in {time.monotonic() - t0:.1f} s")
        client.close()
    finally:
        close_osmem(server)


if __name__ == "__main__":
    main()
