"""Profile jobs against a real engine: build from stored events, incremental update == full rebuild,
the watermark's overlap, build from a file, erasure, and the CLI."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.event_store import read_events, record_events
from fuserec_os.errors import IndexStateError
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.jobs import Aliases, build_from_file, build_from_store, erase_user, update_from_store
from fuserec_os.profiles.store import read_all_profiles
from fuserec_os.simulate.catalog import generate_catalog, write_catalog

from .conftest import REPO, Cli
from .readable import assert_readable

CFG = ProfilesConfig(half_life_days=7.0)
TYPES = ("view", "click", "add_to_cart", "purchase")


@pytest.fixture
def aliases(client: OpenSearch, spec: MappingSpec, prefix: str, tmp_path: Path) -> Aliases:
    catalog = tmp_path / "catalog.jsonl"
    write_catalog(generate_catalog(200, seed=3), catalog)
    a = Aliases.for_prefix(prefix)
    assert ingest_products(client, catalog, spec, a.products, progress=False).ok
    return a


@pytest.fixture(scope="module")
def events_spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "events.json", "events")


def _events(seed: int, users: list[str], day_from: int, day_to: int, n: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        day = rng.uniform(day_from, day_to)
        out.append(
            {
                "user_id": rng.choice(users),
                "product_id": f"P{rng.randint(1, 200):06d}",
                "type": rng.choices(TYPES, weights=(5, 4, 2, 1))[0],
                "timestamp": f"2024-04-{1 + int(day):02d}T{int(day % 1 * 24):02d}:{rng.randint(0, 59):02d}:00Z",
            }
        )
    return out


def _store(client: OpenSearch, spec: MappingSpec, alias: str, events: list[dict[str, object]]) -> None:
    res = record_events(client, events, spec, alias, refresh=True)
    assert not res.rejected, res.rejected


def _assert_same(a: UserProfile, b: UserProfile) -> None:
    assert a.counts == b.counts and a.n_events == b.n_events
    assert a.as_of == b.as_of and a.first_seen == b.first_seen and a.last_seen == b.last_seen
    assert set(a.items) == set(b.items)
    for pid in a.items:
        assert a.items[pid].w == pytest.approx(b.items[pid].w, rel=1e-9)
    for mine, theirs in ((a.categories, b.categories), (a.brands, b.brands), (a.interests, b.interests)):
        assert set(mine) == set(theirs)
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-9)
    assert (a.price is None) == (b.price is None)
    if a.price is not None and b.price is not None:
        assert a.price.median == pytest.approx(b.price.median, rel=1e-9)
    assert (a.rating is None) == (b.rating is None)
    if a.rating is not None:
        assert a.rating == pytest.approx(b.rating, rel=1e-9)


def test_update_equals_full_rebuild(client: OpenSearch, aliases: Aliases, events_spec: MappingSpec) -> None:
    users = [f"u{i}" for i in range(12)]
    _store(client, events_spec, aliases.events, _events(1, users[:8], 0, 10, 400))
    first = build_from_store(client, aliases, CFG)
    assert first.users == 8 and first.events == 400

    # later events, some for new users; and a second update with nothing new changes nothing
    _store(client, events_spec, aliases.events, _events(2, users[4:], 10, 20, 300))
    upd = update_from_store(client, aliases, CFG)
    assert upd.events == 300 and upd.users == len({e["user_id"] for e in _events(2, users[4:], 10, 20, 300)})
    again = update_from_store(client, aliases, CFG)
    assert again.events == 0  # the overlap window is re-read, but its events are skipped by id
    incremental = read_all_profiles(client, aliases.profiles)

    full_aliases = replace(
        aliases, profiles=aliases.profiles + "-full", vectors=aliases.vectors + "-full", state=aliases.state + "-full"
    )
    build_from_store(client, full_aliases, CFG)
    full = read_all_profiles(client, full_aliases.profiles)
    assert set(full) == set(incremental) == set(users)
    for uid in users:
        # users without new events keep an older as_of: compare at the same time
        _assert_same(incremental[uid].decayed_to(full[uid].as_of, CFG), full[uid])


def test_point_in_time_build_ignores_later_events(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    _store(client, events_spec, aliases.events, _events(3, ["a", "b"], 0, 20, 200))
    cut = "2024-04-11T00:00:00Z"
    rep = build_from_store(client, aliases, CFG, as_of=pd.Timestamp(cut).to_pydatetime())
    events = read_events(client, aliases.events)
    expected = int((events["timestamp"] < cut).sum())
    assert rep.events == expected < 200
    profiles = read_all_profiles(client, aliases.profiles)
    assert sum(p.n_events for p in profiles.values()) == expected
    assert all(p.last_seen.isoformat() < cut.replace("Z", "+00:00") for p in profiles.values())


def test_build_from_file_rejects_bad_rows(client: OpenSearch, aliases: Aliases, tmp_path: Path) -> None:
    rows = [*_events(4, ["x", "y"], 0, 5, 30), {"user_id": "z", "type": "teleport", "product_id": "P000001"}]
    src = tmp_path / "lake.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = build_from_file(client, aliases, CFG, src, EventsConfig())
    assert rep.events == 30 and rep.rejected == 1 and rep.users == 2
    reject = json.loads(Path(str(rep.rejects_path)).read_text())
    assert reject["row"] == 31 and any("type" in r for r in reject["reasons"])
    assert set(read_all_profiles(client, aliases.profiles)) == {"x", "y"}


def test_erase_user_removes_everything_of_that_user_only(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    _store(client, events_spec, aliases.events, _events(5, ["keep", "gone"], 0, 10, 120))
    build_from_store(client, aliases, CFG)
    before = read_events(client, aliases.events)
    mine = int((before["user_id"] == "gone").sum())
    rep = erase_user(client, aliases, "gone")
    assert (rep.profiles, rep.events) == (1, mine)
    after = read_events(client, aliases.events)
    assert "gone" not in set(after["user_id"]) and len(after) == len(before) - mine
    assert set(read_all_profiles(client, aliases.profiles)) == {"keep"}
    assert erase_user(client, aliases, "gone").documents == 0


def test_cli_profiles_build_show_update_delete(
    cli: Cli, client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, tmp_path: Path
) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _events(6, ["ann", "bob"], 0, 9, 80)))
    cli("ingest", "events", str(src), "--no-progress")
    built = json.loads(cli("profiles", "build", "--json").stdout)
    assert built["users"] == 2 and built["events"] == 80
    shown = cli("profiles", "show", "ann").stdout
    assert shown.startswith("user ann:") and "categories:" in shown and "brands:" in shown
    assert re.search(r"seen \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \.\. \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown), shown
    assert_readable(shown)
    rebuilt = cli("profiles", "build").stdout
    assert re.search(r"as of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rebuilt) and "watermark: " in rebuilt, rebuilt
    assert_readable(rebuilt)
    data = json.loads(cli("profiles", "show", "bob", "--json").stdout)
    assert data["user_id"] == "bob" and data["events"] == sum(data["counts"].values())
    missing = cli("profiles", "show", "nobody", ok=False)
    assert missing.exit_code == 7 and "nobody" in missing.stderr
    unchanged = cli("profiles", "update").stdout
    assert "no new events" in unchanged
    assert_readable(unchanged)
    erased = json.loads(cli("profiles", "delete", "ann", "--json").stdout)
    assert erased["profiles"] == 1 and erased["events"] > 0
    assert cli("profiles", "show", "ann", ok=False).exit_code == 7


def test_update_after_a_file_build_does_not_count_stored_copies_twice(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec, tmp_path: Path
) -> None:
    rows = _events(7, ["p", "q"], 0, 6, 40)
    _store(client, events_spec, aliases.events, rows)  # the same events also reach the cluster
    src = tmp_path / "lake.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_from_file(client, aliases, CFG, src, EventsConfig())
    before = read_all_profiles(client, aliases.profiles)
    rep = update_from_store(client, aliases, CFG)
    assert rep.events == 0
    after = read_all_profiles(client, aliases.profiles)
    assert {u: p.n_events for u, p in after.items()} == {u: p.n_events for u, p in before.items()}


def test_update_is_refused_after_a_point_in_time_build(
    client: OpenSearch, aliases: Aliases, events_spec: MappingSpec
) -> None:
    _store(client, events_spec, aliases.events, _events(8, ["a"], 0, 10, 30))
    build_from_store(client, aliases, CFG, as_of=pd.Timestamp("2024-04-05T00:00:00Z").to_pydatetime())
    with pytest.raises(IndexStateError, match="point-in-time"):
        update_from_store(client, aliases, CFG)
    build_from_store(client, aliases, CFG)  # a full build clears it
    assert update_from_store(client, aliases, CFG).events == 0
