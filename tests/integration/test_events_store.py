"""Behaviour events against a real engine: monthly indices, dedup by id, rejects, reading with PIT, erasure."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.event_store import (
    delete_user_events,
    event_indices,
    ingest_events,
    read_events,
    record_events,
)
from fuserec_os.behaviour.events import EVENT_COLUMNS
from fuserec_os.index.ingest import index_documents
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.settings import Settings

from .conftest import REPO, Cli

COLUMNS = ["user_id", "type", "product_id", "timestamp", "query", "position", "price", "quantity", "request_id"]
GOOD = [
    {"user_id": "u1", "type": "view", "product_id": "P1", "timestamp": "2024-05-01T10:00:00Z"},
    {"user_id": "u1", "type": "Search_Click", "product_id": "P1", "timestamp": "2024-05-01T12:00:05+02:00",
     "query": "Trail  Shoes", "position": "2", "request_id": "r1"},
    {"user_id": "u2", "type": "order", "product_id": "P2", "timestamp": "1714564800", "price": "19.99",
     "quantity": "2"},
]  # fmt: skip
BAD = [
    {"user_id": "", "type": "view", "product_id": "P1", "timestamp": "2024-05-01T10:00:00Z"},  # no user
    {"user_id": "u3", "type": "like", "product_id": "P1", "timestamp": "soon", "position": "0"},  # three problems
]


@pytest.fixture(scope="session")
def events_spec() -> MappingSpec:
    return load_mapping(REPO / "mappings" / "events.json", "events")


@pytest.fixture
def events_alias(settings: Settings) -> str:
    return settings.alias("events")


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def _count(client: OpenSearch, alias: str) -> int:
    client.indices.refresh(index=alias)
    return int(client.count(index=alias)["count"])


def _ingest(client: OpenSearch, src: Path, spec: MappingSpec, alias: str, **kwargs: Any) -> Any:
    return ingest_events(client, src, spec, alias, cfg=EventsConfig(), products_alias=None, progress=False, **kwargs)


def test_mixed_file_rejects_bad_rows_with_reasons_and_stores_the_rest(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str, tmp_path: Path
) -> None:
    src = _write_csv(tmp_path / "events.csv", [GOOD[0], BAD[0], GOOD[1], BAD[1], GOOD[2]])
    rep = _ingest(client, src, events_spec, events_alias)
    assert (rep.read, rep.stored, rep.rejected, rep.engine_rejected, rep.already_stored) == (5, 3, 2, 0, 0)
    assert not rep.ok and rep.indices == [f"{events_alias}-2024.05"]
    assert rep.as_dict()["ok"] is False

    rejects = [json.loads(line) for line in Path(str(rep.rejects_path)).read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 4]
    assert rejects[0]["reasons"] == ["user_id: required, missing or empty"]
    assert [why.partition(":")[0] for why in rejects[1]["reasons"]] == ["type", "timestamp", "position"]
    assert rejects[1]["record"]["timestamp"] == "soon" and "event_id" in rejects[1]  # the row as read

    stored = {h["_source"]["type"]: h["_source"] for h in client.search(index=events_alias)["hits"]["hits"]}
    assert set(stored) == {"view", "click", "purchase"}
    click = stored["click"]
    assert click["timestamp"] == "2024-05-01T10:00:05.000Z"  # UTC, milliseconds
    assert (click["query"], click["query_norm"], click["position"], click["request_id"]) == (
        "Trail Shoes",
        "trail shoes",
        2,
        "r1",
    )
    purchase = stored["purchase"]
    assert purchase["timestamp"] == "2024-05-01T12:00:00.000Z" and purchase["quantity"] == 2
    assert purchase["price"] == pytest.approx(19.99)
    assert all(doc["ingested_at"].endswith("Z") for doc in stored.values())
    mapping = client.indices.get_mapping(index=rep.indices[0])[rep.indices[0]]["mappings"]
    assert mapping["_meta"]["mapping_version"] == events_spec.version


def test_reingesting_the_same_file_stores_no_duplicates(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str, tmp_path: Path
) -> None:
    src = _write_csv(tmp_path / "events.csv", GOOD)
    first = _ingest(client, src, events_spec, events_alias)
    assert first.ok and first.stored == 3 and first.created_indices == [f"{events_alias}-2024.05"]
    ingested_at = {h["_id"]: h["_source"]["ingested_at"] for h in client.search(index=events_alias)["hits"]["hits"]}

    again = _ingest(client, src, events_spec, events_alias)
    assert (again.stored, again.already_stored, again.rejected) == (0, 3, 0)
    assert again.ok and again.created_indices == [] and again.rejects_path is None
    assert _count(client, events_alias) == 3
    # the stored events are the originals (create never overwrites)
    after = {h["_id"]: h["_source"]["ingested_at"] for h in client.search(index=events_alias)["hits"]["hits"]}
    assert after == ingested_at


def test_duplicates_inside_one_file_are_counted_and_stored_once(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str, tmp_path: Path
) -> None:
    same_moment = dict(GOOD[0], timestamp="2024-05-01T12:00:00+02:00", type="VIEW")  # GOOD[0] spelt differently
    rows = [GOOD[0], GOOD[1], same_moment, GOOD[1]]
    rep = _ingest(client, _write_csv(tmp_path / "dups.csv", rows), events_spec, events_alias)
    assert (rep.read, rep.stored, rep.duplicates_in_file, rep.already_stored, rep.rejected) == (4, 2, 2, 0, 0)
    assert rep.read == rep.stored + rep.already_stored + rep.duplicates_in_file + rep.rejected
    assert _count(client, events_alias) == 2


def test_events_spanning_three_months_land_in_three_indices_behind_the_alias(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str, tmp_path: Path
) -> None:
    rows = [
        dict(GOOD[0], timestamp="2024-03-31T23:30:00-01:00"),  # April in UTC
        dict(GOOD[0], timestamp="2024-05-31T23:59:59.999Z"),
        dict(GOOD[0], timestamp="2024-06-01T00:00:00Z"),
        dict(GOOD[0], timestamp="2024-06-15T08:00:00Z"),
    ]
    src = tmp_path / "months.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = _ingest(client, src, events_spec, events_alias)
    expected = [f"{events_alias}-2024.04", f"{events_alias}-2024.05", f"{events_alias}-2024.06"]
    assert rep.stored == 4 and rep.indices == expected and rep.created_indices == expected
    assert event_indices(client, events_alias) == expected
    client.indices.refresh(index=events_alias)
    assert [client.count(index=name)["count"] for name in expected] == [1, 1, 2]
    assert client.count(index=events_alias)["count"] == 4


def test_unknown_products_are_counted_and_reported_but_stored(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str, settings: Settings, tmp_path: Path
) -> None:
    products = settings.alias("products")
    client.indices.create(index=products, body={"mappings": {"properties": {"product_id": {"type": "keyword"}}}})
    index_documents(client, products, [{"product_id": "P1"}])
    client.indices.refresh(index=products)
    rows = [GOOD[0], dict(GOOD[0], product_id="X9"), dict(GOOD[0], product_id="X8", user_id="u9"), GOOD[2]]
    src = _write_csv(tmp_path / "unknown.csv", rows)
    rep = ingest_events(client, src, events_spec, events_alias, products_alias=products, progress=False)
    assert rep.ok and rep.stored == 4 and rep.catalog_products == 1
    assert rep.unknown_products == 3 and rep.unknown_product_examples == ["X9", "X8", "P2"]
    assert _count(client, events_alias) == 4

    missing = ingest_events(
        client, src, events_spec, events_alias, products_alias=settings.alias("nocatalog"), progress=False
    )
    assert missing.catalog_products is None and missing.unknown_products == 0 and missing.already_stored == 4


def test_record_events_validates_and_dedups(client: OpenSearch, events_spec: MappingSpec, events_alias: str) -> None:
    now = datetime.now(timezone.utc)
    live = [
        {"user_id": "u1", "type": "click", "product_id": "P1", "timestamp": now.isoformat(), "request_id": "r7"},
        {"user_id": "u1", "type": "teleport", "product_id": "P1", "timestamp": now.isoformat()},
        {"event_id": "given-1", "user_id": "u2", "type": "cart", "product_id": "P2", "timestamp": now.timestamp()},
    ]
    res = record_events(client, live, events_spec, events_alias, refresh=True)
    assert (res.accepted, res.already_stored) == (2, 0)
    assert len(res.rejected) == 1 and res.rejected[0][0] == 1 and "teleport" in res.rejected[0][1][0]
    assert client.get(index=f"{events_alias}-{now:%Y.%m}", id="given-1")["_source"]["type"] == "add_to_cart"

    again = record_events(client, [live[0], live[2], live[2]], events_spec, events_alias, refresh=True)
    assert (again.accepted, again.already_stored, again.rejected) == (0, 3, [])
    assert client.count(index=events_alias)["count"] == 2


def _seed_events(client: OpenSearch, spec: MappingSpec, alias: str, n: int) -> list[dict[str, Any]]:
    """n events for users u0..u2 over 3 months, several sharing a timestamp (so the tiebreaker matters)."""
    start = datetime(2024, 4, 20, tzinfo=timezone.utc)
    events = [
        {
            "user_id": f"u{i % 3}",
            "type": ["view", "click", "add_to_cart", "purchase"][i % 4],
            "product_id": f"P{i % 7}",
            "timestamp": (start + timedelta(days=i // 2 * 2)).isoformat(),  # pairs share a moment
            "query": "shoes" if i % 5 == 0 else None,
            "position": (i % 9) + 1 if i % 2 else None,
            "price": float(i) if i % 4 == 3 else None,
            "quantity": 1 if i % 4 == 3 else None,
            "session_id": f"s{i // 10}",
        }
        for i in range(n)
    ]
    res = record_events(client, events, spec, alias, refresh=True)
    assert res.accepted == n and not res.rejected
    return events


def _open_pits(client: OpenSearch) -> set[str]:
    return {p["pit_id"] for p in client.get_all_pits().get("pits", [])}


def test_read_events_round_trip_with_paging_and_filters(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str
) -> None:
    assert len(read_events(client, events_alias)) == 0  # no alias yet: empty, not an error
    pits_before = _open_pits(client)
    events = _seed_events(client, events_spec, events_alias, 60)
    assert len(event_indices(client, events_alias)) == 3

    frame = read_events(client, events_alias, page_size=7)  # 9 pages
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == EVENT_COLUMNS
    assert len(frame) == 60 and frame["event_id"].is_unique
    assert list(frame.sort_values(["timestamp", "event_id"])["event_id"]) == list(frame["event_id"])
    assert frame["ingested_at"].notna().all()
    assert int(frame["query"].notna().sum()) == sum(e["query"] is not None for e in events)
    assert int(frame["position"].notna().sum()) == 30 and frame["position"].min() == 1
    assert _open_pits(client) == pits_before  # the point in time was deleted

    cutoff = pd.Timestamp("2024-05-01T00:00:00Z").to_pydatetime()
    early = read_events(client, events_alias, before=cutoff, page_size=4)
    expected_early = sum(datetime.fromisoformat(e["timestamp"]) < cutoff for e in events)
    assert 0 < expected_early < 60
    assert len(early) == expected_early and (early["timestamp"] < cutoff).all()

    u1 = read_events(client, events_alias, user_ids={"u1"}, page_size=5)
    assert len(u1) == 20 and set(u1["user_id"]) == {"u1"}
    both = read_events(client, events_alias, user_ids=["u1", "u2"], before=cutoff)
    assert set(both["user_id"]) == {"u1", "u2"} and len(both) == len(early[early["user_id"] != "u0"])
    assert len(read_events(client, events_alias, user_ids=[])) == 0

    watermark = frame["ingested_at"].max().to_pydatetime()
    assert len(read_events(client, events_alias, since_ingested=watermark)) == 0
    time.sleep(0.01)  # ingested_at has millisecond resolution
    later = {"user_id": "u9", "type": "view", "product_id": "P1", "timestamp": "2024-06-30T00:00:00Z"}
    record_events(client, [later], events_spec, events_alias, refresh=True)
    fresh = read_events(client, events_alias, since_ingested=watermark)
    assert list(fresh["user_id"]) == ["u9"]
    assert _open_pits(client) == pits_before


def test_delete_user_events_removes_only_that_user(
    client: OpenSearch, events_spec: MappingSpec, events_alias: str
) -> None:
    assert delete_user_events(client, events_alias, "u1") == 0  # nothing stored yet
    _seed_events(client, events_spec, events_alias, 30)
    assert delete_user_events(client, events_alias, "u1") == 10
    frame = read_events(client, events_alias)
    assert len(frame) == 20 and "u1" not in set(frame["user_id"])
    assert delete_user_events(client, events_alias, "u1") == 0


def test_cli_ingest_events_summary_json_and_exit_codes(
    cli: Cli, client: OpenSearch, events_alias: str, tmp_path: Path
) -> None:
    rows = [
        {"visitor": "u1", "kind": "view", "sku": "P1", "ts": "2024-05-01T10:00:00Z", "extra": "x"},
        {"visitor": "u1", "kind": "buy", "sku": "P2", "ts": "2024-06-01T10:00:00Z"},
    ]
    src = tmp_path / "foreign.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = "user_id=visitor,type=kind,product_id=sku,timestamp=ts"
    out = cli("ingest", "events", str(src), "--map", mapping, "--no-progress")
    assert "read 2 rows, stored 2, already stored 0, rejected 0" in out.stdout
    assert f"{events_alias}-2024.05, {events_alias}-2024.06" in out.stdout
    assert "extra" in out.stdout and "not checked" in out.stdout  # unknown column and no catalog: both said
    assert _count(client, events_alias) == 2

    again = cli("ingest", "events", str(src), "--map", mapping, "--no-progress", "--json")
    report = json.loads(again.stdout)
    assert (report["stored"], report["already_stored"], report["ok"]) == (0, 2, True)

    mixed = tmp_path / "mixed.csv"
    _write_csv(mixed, [GOOD[2], BAD[1]])
    res = cli("ingest", "events", str(mixed), "--no-progress", "--json", ok=False)
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert (report["stored"], report["rejected"], report["ok"]) == (1, 1, False)
    assert Path(report["rejects_path"]).exists()
    assert cli("ingest", "events", str(mixed), "--no-progress", "--allow-rejects").exit_code == 0

    bad_map = cli("ingest", "events", str(src), "--map", "title=visitor", ok=False)
    assert bad_map.exit_code == 8 and "title" in bad_map.stderr and "user_id" in bad_map.stderr
    assert "type_aliases" in cli("ingest", "events", "--help").stdout


# --- issue 8 ---------------------------------------------------------------------------------------
def test_a_reused_event_id_with_other_content_is_rejected_naming_both_rows(
    cli: Cli, client: OpenSearch, events_alias: str, tmp_path: Path
) -> None:
    """A click, then a purchase under the same event_id: the purchase must not vanish as a "repeat"."""
    columns = ["event_id", *COLUMNS]
    click = {
        "event_id": "e1",
        "user_id": "u1",
        "type": "click",
        "product_id": "P1",
        "timestamp": "2024-05-01T10:00:00Z",
    }
    rows = [click, dict(click, type="purchase", price="19.99"), dict(click), dict(click, event_id="e2")]
    src = _write_csv(tmp_path / "reused.csv", rows, columns)
    res = cli("ingest", "events", str(src), "--no-progress", ok=False)
    assert res.exit_code == 1
    assert "read 4 rows, stored 2, already stored 0, rejected 1" in res.stdout
    assert "1 identical repeat(s) of an event in the file, counted once" in res.stdout
    (reject,) = [json.loads(line) for line in (tmp_path / "reused.csv.rejects.jsonl").read_text().splitlines()]
    assert reject["row"] == 2 and reject["event_id"] == "e1" and reject["record"]["type"] == "purchase"
    assert reject["reasons"] == [
        "event_id: 'e1' of row 2 is also the event_id of row 1, with different content (row 1 was kept; give "
        "each event its own event_id, or leave the column empty to derive one from the content)"
    ]
    assert client.get(index=f"{events_alias}-2024.05", id="e1")["_source"]["type"] == "click"


def test_cli_an_events_file_that_stops_parsing_says_what_was_stored(
    cli: Cli, client: OpenSearch, events_alias: str, tmp_path: Path
) -> None:
    lines = ["user_id,type,product_id,timestamp"]
    lines += [f"u{i},view,P{i},2024-05-01T10:00:00Z" for i in range(1, 5001)]
    lines += ["u0,view,P0,2024-05-01T10:00:00Z,surplus", "u9,view,P9,2024-05-01T10:00:00Z"]
    src = tmp_path / "ragged.csv"
    src.write_text("\n".join(lines) + "\n")
    res = cli("ingest", "events", str(src), "--no-progress", ok=False)
    assert res.exit_code == 8 and "line 5002" in res.stderr
    assert f"5000 row(s) were read before it: 5000 stored into {events_alias}" in res.stderr
    assert "fix line 5002 and run the same command again" in res.stderr.lower()
    assert _count(client, events_alias) == 5000

    again = cli("ingest", "events", str(src), "--no-progress", "--json", ok=False)  # re-run: nothing twice
    assert again.exit_code == 8 and "5000 already stored" in again.stderr
    partial = json.loads(again.stdout)  # --json: what was done before the failure, on stdout
    assert (partial["read"], partial["stored"], partial["already_stored"], partial["ok"]) == (5000, 0, 5000, False)
    assert "line 5002" in partial["error"]
