"""User profile throughput: full build from Parquet, writing profiles to the engine, incremental update.

Setup (not timed): a catalog from ``generate_catalog(--products)`` and ``--events`` synthetic events over
``--days`` days (``--users`` users with heavy-tailed, log-normal activity; products by Zipf-like popularity;
a view > click > add_to_cart > purchase funnel), both written to Parquet in a temporary folder, plus
``--update-events`` new events in the hour after the window (a tenth of them from brand-new users).

Measured, in a fresh Python subprocess so the parent's generation does not pollute the memory numbers:

(a) full build: read the events Parquet and the catalog Parquet, ``ProductCatalog.from_frame``,
    ``build_profiles``: seconds, and the peak RSS delta (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after
    the build minus before reading; imports are outside it). Target: < 60 s and < 4 GiB.
(b) ``write_profiles`` of every profile to the engine (index created outside the clock, refresh inside):
    seconds and docs/s. With ``--compare-legacy`` (issue 11), first the legacy way in the same run, same
    engine, same profiles: whole ``UserProfile.to_doc`` documents (mapping version 1, kept in
    benchmarks/profiles_v1_mapping.json) through ``bulk_or_raise`` in chunks of 500 into another index, then
    the lean documents (a ``state`` blob) through the byte-chunked, two-thread bulk; both refreshed once
    inside the clock. Target: lean at least 5x faster. Every profile is then read back from the lean index
    (``read_profiles``, not timed) and compared with the built one (``UserProfile`` equality).
(c) ``update_profiles`` with the new events (reading them is outside the clock). Target: < 5 s.
    The updated users are then checked against a full rebuild over all events (not timed).

Run from the repo root:  .venv/bin/python benchmarks/profiles.py [--events 1000000] [--users 20000]
    [--compare-legacy] [--engines osmem,opensearch]
Set FUSEREC_BENCH_OPENSEARCH_URL to measure a real cluster instead of a fresh in-memory osmem-server, or name
the engines with ``--engines`` (the write is measured on each, one after the other).
Writes benchmarks/results/profiles.json; prints MET/MISSED per target and exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from benchmarks._common import argparse_type, parse_engines, print_summary, verdict, write_results
from fuserec_os.behaviour.config import EVENT_TYPES

NAME = "profiles"
TARGET_BUILD_S = 60.0
TARGET_BUILD_RSS_GIB = 4.0
TARGET_UPDATE_S = 5.0
TARGET_WRITE_SPEEDUP = 5.0
LEGACY_CHUNK = 500
LEGACY_MAPPING = Path(__file__).resolve().parent / "profiles_v1_mapping.json"
START = pd.Timestamp("2026-01-01T00:00:00Z")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks/profiles.py",
        description=(
            "Measure user-profile computation: (a) a full build from an events Parquet file to a ProfileSet "
            f"(seconds, peak RSS delta; targets < {TARGET_BUILD_S:.0f} s and < {TARGET_BUILD_RSS_GIB:.0f} GiB), "
            "(b) writing every profile to the engine (seconds, docs/s), (c) an incremental update "
            f"(target < {TARGET_UPDATE_S:.0f} s), in a fresh subprocess. Prints MET/MISSED (exit 0 either way) "
            "and writes benchmarks/results/profiles.json. Engine: FUSEREC_BENCH_OPENSEARCH_URL if set, else a "
            "fresh in-memory osmem-server."
        ),
    )
    p.add_argument("--events", type=int, default=1_000_000, help="events in the build (default: 1000000)")
    p.add_argument("--users", type=int, default=20_000, help="users (default: 20000)")
    p.add_argument("--products", type=int, default=5000, help="catalog size (default: 5000)")
    p.add_argument("--days", type=int, default=30, help="days the events span (default: 30)")
    p.add_argument("--update-events", type=int, default=10_000, help="events in the update (default: 10000)")
    p.add_argument(
        "--chunk-size", type=int, default=None, help="most documents per bulk request (default: write_profiles')"
    )
    p.add_argument(
        "--compare-legacy", action="store_true", help="also write the legacy documents the legacy way (before/after)"
    )
    p.add_argument(
        "--engines", type=argparse_type(parse_engines), default=None,
        help="engines to write to, e.g. osmem,opensearch (default: the cluster if configured, else osmem)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=7, help="seed for catalog and events (default: 7)")
    p.add_argument("--no-write", action="store_true", help="skip (b), the engine write")
    p.add_argument("--no-verify", action="store_true", help="skip checking the update against a full rebuild")
    p.add_argument("--results-dir", type=Path, default=None, help="where to write profiles.json")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: the measuring process
    args = p.parse_args(argv)
    if min(args.events, args.users, args.products, args.days, args.update_events, args.chunk_size or 1) < 1:
        p.error("--events, --users, --products, --days, --update-events and --chunk-size must be >= 1")
    return args


# ------------------------------------------------------------------------------------------ data


def synth_events(
    rng: np.random.Generator,
    n: int,
    users: np.ndarray,
    user_p: np.ndarray,
    products: np.ndarray,
    product_p: np.ndarray,
    prices: np.ndarray,
    start: pd.Timestamp,
    span: pd.Timedelta,
    id_prefix: str,
) -> pd.DataFrame:
    """``n`` events in the events_frame schema (fuserec_os.behaviour.events), vectorised."""
    u = rng.choice(len(users), size=n, p=user_p)
    p = rng.choice(len(products), size=n, p=product_p)
    t = rng.choice(len(EVENT_TYPES), size=n, p=[0.70, 0.20, 0.07, 0.03])
    offsets = rng.integers(0, int(span / pd.Timedelta(milliseconds=1)), size=n)
    ts = (start + pd.to_timedelta(offsets, unit="ms")).as_unit("ns")
    types = np.array(EVENT_TYPES, dtype=object)[t]
    is_purchase = t == EVENT_TYPES.index("purchase")
    has_query = rng.random(n) < 0.4
    queries = np.array(["running shoes", "coffee maker", "wireless headphones", "desk lamp", "yoga mat"], dtype=object)
    q = np.where(has_query, queries[rng.integers(0, len(queries), n)], np.array(None, dtype=object))
    return pd.DataFrame(
        {
            "event_id": [f"{id_prefix}{i}" for i in range(n)],
            "user_id": users[u],
            "session_id": [f"s{x}" for x in (u * 100 + offsets // 3_600_000 // 6)],
            "type": types,
            "product_id": products[p],
            "timestamp": pd.Series(ts, dtype="datetime64[ns, UTC]"),
            "query": q,
            "query_norm": q,
            "position": pd.array(np.where(has_query, rng.integers(1, 40, n), 0), dtype="Int64").astype("Int64"),
            "price": np.where(is_purchase | (t == 2), prices[p], np.nan),
            "quantity": pd.array(np.where(is_purchase, 1, 0), dtype="Int64"),
            "request_id": None,
            "ingested_at": pd.Series(ts, dtype="datetime64[ns, UTC]") + pd.Timedelta(seconds=1),
        }
    )


def generate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from fuserec_os.simulate.catalog import generate_catalog

    rng = np.random.default_rng(args.seed)
    docs = [g.doc for g in generate_catalog(args.products, seed=args.seed)]
    catalog = pd.DataFrame(docs)
    catalog["attributes"] = catalog["attributes"].map(json.dumps)  # a map column is irrelevant here
    catalog.to_parquet(work / "catalog.parquet", index=False)
    products = catalog["product_id"].to_numpy(dtype=object)
    prices = catalog["price"].to_numpy(dtype=np.float64)
    popularity = 1.0 / np.arange(1, len(products) + 1) ** 0.8
    popularity = popularity[rng.permutation(len(products))]
    product_p = popularity / popularity.sum()
    users = np.array([f"U{i:07d}" for i in range(args.users)], dtype=object)
    activity = rng.lognormal(mean=0.0, sigma=1.2, size=len(users))  # heavy tail: a few very active users
    user_p = activity / activity.sum()
    span = pd.Timedelta(days=args.days)
    events = synth_events(rng, args.events, users, user_p, products, product_p, prices, START, span, "e")
    events.to_parquet(work / "events.parquet", index=False)
    # the update: the hour after the window; a tenth from brand-new users
    n_new_users = max(1, args.users // 20)
    all_users = np.concatenate([users, np.array([f"N{i:07d}" for i in range(n_new_users)], dtype=object)])
    new_p = np.concatenate([user_p * 0.9, np.full(n_new_users, 0.1 / n_new_users)])
    update = synth_events(
        rng, args.update_events, all_users, new_p, products, product_p, prices, START + span, pd.Timedelta(hours=1), "n"
    )
    update.to_parquet(work / "update.parquet", index=False)
    return {
        "events": len(events),
        "users_with_events": int(events["user_id"].nunique()),
        "max_events_per_user": int(events["user_id"].value_counts().max()),
        "median_events_per_user": float(events["user_id"].value_counts().median()),
        "update_events": len(update),
        "update_users": int(update["user_id"].nunique()),
        "update_new_users": int((~update["user_id"].isin(set(events["user_id"]))).sum()),
    }


# ------------------------------------------------------------------------------------------ the child


def _max_rss_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


def child(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The measuring process: (a) build, (c) update (+ verify), (b) write. Returns the numbers."""
    from benchmarks._common import open_bench_engines
    from fuserec_os.profiles.compute import ProductCatalog, build_profiles, update_profiles
    from fuserec_os.profiles.config import ProfilesConfig

    cfg = ProfilesConfig()
    out: dict[str, Any] = {}
    rss0 = _max_rss_bytes()
    t0 = time.perf_counter()
    events = pd.read_parquet(work / "events.parquet")
    t_read = time.perf_counter()
    catalog = ProductCatalog.from_frame(pd.read_parquet(work / "catalog.parquet"))
    t_cat = time.perf_counter()
    built = build_profiles(events, catalog, cfg)
    t1 = time.perf_counter()
    rss1 = _max_rss_bytes()
    out["build"] = {
        "seconds": t1 - t0,
        "read_events_s": t_read - t0,
        "catalog_s": t_cat - t_read,
        "build_profiles_s": t1 - t_cat,
        "peak_rss_before_bytes": rss0,
        "peak_rss_after_bytes": rss1,
        "peak_rss_delta_bytes": rss1 - rss0,
        "profiles": len(built),
        "product_vectors": len(built.product_vectors),
        "latent_dims_used": built.config["latent_dims_used"],
        "as_of": str(built.as_of),
        "items_total": sum(len(p.items) for p in built),
    }
    print(f"(a) build: {t1 - t0:.2f} s, peak RSS delta {(rss1 - rss0) / 2**20:,.0f} MiB", flush=True)

    update = pd.read_parquet(work / "update.parquet")
    as_of = START + pd.Timedelta(days=args.days) + pd.Timedelta(hours=1)
    t0 = time.perf_counter()
    updated = update_profiles(built.profiles, update, catalog, cfg, as_of, product_vectors=built.product_vectors)
    t1 = time.perf_counter()
    out["update"] = {"seconds": t1 - t0, "events": len(update), "users_updated": len(updated)}
    print(f"(c) update: {t1 - t0:.3f} s for {len(update):,} events, {len(updated):,} users", flush=True)
    if not args.no_verify:
        out["update"]["verify"] = verify(updated, events, update, catalog, cfg, as_of)
        print(f"    verify against a full rebuild: {out['update']['verify']}", flush=True)

    if not args.no_write:
        out["writes"] = []
        engines = open_bench_engines(args.engines) if args.engines else _default_engine()
        with closing(engines) as opened:
            for engine in opened:
                try:
                    out["writes"].append(measure_write(engine, list(built.profiles.values()), args))
                finally:
                    engine.cleanup()
        out["write"] = out["writes"][0]
    return out


def _default_engine() -> Iterator[Any]:
    from benchmarks._common import open_bench_engine

    with open_bench_engine() as engine:
        yield engine


def _timed_write(write: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = write()
    return time.perf_counter() - t0, n


def measure_write(engine: Any, profiles: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """(b) on one engine: the legacy write (with --compare-legacy), then the lean one, then the round trip."""
    from fuserec_os.engine.bulk import bulk_or_raise
    from fuserec_os.index import manager
    from fuserec_os.index.mappings import load_mapping
    from fuserec_os.profiles.store import profile_doc, read_profiles, write_profiles

    client = engine.client
    step = max(1, len(profiles) // 500)
    out: dict[str, Any] = {"engine": engine.describe(), "docs": len(profiles)}
    if args.compare_legacy:
        legacy_index, _ = manager.ensure_index(
            client, load_mapping(LEGACY_MAPPING, "profiles"), f"{engine.prefix}legacy"
        )

        def legacy() -> int:  # what write_profiles did before issue 11
            actions = (
                {"_op_type": "index", "_index": legacy_index, "_id": p.user_id, "_source": p.to_doc()} for p in profiles
            )
            n = bulk_or_raise(client, actions, target=legacy_index, what="profile", chunk_size=LEGACY_CHUNK)
            client.indices.refresh(index=legacy_index)
            return n

        seconds, n = _timed_write(legacy)
        sizes = [len(json.dumps(p.to_doc())) for p in profiles[::step]]
        out["legacy"] = {"seconds": seconds, "docs_per_s": n / seconds, "median_doc_bytes": float(np.median(sizes))}
        print(f"(b) write, legacy: {seconds:.2f} s, {n / seconds:,.0f} docs/s ({engine.kind})", flush=True)
    alias = f"{engine.prefix}profiles"
    spec = load_mapping(Path(__file__).resolve().parents[1] / "mappings" / "profiles.json", "profiles")
    manager.ensure_index(client, spec, alias)  # outside the clock
    extra = {} if args.chunk_size is None else {"chunk_size": args.chunk_size}
    seconds, n = _timed_write(lambda: write_profiles(client, alias, profiles, refresh=True, spec=spec, **extra))
    sizes = [len(json.dumps(profile_doc(p))) for p in profiles[::step]]
    out.update(seconds=seconds, docs_per_s=n / seconds, median_doc_bytes=float(np.median(sizes)))
    out["chunk_size"] = args.chunk_size or "default"
    print(f"(b) write, lean: {seconds:.2f} s, {n / seconds:,.0f} docs/s ({engine.kind})", flush=True)
    got = read_profiles(client, alias, [p.user_id for p in profiles])
    out["round_trip"] = {"read": len(got), "equal": sum(1 for p in profiles if got.get(p.user_id) == p)}
    print(f"    read back: {out['round_trip']['equal']:,} of {len(profiles):,} equal", flush=True)
    return out


def verify(
    updated: dict[str, Any], events: pd.DataFrame, update: pd.DataFrame, catalog: Any, cfg: Any, as_of: Any
) -> dict[str, Any]:
    """Largest relative difference between the update and a full rebuild over the updated users' events."""
    from fuserec_os.profiles.compute import build_profiles

    users = set(updated)
    both = pd.concat([events[events["user_id"].isin(users)], update], ignore_index=True)
    full = build_profiles(both, catalog, cfg, as_of=as_of)
    worst = 0.0
    mismatches = 0
    for uid, got in updated.items():
        ref = full[uid]
        if got.items.keys() != ref.items.keys() or got.recent != ref.recent or got.counts != ref.counts:
            mismatches += 1
            continue
        pairs = [(got.items[k].w, ref.items[k].w) for k in got.items]
        pairs += [(got.categories.get(k, 0.0), v) for k, v in ref.categories.items()]
        pairs += [(got.total_weight, ref.total_weight)]
        if got.price is not None and ref.price is not None:
            pairs += [(got.price.median, ref.price.median), (got.price.weight, ref.price.weight)]
        for a, b in pairs:
            if b:
                worst = max(worst, abs(a - b) / abs(b))
    return {"users": len(updated), "mismatches": mismatches, "max_rel_diff": worst}


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        result = child(args, args.child)
        (args.child / "result.json").write_text(json.dumps(result), encoding="utf-8")
        return 0

    with tempfile.TemporaryDirectory(prefix="fuserec-bench-profiles-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        data = generate(args, work)
        gen_s = time.perf_counter() - t0
        print(
            f"generated {data['events']:,} events ({data['users_with_events']:,} users, max "
            f"{data['max_events_per_user']:,}/user) and {data['update_events']:,} update events in {gen_s:.1f} s "
            "(not timed)",
            flush=True,
        )
        cmd = [sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
        cmd += ["--child", str(work)]
        subprocess.run(cmd, check=True)
        result = json.loads((work / "result.json").read_text(encoding="utf-8"))

    build, update = result["build"], result["update"]
    rss_gib = build["peak_rss_delta_bytes"] / 2**30
    met_time = build["seconds"] < TARGET_BUILD_S
    met_mem = rss_gib < TARGET_BUILD_RSS_GIB
    met_update = update["seconds"] < TARGET_UPDATE_S
    rows = [
        (
            "(a) full build",
            f"{build['seconds']:.2f} s (read {build['read_events_s']:.2f} + catalog {build['catalog_s']:.2f} + "
            f"build_profiles {build['build_profiles_s']:.2f}); target < {TARGET_BUILD_S:.0f} s: {verdict(met_time)}",
        ),
        ("    peak RSS delta", f"{rss_gib:.2f} GiB; target < {TARGET_BUILD_RSS_GIB:.0f} GiB: {verdict(met_mem)}"),
        (
            "    profiles",
            f"{build['profiles']:,} users, {build['items_total']:,} items, "
            f"{build['product_vectors']:,} product vectors ({build['latent_dims_used']} dims)",
        ),
    ]
    met_speedup: bool | None = None
    for w in result.get("writes", []):
        kind = w["engine"]["kind"]
        if "legacy" in w:
            lg = w["legacy"]
            rows.append(
                (
                    f"(b) write, legacy ({kind})",
                    f"{lg['seconds']:.2f} s, {lg['docs_per_s']:,.0f} docs/s (whole to_doc documents, chunk "
                    f"{LEGACY_CHUNK}, median doc {lg['median_doc_bytes'] / 1024:.1f} KiB)",
                )
            )
        rows.append(
            (
                f"(b) write, lean ({kind})",
                f"{w['seconds']:.2f} s, {w['docs_per_s']:,.0f} docs/s ({w['docs']:,} profiles, chunk "
                f"{w['chunk_size']}, median doc {w['median_doc_bytes'] / 1024:.1f} KiB); read back "
                f"{w['round_trip']['equal']:,} of {w['docs']:,} equal",
            )
        )
        if "legacy" in w:
            speedup = w["legacy"]["seconds"] / w["seconds"]
            met = speedup >= TARGET_WRITE_SPEEDUP and w["round_trip"]["equal"] == w["docs"]
            met_speedup = met if met_speedup is None else met_speedup and met
            rows.append(
                (f"    speedup ({kind})", f"{speedup:.1f}x; target >= {TARGET_WRITE_SPEEDUP:.0f}x: {verdict(met)}")
            )
    rows.append(
        (
            "(c) incremental update",
            f"{update['seconds']:.3f} s ({update['events']:,} events, {update['users_updated']:,} users); "
            f"target < {TARGET_UPDATE_S:.0f} s: {verdict(met_update)}",
        )
    )
    if "verify" in update:
        v = update["verify"]
        rows.append(
            ("    update vs rebuild", f"{v['mismatches']} mismatching users, max rel diff {v['max_rel_diff']:.2e}")
        )
    print_summary(f"profiles: {args.events:,} events, {args.users:,} users, {args.products:,} products", rows)

    out = write_results(
        NAME,
        {
            "engine": result.get("write", {}).get("engine"),
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"},
            "data": data,
            "method": (
                "setup (catalog + events -> Parquet) untimed; a fresh subprocess measures (a) read Parquet + "
                "ProductCatalog.from_frame + build_profiles, peak RSS delta from getrusage ru_maxrss after minus "
                "before (imports excluded); (c) update_profiles with product vectors (new users folded in), "
                "reading excluded, then checked against a full rebuild; (b) write_profiles with refresh into an "
                "index created outside the clock"
            ),
            **result,
            "targets": {
                "build_seconds_under": TARGET_BUILD_S,
                "build_rss_gib_under": TARGET_BUILD_RSS_GIB,
                "update_seconds_under": TARGET_UPDATE_S,
                "build_time": verdict(met_time),
                "build_memory": verdict(met_mem),
                "update_time": verdict(met_update),
                "write_speedup_at_least": TARGET_WRITE_SPEEDUP,
                "write_speedup": None if met_speedup is None else verdict(met_speedup),
            },
        },
        args.results_dir,
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
