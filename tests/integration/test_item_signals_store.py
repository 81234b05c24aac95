"""Item signals in the engine: the profile jobs build and update them (== one build of everything), an update
backfills them when an older build has none, and the serving copy loads them, takes this process's live updates
at once, another writer's at its next poll, and a rebuild whole."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events, record_events
from fuserec_os.behaviour.search_log import read_impressions, record_impressions
from fuserec_os.index import manager
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.profiles import item_store
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_cache import ItemSignalsCache
from fuserec_os.profiles.item_signals import ItemSignals, ItemSignalValues
from fuserec_os.profiles.jobs import Aliases, build_from_store, update_from_store
from fuserec_os.profiles.live import LiveUpdater, record_events_live
from fuserec_os.simulate.catalog import generate_catalog, write_catalog

from .conftest import REPO

pytestmark = pytest.mark.integration

CFG = ProfilesConfig(half_life_days=7.0)
TYPES = ("view", "click", "add_to_cart", "purchase")
QUERIES = ("running shoes", "coffee maker", None)
PIDS = [f"P{i:06d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def specs() -> dict[str, MappingSpec]:
    return {n: load_mapping(REPO / "mappings" / f"{n}.json", n) for n in ("events", "searches", "products")}


@pytest.fixture
def aliases(client: OpenSearch, prefix: str, specs: dict[str, MappingSpec], tmp_path: Any) -> Aliases:
    path = tmp_path / "catalog.jsonl"
    write_catalog(generate_catalog(40, seed=3), path)
    a = Aliases.for_prefix(prefix)
    assert ingest_products(client, path, specs["products"], a.products, progress=False).ok
    return a


def _events(seed: int, day_from: float, day_to: float, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = pd.Timestamp("2024-04-01T00:00:00Z") + pd.Timedelta(days=rng.uniform(day_from, day_to))
        q = rng.choice(QUERIES)
        ev: dict[str, Any] = {
            "user_id": f"u{rng.randint(1, 6)}",
            "product_id": rng.choice(PIDS),
            "type": rng.choices(TYPES, weights=(5, 4, 2, 1))[0],
            "timestamp": ts.isoformat(),
        }
        if q:
            ev.update(query=q, request_id=f"r{seed}-{i // 2}")
        if rng.random() < 0.1:
            ev["rating"] = rng.choice([2.0, 4.0, 5.0])
        out.append(ev)
    return out


def _searches(seed: int, day_from: float, day_to: float, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "request_id": f"s{seed}-{i}",
            "user_id": f"u{rng.randint(1, 6)}",
            "timestamp": (
                pd.Timestamp("2024-04-01T00:00:00Z") + pd.Timedelta(days=rng.uniform(day_from, day_to))
            ).isoformat(),
            "query": rng.choice(QUERIES[:2]),
            "product_ids": rng.sample(PIDS, 6),
        }
        for i in range(n)
    ]


def _rebuild(client: OpenSearch, aliases: Aliases) -> ItemSignals:
    client.indices.refresh(index=f"{aliases.prefix}*")
    events = read_events(client, aliases.events)
    searches = read_impressions(client, aliases.searches)
    return ItemSignals.from_config(CFG).add_events(events).add_impressions(searches)


def _assert_same(got: ItemSignals, want: ItemSignals, now: pd.Timestamp) -> None:
    assert sorted(got.ids) == sorted(want.ids)
    a: ItemSignalValues = got.values(PIDS, now)
    b: ItemSignalValues = want.values(PIDS, now)
    for name in ("decayed", "ctr", "conversion", "rating_mean", "rating_count", "days_since", "trend"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)
    # the raw sums are whole numbers: equal, not close
    for pid in want.ids:
        g, w = got.doc(got.index[pid]), want.doc(want.index[pid])
        assert (g["counts"], g["search"], g["shown"], g["rating_n"], g["last"]) == (
            w["counts"], w["search"], w["shown"], w["rating_n"], w["last"]
        ), pid  # fmt: skip


def _stored(client: OpenSearch, aliases: Aliases) -> ItemSignals:
    got = item_store.read_all(client, aliases.items)
    assert got is not None
    return got[0]


NOW = pd.Timestamp("2024-04-25T00:00:00Z")


def test_build_and_updates_equal_one_build_of_everything(
    client: OpenSearch, aliases: Aliases, specs: dict[str, MappingSpec]
) -> None:
    assert not record_events(client, _events(1, 0, 10, 250), specs["events"], aliases.events, refresh=True).rejected
    assert not record_impressions(client, _searches(1, 0, 10, 40), specs["searches"], aliases.searches,
                                  refresh=True).rejected  # fmt: skip
    built = build_from_store(client, aliases, CFG)
    assert built.item_docs == len(_rebuild(client, aliases).to_docs()) > 0
    meta = item_store.read_meta(client, aliases.items)
    assert meta is not None and meta["meta"]["half_life_days"] == 7.0 and meta["meta"]["build"]
    _assert_same(_stored(client, aliases), _rebuild(client, aliases), NOW)

    # the job's update adds the new events and the searches logged since its watermark
    assert not record_events(client, _events(2, 8, 14, 120), specs["events"], aliases.events, refresh=True).rejected
    assert not record_impressions(client, _searches(2, 8, 14, 30), specs["searches"], aliases.searches,
                                  refresh=True).rejected  # fmt: skip
    update = update_from_store(client, aliases, CFG)
    assert update.events == 120 and update.impressions == 30 and update.item_docs > 0
    _assert_same(_stored(client, aliases), _rebuild(client, aliases), NOW)
    same_build = item_store.read_meta(client, aliases.items)
    assert same_build is not None and same_build["meta"]["build"] == meta["meta"]["build"]
    assert same_build["meta"]["write"] != meta["meta"]["write"]


def test_an_update_backfills_signals_an_older_build_did_not_write(
    client: OpenSearch, aliases: Aliases, specs: dict[str, MappingSpec]
) -> None:
    assert not record_events(client, _events(3, 0, 10, 150), specs["events"], aliases.events, refresh=True).rejected
    build_from_store(client, aliases, CFG)
    for name in manager.alias_targets(client, aliases.items):  # as if built before item signals existed
        manager.delete_index(client, name)
    assert item_store.read_all(client, aliases.items) is None
    assert item_store.add(client, aliases.items, events=read_events(client, aliases.events)) is None  # none built
    assert not record_events(client, _events(4, 10, 12, 30), specs["events"], aliases.events, refresh=True).rejected
    assert update_from_store(client, aliases, CFG).item_docs > 0
    _assert_same(_stored(client, aliases), _rebuild(client, aliases), NOW)


def test_the_serving_copy_loads_takes_live_updates_polls_and_reloads(
    client: OpenSearch, aliases: Aliases, specs: dict[str, MappingSpec]
) -> None:
    missing = ItemSignalsCache(client, aliases.items, interval_s=0)
    assert missing.load() == "missing" and missing.current() is None  # nothing stored: features missing

    assert not record_events(client, _events(5, 0, 10, 200), specs["events"], aliases.events, refresh=True).rejected
    build_from_store(client, aliases, CFG)
    mine = ItemSignalsCache(client, aliases.items, interval_s=0)
    other = ItemSignalsCache(client, aliases.items, interval_s=0)  # another replica
    assert mine.load() == "loaded" and other.load() == "loaded"
    _assert_same(mine.current() or ItemSignals(), _rebuild(client, aliases), NOW)

    # a live update in this process is served at once, without reading anything back
    updater = LiveUpdater.for_prefix(client, aliases.prefix, CFG, signals_cache=mine)
    before = mine.current()
    batch = _events(6, 10, 11, 25)
    result, report = record_events_live(client, batch, specs["events"], aliases.events, updater=updater)
    assert result.accepted == 25 and report is not None and report.error is None and report.item_docs > 0
    assert mine.current() is not before  # swapped, not changed under a reader
    _assert_same(mine.current() or ItemSignals(), _rebuild(client, aliases), NOW)

    # another replica: one small read tells it something changed, then it reads the changed products
    client.indices.refresh(index=aliases.items)  # a search sees refreshed writes (refresh disabled on a test node)
    assert other.refresh() == "updated"
    _assert_same(other.current() or ItemSignals(), _rebuild(client, aliases), NOW)
    assert mine.refresh() == "updated"  # its own writes again: the same state
    _assert_same(mine.current() or ItemSignals(), _rebuild(client, aliases), NOW)

    # a full build (a new build id) is read whole
    assert not record_events(client, _events(7, 11, 12, 20), specs["events"], aliases.events, refresh=True).rejected
    build_from_store(client, aliases, CFG)
    assert other.refresh() == "loaded"
    _assert_same(other.current() or ItemSignals(), _rebuild(client, aliases), NOW)
    assert other.info()["products"] == len(_rebuild(client, aliases).to_docs())
