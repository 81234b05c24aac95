"""The search log (impressions) against a real engine: ingest with rejects and dedup, monthly indices, reading
with PIT paging and filters, live recording, erasure, the CLI; and the profile jobs folding it into the stored
query statistics (an update equals a full build of everything)."""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events, record_events
from fuserec_os.behaviour.search_log import (
    IMPRESSION_COLUMNS,
    delete_user_impressions,
    ingest_impressions,
    read_impressions,
    record_impressions,
    search_indices,
)
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.index.state import get_state, put_state
from fuserec_os.learn.train_job import stored_impressions
from fuserec_os.profiles import stats_store as ss
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.jobs import STATE_NAME, Aliases, build_from_store, erase_user, update_from_store
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.settings import Settings
from fuserec_os.simulate.catalog import generate_catalog, write_catalog

from .conftest import REPO, Cli

QUERIES = ("Red Running Shoes", "running shoe", "blue jacket", "wool  jacket", "kids shoes", "garden hose")
TYPES = ("view", "click", "add_to_cart", "purchase")
PIDS = [f"P{i:06d}" for i in range(1, 41)]
GOOD = [
    {"request_id": "r1", "user_id": "u1", "timestamp": "2024-03-31T23:30:00-02:00", "query": "Trail  Shoes",
     "product_ids": "P1|P2|P3", "session_id": "s1"},  # April in UTC
    {"request_id": "r2", "user_id": "u2", "timestamp": "2024-05-02T10:00:00Z", "query": "jacket",
     "product_ids": '["P4", "P5"]'},
    {"request_id": "r3", "user_id": "u1", "timestamp": "1709287200", "query": "", "product_ids": "P6"},  # March
]  # fmt: skip
BAD = [
    {"request_id": "", "user_id": "u1", "timestamp": "2024-05-01T00:00:00Z", "product_ids": "P1"},
    {"request_id": "r9", "user_id": "u1", "timestamp": "later", "product_ids": "P1||P3"},
]
COLUMNS = ["request_id", "user_id", "session_id", "timestamp", "query", "product_ids"]


@pytest.fixture(scope="module")
def searches_spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "searches.json", "searches")


@pytest.fixture
def searches_alias(settings: Settings) -> str:
    return settings.alias("searches")


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def _ingest(client: OpenSearch, src: Path, spec: MappingSpec, alias: str, **kwargs: Any) -> Any:
    return ingest_impressions(client, src, spec, alias, progress=False, **kwargs)


def _open_pits(client: OpenSearch) -> set[str]:
    return {p["pit_id"] for p in client.get_all_pits().get("pits", [])}


def _impressions(seed: int, n: int, day_from: int, day_to: int, users: int = 6) -> list[dict[str, Any]]:
    """Logged searches in April 2024 (ids unique per seed); about one in ten without a query."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        day = rng.uniform(day_from, day_to)
        row: dict[str, Any] = {
            "request_id": f"s{seed}-{i}",
            "user_id": f"u{rng.randrange(users)}",
            "timestamp": f"2024-04-{1 + int(day):02d}T{int(day % 1 * 24):02d}:{rng.randint(0, 59):02d}:00Z",
            "product_ids": rng.sample(PIDS, rng.randint(3, 10)),
        }
        if rng.random() < 0.9:
            row["query"] = rng.choice(QUERIES)
        if i % 7 == 3:
            row["product_ids"] = []  # a search that found nothing: logged too (issue 12)
        out.append(row)
    return out


def _events(seed: int, n: int, day_from: int, day_to: int, users: int = 6) -> list[dict[str, Any]]:
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
            ev["request_id"] = f"e{seed}-{i // 3}"
        out.append(ev)
    return out


# ------------------------------------------------------------------------------------------ the store


def test_ingest_rejects_dedups_and_uses_monthly_indices(
    client: OpenSearch, searches_spec: MappingSpec, searches_alias: str, tmp_path: Path
) -> None:
    src = _write_csv(tmp_path / "searches.csv", [GOOD[0], BAD[0], GOOD[1], BAD[1], GOOD[2], GOOD[0]])
    rep = _ingest(client, src, searches_spec, searches_alias)
    assert (rep.read, rep.stored, rep.duplicates_in_file, rep.rejected, rep.already_stored) == (6, 3, 1, 2, 0)
    assert rep.shown == 6 and not rep.ok and rep.as_dict()["ok"] is False
    months = [f"{searches_alias}-2024.{m}" for m in ("03", "04", "05")]
    assert rep.indices == rep.created_indices == months
    assert search_indices(client, searches_alias) == months
    rejects = [json.loads(line) for line in Path(str(rep.rejects_path)).read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 4]
    assert rejects[0]["reasons"] == ["request_id: required, missing or empty"]
    assert rejects[1]["request_id"] == "r9" and [r.partition(":")[0] for r in rejects[1]["reasons"]] == [
        "timestamp",
        "product_ids",
    ]

    again = _ingest(client, src, searches_spec, searches_alias, allow_rejects=True)
    assert (again.stored, again.already_stored, again.rejected, again.ok) == (0, 3, 2, True)
    assert again.created_indices == []
    client.indices.refresh(index=searches_alias)
    assert int(client.count(index=searches_alias)["count"]) == 3
    stored = client.get(index=f"{searches_alias}-2024.04", id="r1")["_source"]
    assert stored["product_ids"] == ["P1", "P2", "P3"] and stored["n_shown"] == 3
    assert stored["timestamp"] == "2024-04-01T01:30:00.000Z" and stored["query_norm"] == "trail shoes"


def test_read_round_trip_with_paging_and_filters(
    client: OpenSearch, searches_spec: MappingSpec, searches_alias: str, settings: Settings
) -> None:
    aliases = Aliases.for_prefix(settings.index_prefix)
    assert aliases.searches == searches_alias
    empty = read_impressions(client, searches_alias)  # no alias yet: empty, not an error
    assert len(empty) == 0 and list(empty.columns) == list(IMPRESSION_COLUMNS)
    assert stored_impressions(client, aliases) is None  # training then runs without impressions
    pits_before = _open_pits(client)
    rows = _impressions(1, 20, 0, 29)
    res = record_impressions(client, rows, searches_spec, searches_alias, refresh=True)
    assert (res.accepted, res.already_stored, res.rejected) == (20, 0, [])

    frame = read_impressions(client, searches_alias, page_size=3)  # 7 pages
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == IMPRESSION_COLUMNS
    assert len(frame) == 20 and frame["request_id"].is_unique and frame["ingested_at"].notna().all()
    assert frame["timestamp"].is_monotonic_increasing
    by_id = {r["request_id"]: r for r in rows}
    for rid, shown, query in zip(frame["request_id"], frame["product_ids"], frame["query"], strict=True):
        assert shown == by_id[rid]["product_ids"]  # order kept
        given = by_id[rid].get("query")
        assert query == (" ".join(given.split()) if given else None)  # whitespace collapsed, like events
    assert _open_pits(client) == pits_before  # the point in time was deleted
    training = stored_impressions(client, aliases)
    assert training is not None and len(training) == 20

    cutoff = pd.Timestamp("2024-04-15T00:00:00Z").to_pydatetime()
    early = read_impressions(client, searches_alias, before=cutoff, page_size=4)
    expected = sum(datetime.fromisoformat(r["timestamp"]) < cutoff for r in rows)
    assert 0 < expected < 20 and len(early) == expected and (early["timestamp"] < cutoff).all()

    watermark = frame["ingested_at"].max().to_pydatetime()
    assert len(read_impressions(client, searches_alias, since_ingested=watermark)) == 0
    time.sleep(0.01)  # ingested_at has millisecond resolution
    later = {"request_id": "late", "user_id": "u9", "timestamp": "2024-06-30T00:00:00Z", "product_ids": ["P1"]}
    record_impressions(client, [later], searches_spec, searches_alias, refresh=True)
    assert list(read_impressions(client, searches_alias, since_ingested=watermark)["request_id"]) == ["late"]
    assert f"{searches_alias}-2024.06" in search_indices(client, searches_alias)
    assert _open_pits(client) == pits_before


def test_record_validates_and_dedups_and_delete_by_user(
    client: OpenSearch, searches_spec: MappingSpec, searches_alias: str
) -> None:
    assert delete_user_impressions(client, searches_alias, "u1") == 0  # nothing stored yet
    batch: list[Any] = [
        {"request_id": "a", "user_id": "u1", "timestamp": "2024-05-01T00:00:00Z", "product_ids": "P1|P2"},
        {"request_id": "b", "user_id": "u2", "timestamp": "2024-05-01T00:01:00Z", "product_ids": ["P2"]},
        {"request_id": "c", "user_id": "u1"},  # invalid
        "not a search",
        {"request_id": "a", "user_id": "u1", "timestamp": "2024-05-01T00:00:00Z", "product_ids": "P1|P2"},  # repeat
        {"request_id": "d", "user_id": "u1", "timestamp": "2024-04-30T23:00:00Z", "product_ids": ["P3"]},
    ]
    res = record_impressions(client, batch, searches_spec, searches_alias, refresh=True)
    assert (res.accepted, res.already_stored) == (3, 1)
    assert [i for i, _ in res.rejected] == [2, 3]
    assert any(r.startswith("timestamp: required") for r in res.rejected[0][1])
    assert "expected an object" in res.rejected[1][1][0]
    replay = record_impressions(client, batch[:2], searches_spec, searches_alias, refresh=True)
    assert (replay.accepted, replay.already_stored) == (0, 2)

    assert delete_user_impressions(client, searches_alias, "u1") == 2
    left = read_impressions(client, searches_alias)
    assert list(left["request_id"]) == ["b"]
    assert delete_user_impressions(client, searches_alias, "u1") == 0


def test_cli_ingest_impressions(cli: Cli, client: OpenSearch, searches_alias: str, tmp_path: Path) -> None:
    rows = [
        {"rid": "q1", "user_id": "u1", "ts": "2024-05-01T10:00:00Z", "query": "shoes", "shown": ["P1", "P2"], "x": 1},
        {"rid": "q2", "user_id": "u1", "ts": "2024-06-01T10:00:00Z", "shown": ["P3"]},
    ]
    src = tmp_path / "foreign.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = "request_id=rid,timestamp=ts,product_ids=shown"
    out = cli("ingest", "impressions", str(src), "--map", mapping, "--no-progress").stdout
    assert "read 2 rows, stored 2 searches (3 products shown), already stored 0, rejected 0" in out
    assert f"{searches_alias}-2024.05, {searches_alias}-2024.06" in out and "ignored unknown column(s): x" in out

    again = json.loads(cli("ingest", "impressions", str(src), "--map", mapping, "--no-progress", "--json").stdout)
    assert (again["stored"], again["already_stored"], again["ok"]) == (0, 2, True)

    mixed = _write_csv(tmp_path / "mixed.csv", [GOOD[1], BAD[1]])
    res = cli("ingest", "impressions", str(mixed), "--no-progress", "--json", ok=False)
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert (report["stored"], report["rejected"], report["ok"]) == (1, 1, False)
    assert Path(report["rejects_path"]).exists()
    assert cli("ingest", "impressions", str(mixed), "--no-progress", "--allow-rejects").exit_code == 0
    bad_map = cli("ingest", "impressions", str(src), "--map", "title=rid", ok=False)
    assert bad_map.exit_code == 8 and "title" in bad_map.stderr and "product_ids" in bad_map.stderr
    helped = cli("ingest", "impressions", "--help").stdout
    assert "position-debiased" in helped and "candidates" in helped and "found nothing" in helped


def test_a_search_that_found_nothing_is_stored_and_a_null_is_rejected(
    cli: Cli, client: OpenSearch, searches_alias: str, tmp_path: Path
) -> None:
    """Issue 12: an explicit empty page ([] in JSON, an empty cell or "[]" in CSV) is a search with nothing
    shown; a null or a missing product_ids column is a broken row, rejected naming the row and the field."""
    base = {"user_id": "u1", "timestamp": "2024-05-01T10:00:00Z", "query": "xylophone"}
    rows = [
        {"request_id": "j1", **base, "product_ids": []},
        {"request_id": "j2", **base, "product_ids": None},
        {"request_id": "j3", **base},
        {"request_id": "j4", **base, "product_ids": ["P1", "P2"], "experiment": "e", "variant": "treatment"},
        {"request_id": "j5", **base, "product_ids": [], "experiment": "e", "variant": "control"},
    ]
    src = tmp_path / "with-empty.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli("ingest", "impressions", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1  # two rows rejected
    assert "stored 3 searches (2 products shown)" in res.stdout
    assert "2 of the stored searches showed nothing (an empty product_ids: no hits)" in res.stdout
    report = json.loads(cli("ingest", "impressions", str(src), "--no-progress", "--json", ok=False).stdout)
    assert (report["already_stored"], report["rejected"], report["empty"]) == (3, 2, 0)
    rejects = [json.loads(line) for line in Path(report["rejects_path"]).read_text().splitlines()]
    assert [(r["row"], r["request_id"]) for r in rejects] == [(2, "j2"), (3, "j3")]
    why = "product_ids: required, missing or null (a search that showed nothing is an empty list: [] or an empty cell)"
    assert all(r["reasons"] == [why] for r in rejects)

    csv_src = _write_csv(
        tmp_path / "with-empty.csv",
        [{"request_id": "c1", **base, "product_ids": ""}, {"request_id": "c2", **base, "product_ids": "[]"},
         {"request_id": "c3", **base, "product_ids": "P7|P8"}],
    )  # fmt: skip
    out = json.loads(cli("ingest", "impressions", str(csv_src), "--no-progress", "--json").stdout)
    assert (out["stored"], out["empty"], out["shown"], out["rejected"]) == (3, 2, 2, 0)

    client.indices.refresh(index=searches_alias)
    for rid in ("j1", "j5", "c1", "c2"):
        doc = client.get(index=f"{searches_alias}-2024.05", id=rid)["_source"]
        assert doc["product_ids"] == [] and doc["n_shown"] == 0 and doc["query"] == "xylophone"
    frame = read_impressions(client, searches_alias)
    shown = dict(zip(frame["request_id"], frame["product_ids"], strict=True))
    assert shown["j1"] == shown["c1"] == [] and shown["j4"] == ["P1", "P2"] and shown["c3"] == ["P7", "P8"]
    counted = client.count(index=searches_alias, body={"query": {"term": {"n_shown": 0}}})["count"]
    assert counted == 4  # the empty pages can be found (and counted) in the engine
    by_experiment = read_impressions(client, searches_alias, experiment="e")
    assert sorted(by_experiment["request_id"]) == ["j4", "j5"]


# ------------------------------------------------------------------------------------------ profile jobs


@pytest.fixture
def aliases(client: OpenSearch, spec: MappingSpec, prefix: str, tmp_path: Path) -> Aliases:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(generate_catalog(60, seed=3), catalog)
    a = Aliases.for_prefix(prefix)
    assert a.searches == f"{prefix}searches"
    assert ingest_products(client, catalog, spec, a.products, progress=False).ok
    return a


@pytest.fixture(scope="module")
def events_spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "events.json", "events")


def _store(
    client: OpenSearch,
    aliases: Aliases,
    events_spec: MappingSpec,
    searches_spec: MappingSpec,
    events: list[dict[str, Any]],
    searches: list[dict[str, Any]],
) -> None:
    if events:
        assert not record_events(client, events, events_spec, aliases.events, refresh=True).rejected
    if searches:
        assert not record_impressions(client, searches, searches_spec, aliases.searches, refresh=True).rejected


def _full_stats(client: OpenSearch, aliases: Aliases) -> QueryStats:
    return (
        QueryStats()
        .add_events(read_events(client, aliases.events))
        .add_impressions(read_impressions(client, aliases.searches))
    )


def _assert_same_stats(got: QueryStats, want: QueryStats) -> None:
    """Every doc equal: counts exactly, examinations (float sums in another order) to rounding."""
    got_docs, want_docs = list(got.to_docs()), list(want.to_docs())
    assert [d["id"] for d in got_docs] == [d["id"] for d in want_docs]
    assert any(sum(d["examinations"]) > 0 for d in want_docs)  # the impressions are in
    for g, w in zip(got_docs, want_docs, strict=True):
        np.testing.assert_allclose(g.pop("examinations"), w.pop("examinations"), rtol=1e-12, atol=1e-12)
        assert g == w


def _assert_same_meta(got: dict[str, Any] | None, want: QueryStats) -> None:
    assert got is not None
    sums = want.prior_sums()
    for kind in ("q", "t"):
        np.testing.assert_allclose(got["sums"][kind]["num"], sums[kind][0], rtol=1e-12)
        assert got["sums"][kind]["den"] == pytest.approx(sums[kind][1], rel=1e-12)
        assert got["sums"][kind]["keys"] == sum(1 for i in want.doc_ids() if i.startswith(f"{kind}:"))
        np.testing.assert_allclose(got["priors"][kind], want.priors()[kind], rtol=1e-12)


def test_update_with_impressions_equals_a_full_build(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, searches_spec: MappingSpec
) -> None:
    _store(client, aliases, events_spec, searches_spec, _events(1, 240, 0, 10), _impressions(1, 60, 0, 10))
    built = build_from_store(client, aliases, ProfilesConfig())
    assert (built.events, built.impressions) == (240, 60)
    assert built.stats_docs == len(_full_stats(client, aliases))
    state = get_state(client, aliases.state, STATE_NAME)
    assert state is not None and state["impressions"]["watermark"] and state["impressions"]["recent_ids"]

    # more of both (new queries' terms and new products for known keys), then searches only
    _store(client, aliases, events_spec, searches_spec, _events(2, 150, 10, 20, 9), _impressions(2, 40, 10, 20, 9))
    upd = update_from_store(client, aliases, ProfilesConfig())
    assert (upd.events, upd.impressions) == (150, 40) and upd.stats_docs > 0
    _store(client, aliases, events_spec, searches_spec, [], _impressions(3, 25, 20, 25))
    only = update_from_store(client, aliases, ProfilesConfig())
    assert (only.events, only.impressions, only.users) == (0, 25, 0) and only.stats_docs > 0
    assert only.as_of == upd.as_of and only.watermark == upd.watermark  # the events' watermark stays
    again = update_from_store(client, aliases, ProfilesConfig())
    assert (again.events, again.impressions, again.stats_docs) == (0, 0, 0)  # overlap re-read, skipped by id

    full = _full_stats(client, aliases)
    _assert_same_stats(ss.read_all(client, aliases.stats), full)
    _assert_same_meta(ss.read_meta(client, aliases.stats), full)

    other = replace(
        aliases,
        profiles=aliases.profiles + "-full",
        vectors=aliases.vectors + "-full",
        stats=aliases.stats + "-full",
        state=aliases.state + "-full",
    )
    rebuilt = build_from_store(client, other, ProfilesConfig())
    assert (rebuilt.events, rebuilt.impressions, rebuilt.stats_docs) == (390, 125, len(full))
    _assert_same_stats(ss.read_all(client, aliases.stats), ss.read_all(client, other.stats))
    view, want = ss.read_view(client, aliases.stats, "red running shoes"), full.view("red running shoes")
    got_rates, want_rates = view.exact_rates(PIDS), want.exact_rates(PIDS)
    assert got_rates is not None and want_rates is not None
    np.testing.assert_allclose(got_rates[0], want_rates[0], rtol=1e-9)

    # a point-in-time build uses only the searches before as_of
    cut = pd.Timestamp("2024-04-11T00:00:00Z").to_pydatetime()
    pit = build_from_store(client, other, ProfilesConfig(), as_of=cut)
    stored = read_impressions(client, aliases.searches)
    assert pit.impressions == int((stored["timestamp"] < cut).sum()) < len(stored)


def test_update_adds_every_search_when_the_state_predates_the_search_log(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, searches_spec: MappingSpec
) -> None:
    _store(client, aliases, events_spec, searches_spec, _events(4, 150, 0, 10), [])
    build_from_store(client, aliases, ProfilesConfig())
    state = get_state(client, aliases.state, STATE_NAME)
    assert state is not None
    state.pop("impressions")  # as written before the search log was stored
    put_state(client, aliases.state, STATE_NAME, state)
    _store(client, aliases, events_spec, searches_spec, _events(5, 60, 10, 15), _impressions(4, 50, 0, 15))
    upd = update_from_store(client, aliases, ProfilesConfig())
    assert (upd.events, upd.impressions) == (60, 50)
    full = _full_stats(client, aliases)
    _assert_same_stats(ss.read_all(client, aliases.stats), full)
    _assert_same_meta(ss.read_meta(client, aliases.stats), full)
    assert update_from_store(client, aliases, ProfilesConfig()).impressions == 0


def test_erase_user_counts_impressions(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, searches_spec: MappingSpec, cli: Cli
) -> None:
    _store(client, aliases, events_spec, searches_spec, _events(6, 80, 0, 5, 3), _impressions(6, 30, 0, 5, 3))
    build_from_store(client, aliases, ProfilesConfig())
    before = read_impressions(client, aliases.searches)
    mine = int((before["user_id"] == "u1").sum())
    events = int((read_events(client, aliases.events)["user_id"] == "u1").sum())
    assert mine > 0
    rep = erase_user(client, aliases, "u1")
    assert (rep.profiles, rep.events, rep.impressions) == (1, events, mine)
    assert rep.documents == 1 + events + mine
    after = read_impressions(client, aliases.searches)
    assert "u1" not in set(after["user_id"]) and len(after) == len(before) - mine
    assert erase_user(client, aliases, "u1").documents == 0
    erased = json.loads(cli("profiles", "delete", "u2", "--json").stdout)
    assert erased["impressions"] == int((before["user_id"] == "u2").sum()) > 0


# ------------------------------------------------------------------------------------------ issue 8


def test_cli_a_search_showing_thousands_of_products_is_rejected(
    cli: Cli, client: OpenSearch, searches_alias: str, tmp_path: Path
) -> None:
    rows = [
        {"request_id": "r1", "user_id": "u1", "timestamp": "2024-05-01T10:00:00Z", "product_ids": ["P1", "P2"]},
        {"request_id": "r2", "user_id": "u1", "timestamp": "2024-05-01T10:01:00Z",
         "product_ids": [f"P{i}" for i in range(5000)]},
    ]  # fmt: skip
    src = tmp_path / "searches.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = cli("ingest", "impressions", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1 and "stored 1 searches" in res.stdout and "rejected 1" in res.stdout
    (reject,) = [json.loads(line) for line in (tmp_path / "searches.jsonl.rejects.jsonl").read_text().splitlines()]
    assert reject["request_id"] == "r2" and reject["reasons"][0].startswith("product_ids: 5000 ids, at most 1000")

    raised = cli("ingest", "impressions", str(src), "--no-progress", "--max-shown", "5000")
    assert "stored 1 searches (5000 products shown)" in raised.stdout and "already stored 1" in raised.stdout
