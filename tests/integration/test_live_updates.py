"""Live profile and statistics updates (issue 11, "Fresh features") against a real engine.

Events recorded live (``record_events_live`` and the proxy's ``POST /_fuserec/events``) update the user's
profile, the query statistics and the item signals before the call returns. The state they leave equals a
rebuild from every stored event (profiles compared after decaying both to one time: decay is a common factor, so
floats agree to rounding, compared at rel 1e-9; latent vectors excepted, which only a full build refits), the batch job
afterwards does not count them again, and a search right after the POST sees the new profile.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events, record_events
from fuserec_os.behaviour.search_log import read_impressions
from fuserec_os.engine.versioned import MAX_ATTEMPTS
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.index.products import read_products
from fuserec_os.profiles import item_store, jobs, stats_store
from fuserec_os.profiles.build_mark import LEASE, build_running, set_build_mark
from fuserec_os.profiles.compute import ProductCatalog, UserProfile, build_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import ItemSignals
from fuserec_os.profiles.jobs import Aliases, build_from_store, update_from_store
from fuserec_os.profiles.live import LiveUpdater, record_events_live
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.profiles.store import read_all_profiles, read_profiles
from fuserec_os.rerank.stage import RerankSettings
from fuserec_os.serve.app import ProxyOptions, create_app
from fuserec_os.settings import Settings
from fuserec_os.simulate.catalog import generate_catalog, write_catalog

from .conftest import REPO
from .proxy_helpers import RunningProxy, brand_artifact, register

pytestmark = pytest.mark.integration

CFG = ProfilesConfig(half_life_days=7.0)
TYPES = ("view", "click", "add_to_cart", "purchase")
QUERIES = ("running shoes", "coffee maker", "wireless headphones", None)


@pytest.fixture(scope="module")
def events_spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "events.json", "events")


@pytest.fixture
def aliases(client: OpenSearch, spec: MappingSpec, prefix: str, tmp_path: Path) -> Aliases:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(generate_catalog(200, seed=3), catalog)
    a = Aliases.for_prefix(prefix)
    assert ingest_products(client, catalog, spec, a.products, progress=False).ok
    return a


def _events(seed: int, users: list[str], day_from: int, day_to: int, n: int) -> list[dict[str, object]]:
    """Events with queries and request ids; a request's events can fall into different batches."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        day = rng.uniform(day_from, day_to)
        q = rng.choice(QUERIES)
        out.append(
            {
                "user_id": rng.choice(users),
                "product_id": f"P{rng.randint(1, 200):06d}",
                "type": rng.choices(TYPES, weights=(5, 4, 2, 1))[0],
                "timestamp": f"2024-04-{1 + int(day):02d}T{int(day % 1 * 24):02d}:{rng.randint(0, 59):02d}:00Z",
                **({"query": q, "request_id": f"r{rng.randint(1, 40)}"} if q else {}),
            }
        )
    return out


def _decayed(profiles: dict[str, UserProfile], t: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """Profile docs brought to one time, without the latent vector (only a full build refits it)."""
    out = {}
    for uid, p in profiles.items():
        doc = p.decayed_to(t, CFG).to_doc()
        doc.pop("vector")
        out[uid] = doc
    return out


def _assert_docs_equal(live: Any, rebuilt: Any, where: str = "") -> None:
    """Equal, floats to rel 1e-9 (decay to a common time multiplies by factors in another order)."""
    if isinstance(rebuilt, dict):
        assert isinstance(live, dict) and set(live) == set(rebuilt), (where, set(live) ^ set(rebuilt))
        for k in rebuilt:
            _assert_docs_equal(live[k], rebuilt[k], f"{where}.{k}")
    elif isinstance(rebuilt, list):
        assert isinstance(live, list) and len(live) == len(rebuilt), where
        for i, (a, b) in enumerate(zip(live, rebuilt, strict=True)):
            _assert_docs_equal(a, b, f"{where}[{i}]")
    elif isinstance(rebuilt, float):
        assert live == pytest.approx(rebuilt, rel=1e-9, abs=1e-12), where
    else:
        assert live == rebuilt, where


def _rebuild(client: OpenSearch, aliases: Aliases) -> tuple[dict[str, UserProfile], QueryStats]:
    """Profiles and statistics from scratch, from every stored event (in memory)."""
    events = read_events(client, aliases.events)
    catalog = ProductCatalog.from_frame(read_products(client, aliases.products))
    built = build_profiles(events, catalog, CFG)
    return built.profiles, QueryStats().add_events(events)


def _assert_state_equals_rebuild(client: OpenSearch, aliases: Aliases) -> None:
    client.indices.refresh(index=f"{aliases.prefix}*")  # the rebuild searches the events: they must be visible
    profiles, stats = _rebuild(client, aliases)
    stored = read_all_profiles(client, aliases.profiles)
    t = max(p.as_of for p in [*stored.values(), *profiles.values()])
    live_docs, rebuilt_docs = _decayed(stored, t), _decayed(profiles, t)
    _assert_docs_equal(live_docs, rebuilt_docs, "profiles")
    stored_stats = stats_store.read_all(client, aliases.stats)
    assert list(stored_stats.to_docs()) == list(stats.to_docs())
    meta = stats_store.read_meta(client, aliases.stats)
    assert meta is not None
    sums = stats.prior_sums()
    for kind in ("q", "t"):
        assert meta["sums"][kind]["num"] == pytest.approx(list(sums[kind][0]))
        assert meta["sums"][kind]["den"] == pytest.approx(sums[kind][1])
    _assert_item_signals_equal_rebuild(client, aliases)


def _assert_item_signals_equal_rebuild(client: OpenSearch, aliases: Aliases) -> None:
    """The stored item signals equal ones built from every stored event: raw sums exactly, decayed numbers
    and every derived signal at one time to rel 1e-9."""
    rebuilt = ItemSignals.from_config(CFG).add_events(read_events(client, aliases.events))
    got = item_store.read_all(client, aliases.items)
    assert got is not None
    stored = got[0]
    assert sorted(stored.ids) == sorted(rebuilt.ids)
    for pid in rebuilt.ids:
        a, b = stored.doc(stored.index[pid]), rebuilt.doc(rebuilt.index[pid])
        for key in ("counts", "search", "rating_n", "last", "days"):
            assert a[key] == b[key], (pid, key)
    now = pd.Timestamp("2024-04-20T00:00:00Z")
    a_v, b_v = stored.values(rebuilt.ids, now), rebuilt.values(rebuilt.ids, now)
    for name in ("decayed", "rating_mean", "days_since", "trend"):
        np.testing.assert_allclose(getattr(a_v, name), getattr(b_v, name), rtol=1e-9, err_msg=name)


def test_live_updates_equal_a_rebuild_and_the_job_does_not_count_them_again(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    users = [f"U{i}" for i in range(8)]
    first = _events(1, users, 0, 10, 300)
    assert not record_events(client, first, events_spec, aliases.events, refresh=True).rejected
    build_from_store(client, aliases, CFG)
    updater = LiveUpdater.for_prefix(client, aliases.prefix, CFG)

    # live batches: known users and a new one, the same requests as earlier batches, late events, a replay
    batches = [
        _events(2, [*users, "NEW1"], 10, 12, 40),
        _events(3, [*users, "NEW2"], 11, 13, 25),
        _events(4, users, 5, 13, 30),  # late: older than the profiles' as_of
    ]
    for batch in batches:
        result, report = record_events_live(client, batch, events_spec, aliases.events, updater=updater)
        assert not result.rejected and report is not None and report.error is None, report
        assert report.events == result.accepted > 0
    replay, report = record_events_live(client, batches[0][:5], events_spec, aliases.events, updater=updater)
    assert replay.accepted == 0 and replay.already_stored == 5 and report is not None and report.events == 0
    assert "NEW1" in read_profiles(client, aliases.profiles, ["NEW1"])  # no refresh needed: read by id

    _assert_state_equals_rebuild(client, aliases)

    # the job afterwards: the live events are skipped (watermark moves past them), nothing counted twice
    job = update_from_store(client, aliases, CFG)
    assert job.events == 0 and job.live_skipped == sum(len(b) for b in batches), job
    _assert_state_equals_rebuild(client, aliases)

    # events that did not come through the live path (a plain record_events, a file ingest) go to the job
    plain = _events(5, [*users, "NEW3"], 13, 14, 20)
    assert not record_events(client, plain, events_spec, aliases.events, refresh=True).rejected
    job = update_from_store(client, aliases, CFG)
    assert job.events == len(plain) and job.live_skipped == 0, job
    _assert_state_equals_rebuild(client, aliases)


def test_a_failed_live_update_leaves_the_events_to_the_job(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = ["A", "B"]
    assert not record_events(client, _events(1, users, 0, 5, 50), events_spec, aliases.events, refresh=True).rejected
    build_from_store(client, aliases, CFG)
    updater = LiveUpdater.for_prefix(client, aliases.prefix, CFG)

    def broken(*_a: object, **_k: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr("fuserec_os.profiles.live.update_profiles", broken)
    batch = _events(2, users, 5, 6, 10)
    result, report = record_events_live(client, batch, events_spec, aliases.events, updater=updater)
    assert result.accepted == 10 and report is not None and report.error and "boom" in report.error
    monkeypatch.undo()
    client.indices.refresh(index=f"{aliases.prefix}*")
    stored = read_events(client, aliases.events)
    assert not stored["applied_live"].any()  # the flag was taken off again
    job = update_from_store(client, aliases, CFG)
    assert job.events == 10
    _assert_state_equals_rebuild(client, aliases)


# --- two processes at once --------------------------------------------------------------------------------


class _RacingClient:
    """Updater A's client: when A reads (``_mget``) a store behind one of ``aliases``, ``meanwhile`` runs right
    after the engine answered and before A goes on: another process's whole live update falls between A's read
    and A's write, deterministically. ``times``: how many of A's reads of each store do this."""

    def __init__(self, client: OpenSearch, aliases: list[str], meanwhile: Any, times: int = 1) -> None:
        self._client, self._meanwhile = client, meanwhile
        self._left = dict.fromkeys(aliases, times)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def mget(self, *args: Any, **kwargs: Any) -> Any:
        resp = self._client.mget(*args, **kwargs)
        alias = kwargs.get("index")
        if self._left.get(alias, 0) > 0:
            self._left[alias] -= 1
            self._meanwhile()
        return resp


def _racing_batch(tag: str, day: int) -> list[dict[str, object]]:
    """One user's events on one query and the same few products: the documents two processes both rewrite."""
    types = ("view", "click", "add_to_cart", "purchase", "click")
    return [
        {"user_id": "U0", "product_id": f"P{1 + i:06d}", "type": t, "query": "running shoes",
         "request_id": f"race-{tag}", "timestamp": f"2024-04-{day:02d}T{10 + i:02d}:00:00Z"}
        for i, t in enumerate(types)
    ]  # fmt: skip


@pytest.mark.parametrize("store", ["profiles", "stats", "items", "all"])
def test_two_processes_updating_the_same_documents_at_once_lose_nothing(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, store: str
) -> None:
    """Two replicas (own updaters, own locks) fold events of the same user, query and products at the same
    instant: B's whole update runs between A's read and A's write of ``store`` (``all``: a B update in each
    store's window). Every update survives."""
    assert not record_events(client, _events(1, ["U0", "U1"], 0, 10, 60), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    b = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    b_reports = []

    def b_updates() -> None:
        n = len(b_reports)
        _, report = record_events_live(client, _racing_batch(f"b{n}", 12 + n), events_spec, aliases.events, updater=b)
        b_reports.append(report)

    stores = ["profiles", "stats", "items"] if store == "all" else [store]
    racing = _RacingClient(client, [getattr(aliases, s) for s in stores], b_updates)
    a = LiveUpdater.for_prefix(racing, aliases.prefix, CFG)  # type: ignore[arg-type]
    result, report = record_events_live(client, _racing_batch("a", 11), events_spec, aliases.events, updater=a)
    assert result.accepted == 5 and report is not None and report.error is None, report
    assert len(b_reports) == len(stores), b_reports
    assert all(r is not None and r.error is None and r.events == 5 for r in b_reports), b_reports
    _assert_state_equals_rebuild(client, aliases)


def test_a_profile_changed_by_another_process_on_every_attempt_gives_a_clear_error(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    """Bounded retries: when another process changes the user's profile between every read and write of A,
    A gives up after MAX_ATTEMPTS with an error naming the store and the count, and a rebuild repairs it."""
    assert not record_events(client, _events(1, ["U0"], 0, 10, 30), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    b = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    b_errors = []

    def b_updates() -> None:
        n = len(b_errors)
        _, report = record_events_live(client, _racing_batch(f"b{n}", 12 + n), events_spec, aliases.events, updater=b)
        b_errors.append(None if report is None else report.error)

    racing = _RacingClient(client, [aliases.profiles], b_updates, times=100)
    a = LiveUpdater.for_prefix(racing, aliases.prefix, CFG)  # type: ignore[arg-type]
    _, report = record_events_live(client, _racing_batch("a", 11), events_spec, aliases.events, updater=a)
    assert b_errors == [None] * MAX_ATTEMPTS
    assert report is not None and report.error is not None
    assert f"1 profile document(s) in {aliases.profiles}" in report.error and f"{MAX_ATTEMPTS} attempts" in report.error
    assert "statistics were updated, profiles not: rebuild the profiles" in report.error
    build_from_store(client, aliases, CFG)
    _assert_state_equals_rebuild(client, aliases)


def test_a_live_update_while_the_profile_job_rewrites_the_same_user_is_not_lost(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    """The job (``profiles update``) folds plain events of U0 while a replica's live update of U0 falls between
    the job's read and write of the profiles: both end up in the profile (and the statistics, item signals)."""
    assert not record_events(client, _events(1, ["U0", "U1"], 0, 10, 60), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    plain = [dict(e, request_id="race-job") for e in _racing_batch("job", 11)]
    assert not record_events(client, plain, events_spec, aliases.events, refresh=True).rejected
    live = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    reports = []

    def live_update() -> None:
        _, report = record_events_live(client, _racing_batch("b", 12), events_spec, aliases.events, updater=live)
        reports.append(report)

    racing = _RacingClient(client, [aliases.profiles, aliases.stats, aliases.items], live_update)
    job = update_from_store(racing, aliases, CFG)  # type: ignore[arg-type]
    assert job.events == 5 and job.users == 1, job
    assert len(reports) == 3 and all(r is not None and r.error is None for r in reports), reports
    _assert_state_equals_rebuild(client, aliases)


def test_a_live_update_during_a_full_build_is_not_lost(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's live update lands between a full build's read of the events and its write of every store.
    Before the build mark, the build overwrote it (the event was lost until the next full build): now the live
    update finds the build running, stores its events without applying them, and the build folds them in."""
    assert not record_events(client, _events(1, ["U0", "U1"], 0, 10, 60), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    live = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    reports: list[Any] = []
    real_read = jobs.read_events

    def read_then_live_update(*args: Any, **kwargs: Any) -> Any:
        events = real_read(*args, **kwargs)
        if not reports:  # once: right after the build's read, before it writes anything
            _, report = record_events_live(client, _racing_batch("b", 12), events_spec, aliases.events, updater=live)
            reports.append(report)
        return events

    monkeypatch.setattr(jobs, "read_events", read_then_live_update)
    built = build_from_store(client, aliases, CFG)
    assert len(reports) == 1 and reports[0].deferred and reports[0].events == 5 and reports[0].error is None
    assert reports[0].as_dict()["deferred"] is True
    assert built.caught_up == 5
    assert not build_running(client, aliases.state)
    _assert_state_equals_rebuild(client, aliases)
    assert update_from_store(client, aliases, CFG).events == 0  # the job does not count them again
    _, after = record_events_live(client, _racing_batch("c", 13), events_spec, aliases.events, updater=live)
    assert after is not None and not after.deferred and after.users == 1  # applied at once again
    _assert_state_equals_rebuild(client, aliases)


def test_a_build_mark_left_behind_expires(client: OpenSearch, aliases: Aliases, events_spec: MappingSpec) -> None:
    """A build killed before it cleared its mark defers live updates only until the mark's lease ends; the
    deferred events are stored, and the job folds them in."""
    assert not record_events(client, _events(1, ["U0"], 0, 10, 20), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    live = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    set_build_mark(client, aliases.state)  # a build that never ended
    _, deferred = record_events_live(client, _racing_batch("b", 12), events_spec, aliases.events, updater=live)
    assert deferred is not None and deferred.deferred and deferred.users == 0
    set_build_mark(client, aliases.state, now=datetime.now(timezone.utc) - LEASE - timedelta(minutes=1))
    assert not build_running(client, aliases.state)
    _, applied = record_events_live(client, _racing_batch("c", 13), events_spec, aliases.events, updater=live)
    assert applied is not None and not applied.deferred and applied.users == 1
    assert update_from_store(client, aliases, CFG).events == 5  # the deferred ones
    _assert_state_equals_rebuild(client, aliases)


def test_two_processes_folding_one_request_at_once_count_it_once(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    """Replicas A and B each store an event of request ``both`` (same query), and each folds its own only after
    both are stored, so each sees the other's. Before, both marked theirs ``request_counted`` and the request was
    never counted in ``requests``; now the batch with the first-ingested event counts it."""
    assert not record_events(client, _events(1, ["U0", "U1"], 0, 10, 40), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    click, cart = (
        {"user_id": u, "product_id": "P000007", "type": t, "query": "trail shoes", "request_id": "both",
         "timestamp": f"2024-04-12T10:0{i}:00Z"}
        for i, (u, t) in enumerate((("U0", "click"), ("U0", "add_to_cart")))
    )  # fmt: skip
    a = record_events(client, [click], events_spec, aliases.events, applied_live=True)
    time.sleep(0.01)  # B's event is ingested a few milliseconds after A's
    b = record_events(client, [cart], events_spec, aliases.events, applied_live=True)
    replica_a = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    replica_b = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    replica_b.apply(b.stored)  # the later-ingested batch folds first: it must not count the request
    replica_a.apply(a.stored)
    _assert_state_equals_rebuild(client, aliases)


def test_a_live_event_before_an_earlier_stored_one_is_folded_counts_the_request_once(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    """A file ingest stores a click of request ``late`` (the job folds it later); a live purchase of the same
    request comes in before the job runs. Before, each saw the other and neither counted the request."""
    assert not record_events(client, _events(1, ["U0", "U1"], 0, 10, 40), events_spec, aliases.events,
                             refresh=True).rejected  # fmt: skip
    build_from_store(client, aliases, CFG)
    event = {"user_id": "U1", "product_id": "P000009", "query": "rain jacket", "request_id": "late"}
    plain = record_events(client, [{**event, "type": "click", "timestamp": "2024-04-12T09:00:00Z"}], events_spec,
                          aliases.events, refresh=True)  # fmt: skip
    assert not plain.rejected
    time.sleep(0.01)
    live = LiveUpdater.for_prefix(client, aliases.prefix, CFG)
    _, report = record_events_live(client, [{**event, "type": "purchase", "timestamp": "2024-04-12T09:05:00Z"}],
                                   events_spec, aliases.events, updater=live)  # fmt: skip
    assert report is not None and report.error is None and report.users == 1
    assert update_from_store(client, aliases, CFG).events == 1
    _assert_state_equals_rebuild(client, aliases)


# --- through the proxy ------------------------------------------------------------------------------------

USER = "X-Fuserec-User-Id"
SHOES = {"query": {"bool": {"must": [{"match": {"title": "running shoes"}}]}}}
T0 = pd.Timestamp.now(tz="UTC").floor("s")


@pytest.fixture(scope="module")
def shop(
    client: OpenSearch, base_settings: Settings, spec: MappingSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    prefix = f"l{uuid.uuid4().hex[:10]}-"
    settings = replace(base_settings, index_prefix=prefix)
    path = tmp_path_factory.mktemp("live") / "catalog.jsonl"
    rows = [
        {"product_id": f"{code}{i:02d}", "title": f"{brand} running shoes model {i}", "brand": brand,
         "category": "shoes > running", "price": 50.0 + i, "in_stock": True}
        for i in range(15) for brand, code in (("Kinetix", "K"), ("Aeropace", "A"))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ingest_products(client, path, spec, settings.alias("products"), progress=False).ok
    client.indices.refresh(index=settings.alias("products"))
    events_spec = load_mapping(REPO / "mappings" / "events.json", "events")
    seed = [{"user_id": "someone", "type": "click", "product_id": "K01", "timestamp": (T0 - pd.Timedelta(days=1))
             .isoformat(), "query": "running shoes", "request_id": "seed-1"}]  # fmt: skip
    assert not record_events(client, seed, events_spec, settings.alias("events"), refresh=True).rejected
    build_from_store(client, Aliases.for_prefix(prefix), ProfilesConfig())
    register(client, prefix, brand_artifact().to_bytes())
    yield settings
    for name in client.indices.get(index=f"{prefix}*"):
        client.indices.delete(index=name)


def test_a_search_right_after_the_events_post_sees_the_new_profile(shop: Settings, client: OpenSearch) -> None:
    app = create_app(
        shop,
        ProxyOptions(
            urls=shop.opensearch_urls,
            reload_seconds=3600.0,
            impression_seconds=0.2,
            rerank=RerankSettings(window=100, budget_ms=5000),
        ),
    )
    alias = shop.alias("products")
    with RunningProxy(app) as running:
        before = httpx.post(f"{running.url}/{alias}/_search", json={**SHOES, "size": 10}, headers={USER: "fresh"},
                            timeout=30).json()  # fmt: skip
        assert before["fuserec"]["fallback"] == "no_profile"
        request_id = before["fuserec"]["request_id"]
        batch = [
            {"user_id": "fresh", "type": "purchase", "product_id": f"A{i:02d}", "timestamp": T0.isoformat(),
             "query": "running shoes", "request_id": request_id}
            for i in range(3)
        ]  # fmt: skip
        posted = httpx.post(f"{running.url}/_fuserec/events", json={"events": batch}, timeout=30)
        assert posted.status_code == 200, posted.text
        out = posted.json()
        assert out["accepted"] == 3 and out["live_update"]["error"] is None and out["live_update"]["users"] == 1
        after = httpx.post(f"{running.url}/{alias}/_search", json={**SHOES, "size": 10}, headers={USER: "fresh"},
                           timeout=30).json()  # fmt: skip
        info = after["fuserec"]
        assert info["applied"] is True and info["fallback"] is None, info
        brands = [h["_source"]["brand"] for h in after["hits"]["hits"]]
        assert brands == ["Aeropace"] * 10, brands
        stats = stats_store.read_view(client, shop.alias("query-stats"), "running shoes")
        assert stats.exact is not None
        counts = dict(zip(["A00", "A01", "A02"], stats.exact.lookup(["A00", "A01", "A02"])[:, 2], strict=True))
        assert counts == {"A00": 1.0, "A01": 1.0, "A02": 1.0}  # purchases counted right away
        docs = item_store.read_docs(client, shop.alias("item-signals"), list(counts))  # by id: real-time
        assert [d["counts"][3] for d in docs] == [1.0, 1.0, 1.0]  # and in the item signals
        # the proxy's own search log is not part of the live path: the job adds it later
        assert read_impressions is not None
