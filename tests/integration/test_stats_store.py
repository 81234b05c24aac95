"""Query stats in the engine: write/read_view round trip, empty views, incremental add == full build, a rebuild
drops old keys, and the profile jobs keep the stats equal to a full build. Also the QueryStats methods the store
relies on (prior sums, views with given priors, doc ids)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.event_store import read_events, record_events
from fuserec_os.behaviour.events import events_frame, normalize_event
from fuserec_os.errors import EngineError
from fuserec_os.index import manager
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.profiles import stats_store as ss
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.jobs import Aliases, build_from_store, update_from_store
from fuserec_os.profiles.query_stats import QueryStats, QueryStatsView
from fuserec_os.simulate.catalog import generate_catalog, write_catalog
from fuserec_os.text import terms

from .conftest import REPO

QUERIES = ("Red Running Shoes", "running shoe", "blue jacket", "wool  jacket", "kids shoes", "garden hose")
TYPES = ("view", "click", "add_to_cart", "purchase")
PIDS = [f"P{i:06d}" for i in range(1, 41)]


def _raw_events(seed: int, n: int, day_from: int, day_to: int, users: int = 6) -> list[dict[str, Any]]:
    """Events with queries and request ids (3 events per request; ids unique per seed, so no request
    straddles two seeds), plus some without a query."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        day = rng.uniform(day_from, day_to)
        ev: dict[str, Any] = {
            "user_id": f"u{rng.randrange(users)}",
            "product_id": rng.choice(PIDS),
            "type": rng.choices(TYPES, weights=(5, 4, 2, 1))[0],
            "timestamp": f"2024-04-{1 + int(day):02d}T{int(day % 1 * 24):02d}:{rng.randint(0, 59):02d}:00Z",
        }
        if rng.random() < 0.85:
            ev["query"] = rng.choice(QUERIES)
            ev["request_id"] = f"r{seed}-{i // 3}"
        out.append(ev)
    return out


def _frame(raw: list[dict[str, Any]]) -> pd.DataFrame:
    docs = []
    for row in raw:
        doc, reasons = normalize_event(row, EventsConfig())
        assert doc is not None, reasons
        docs.append(doc)
    return events_frame(docs)


def _impressions(seed: int, n: int) -> pd.DataFrame:
    rng = random.Random(seed)
    return pd.DataFrame(
        {
            "request_id": [f"i{seed}-{i}" for i in range(n)],
            "query": [rng.choice(QUERIES) for _ in range(n)],
            "product_ids": [rng.sample(PIDS, 8) for _ in range(n)],
        }
    )


def _assert_views_equal(got: QueryStatsView, want: QueryStatsView, pids: list[str]) -> None:
    assert got.query == want.query and got.smoothing == want.smoothing
    np.testing.assert_allclose(got.prior_query, want.prior_query, rtol=1e-12)
    np.testing.assert_allclose(got.prior_term, want.prior_term, rtol=1e-12)
    assert (got.exact is None) == (want.exact is None)
    g, w = got.exact_rates(pids), want.exact_rates(pids)
    if g is not None and w is not None:
        np.testing.assert_allclose(g[0], w[0], rtol=1e-12)
        np.testing.assert_array_equal(g[1], w[1])
    assert [k.key for k in got.terms] == [k.key for k in want.terms]
    gt, wt = got.term_rates(pids), want.term_rates(pids)
    assert (gt is None) == (wt is None)
    if gt is not None and wt is not None:
        np.testing.assert_allclose(gt, wt, rtol=1e-12)


def _assert_same_stats(got: QueryStats, want: QueryStats) -> None:
    assert list(got.to_docs()) == list(want.to_docs())


def _assert_same_meta(got: dict[str, Any] | None, want: QueryStats) -> None:
    assert got is not None
    assert got["smoothing"] == want.smoothing
    sums = want.prior_sums()
    for kind in ("q", "t"):
        np.testing.assert_allclose(got["sums"][kind]["num"], sums[kind][0], rtol=1e-12)
        assert got["sums"][kind]["den"] == pytest.approx(sums[kind][1], rel=1e-12)
        assert got["sums"][kind]["keys"] == sum(1 for i in want.doc_ids() if i.startswith(f"{kind}:"))
        np.testing.assert_allclose(got["priors"][kind], want.priors()[kind], rtol=1e-12)


# ------------------------------------------------------------------------------------------ pure


def test_prior_sums_give_the_priors_and_view_takes_given_priors() -> None:
    stats = QueryStats().add_events(_frame(_raw_events(1, 200, 0, 5))).add_impressions(_impressions(1, 20))
    sums = stats.prior_sums()
    for kind in ("q", "t"):
        np.testing.assert_array_equal(QueryStats.priors_from_sums(sums)[kind], stats.priors()[kind])
    assert QueryStats.priors_from_sums({})["q"].tolist() == [0.0, 0.0, 0.0]
    assert stats.doc_ids() == [d["id"] for d in stats.to_docs()]
    # a view of only some keys, with the whole table's priors, rates like the whole table's view
    query = "red running shoes"
    wanted = {f"q:{query}", *(f"t:{t}" for t in terms(query))}
    part = QueryStats.from_docs([d for d in stats.to_docs() if d["id"] in wanted])
    _assert_views_equal(part.view(query, priors=stats.priors()), stats.view(query), PIDS[:10])
    assert not np.array_equal(part.view(query).prior_term, stats.view(query).prior_term)


# ------------------------------------------------------------------------------------------ engine


def test_write_and_read_view_round_trip(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    stats = QueryStats(smoothing=5.0).add_events(_frame(_raw_events(2, 400, 0, 10)))
    stats.add_impressions(_impressions(2, 30))
    assert ss.write_stats(client, alias, stats) == len(stats)
    for query in ("red running shoes", "Running  Shoe", "blue jacket", "wool jacket", "shoes for kids"):
        view = ss.read_view(client, alias, query)
        assert not view.is_empty
        _assert_views_equal(view, stats.view(query), PIDS[:12])
    _assert_same_meta(ss.read_meta(client, alias), stats)
    client.indices.refresh(index=alias)
    _assert_same_stats(ss.read_all(client, alias), stats)
    assert ss.read_all(client, alias).smoothing == 5.0


def test_missing_query_and_missing_index_give_empty_views(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    assert ss.read_view(client, alias, "red running shoes").is_empty  # no index yet
    assert ss.read_meta(client, alias) is None
    assert len(ss.read_all(client, alias)) == 0
    ss.write_stats(client, alias, QueryStats().add_events(_frame(_raw_events(3, 100, 0, 3))))
    for query in ("never typed", "", "   "):
        view = ss.read_view(client, alias, query)
        assert view.is_empty and view.exact_rates(PIDS[:3]) is None and view.term_rates(PIDS[:3]) is None
    partial = ss.read_view(client, alias, "red wellington boots")  # unseen query, one seen term ("red")
    assert partial.exact is None and [k.key for k in partial.terms] == ["red"]


def test_long_query_ids_are_hashed(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    long_query = " ".join(["shoe"] * 100 + ["extra"] * 60)
    raw = [{"user_id": "u", "product_id": "P000001", "type": "click", "query": long_query, "request_id": "r"}]
    raw[0]["timestamp"] = "2024-04-01T00:00:00Z"
    stats = QueryStats().add_events(_frame(raw))
    assert ss.doc_id(f"q:{long_query}").startswith("q#")
    assert ss.write_stats(client, alias, stats) == len(stats) == 3
    _assert_views_equal(ss.read_view(client, alias, long_query), stats.view(long_query), ["P000001", "P000002"])


def test_refused_document_raises_engine_error(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    bad = {"id": "q:x", "kind": "query", "key": {"not": "a keyword"}, "product_ids": []}
    with pytest.raises(EngineError, match=r"refused 1 query stats document"):
        ss.write_stats(client, alias, [bad])


def test_add_events_equals_a_full_build(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    first, second, third = _frame(_raw_events(4, 300, 0, 5)), _frame(_raw_events(5, 250, 5, 9)), _frame([])
    assert ss.write_stats(client, alias, QueryStats().add_events(first)) > 0
    written = ss.add_events(client, alias, second, refresh=True)
    assert 0 < written <= len(QueryStats().add_events(first).merge(QueryStats().add_events(second)))
    assert ss.add_events(client, alias, third) == 0
    no_query = second[second["query_norm"].isna()]
    assert len(no_query) and ss.add_events(client, alias, no_query) == 0
    full = QueryStats().add_events(pd.concat([first, second], ignore_index=True))
    _assert_same_stats(ss.read_all(client, alias), full)  # every doc
    _assert_same_meta(ss.read_meta(client, alias), full)
    for query in QUERIES:
        _assert_views_equal(ss.read_view(client, alias, query), full.view(query), PIDS)
    # into an empty index: the stored stats are just the new events'
    fresh = f"{prefix}fresh-stats"
    ss.add_events(client, fresh, first, refresh=True)
    _assert_same_stats(ss.read_all(client, fresh), QueryStats().add_events(first))
    _assert_same_meta(ss.read_meta(client, fresh), QueryStats().add_events(first))


def test_rebuild_removes_keys_that_no_longer_exist(client: OpenSearch, prefix: str) -> None:
    alias = f"{prefix}query-stats"
    old = _frame(_raw_events(6, 200, 0, 5))
    ss.replace_stats(client, alias, QueryStats().add_events(old))
    assert not ss.read_view(client, alias, "garden hose").is_empty
    kept = old[old["query_norm"].isin(["blue jacket", "kids shoes"])]
    rebuilt = QueryStats().add_events(kept)
    assert ss.replace_stats(client, alias, rebuilt) == len(rebuilt)
    assert ss.read_view(client, alias, "garden hose").is_empty
    assert ss.read_view(client, alias, "red running shoes").exact is None
    _assert_same_stats(ss.read_all(client, alias), rebuilt)
    _assert_same_meta(ss.read_meta(client, alias), rebuilt)
    assert len(manager.alias_targets(client, alias)) == 1
    assert manager.managed_indices(client, alias) == manager.alias_targets(client, alias)  # the old one is gone


# ------------------------------------------------------------------------------------------ profile jobs


@pytest.fixture
def aliases(client: OpenSearch, prefix: str, tmp_path: Path) -> Aliases:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(generate_catalog(60, seed=3), catalog)
    a = Aliases.for_prefix(prefix)
    spec = load_mapping(REPO / "mappings" / "products.json", "products")
    assert ingest_products(client, catalog, spec, a.products, progress=False).ok
    return a


def test_profile_jobs_keep_stats_equal_to_a_full_build(client: OpenSearch, aliases: Aliases) -> None:
    events_spec: MappingSpec = load_mapping(REPO / "mappings" / "events.json", "events")
    assert aliases.stats.endswith("query-stats")

    def store(raw: list[dict[str, Any]]) -> None:
        res = record_events(client, raw, events_spec, aliases.events, refresh=True)
        assert not res.rejected, res.rejected

    store(_raw_events(7, 300, 0, 10))
    built = build_from_store(client, aliases, ProfilesConfig())
    assert built.stats_docs == len(QueryStats().add_events(read_events(client, aliases.events))) > 0
    store(_raw_events(8, 200, 10, 20, users=9))
    upd = update_from_store(client, aliases, ProfilesConfig())
    assert upd.events == 200 and upd.stats_docs > 0
    assert update_from_store(client, aliases, ProfilesConfig()).stats_docs == 0  # nothing new: nothing added

    full = QueryStats().add_events(read_events(client, aliases.events))
    _assert_same_stats(ss.read_all(client, aliases.stats), full)
    _assert_same_meta(ss.read_meta(client, aliases.stats), full)

    # and a full build job into other aliases stores the same documents
    other = replace(
        aliases,
        profiles=aliases.profiles + "-full",
        vectors=aliases.vectors + "-full",
        stats=aliases.stats + "-full",
        state=aliases.state + "-full",
    )
    assert build_from_store(client, other, ProfilesConfig()).stats_docs == len(full)
    _assert_same_stats(ss.read_all(client, other.stats), ss.read_all(client, aliases.stats))
    for query in QUERIES:
        _assert_views_equal(ss.read_view(client, aliases.stats, query), ss.read_view(client, other.stats, query), PIDS)


def test_update_backfills_stats_missing_from_an_older_build(client: OpenSearch, aliases: Aliases) -> None:
    events_spec: MappingSpec = load_mapping(REPO / "mappings" / "events.json", "events")
    assert not record_events(client, _raw_events(9, 150, 0, 10), events_spec, aliases.events, refresh=True).rejected
    build_from_store(client, aliases, ProfilesConfig())
    for name in manager.alias_targets(client, aliases.stats):  # as if built before the stats existed
        manager.delete_index(client, name)
    assert not record_events(client, _raw_events(10, 80, 10, 15), events_spec, aliases.events, refresh=True).rejected
    update_from_store(client, aliases, ProfilesConfig())
    full = QueryStats().add_events(read_events(client, aliases.events))
    _assert_same_stats(ss.read_all(client, aliases.stats), full)
    _assert_same_meta(ss.read_meta(client, aliases.stats), full)
