"""Real-shaped logs loaded with CLI options only (no glue code): constants, joined columns, ratings, query time,
older month indices gaining the new fields, and training on searches derived from events without request ids;
the item signals of such logs (no search log: click-through and conversion missing, never 0; ratings without
clicks: the rating signals are there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events
from fuserec_os.index.mappings import load_mapping
from fuserec_os.profiles import item_store
from fuserec_os.profiles.item_signals import ItemSignalValues
from fuserec_os.settings import Settings

from .conftest import REPO, Cli


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_a_click_log_without_type_column_loads_with_set(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    src = _write(
        tmp_path / "clicks.csv",
        "visitor,sku,ts,search_term,searched_at\n"
        "v1,P1,2024-05-01T10:00:30Z,usb cable,2024-05-01T10:00:00Z\n"
        "v1,P2,2024-05-01T10:01:00Z,usb cable,2024-05-01T10:00:00Z\n"
        "v2,P3,2024-06-02T08:00:00Z,hdmi,\n",
    )
    result = cli(
        "ingest", "events", str(src), "--no-progress",
        "--map", "user_id=visitor,product_id=sku,timestamp=ts,query=search_term,query_time=searched_at",
        "--set", "type=click", "--set", "source=web",
    )  # fmt: skip
    assert "read 3 rows, stored 3" in result.stdout and "ignored" not in result.stdout
    events = read_events(client, settings.alias("events"))
    assert list(events["type"]) == ["click", "click", "click"]
    assert events["query_time"].notna().tolist() == [True, True, False]
    stored = client.search(index=settings.alias("events"), body={"query": {"term": {"source": "web"}}})
    assert len(stored["hits"]["hits"]) == 3

    bad = cli("ingest", "events", str(src), "--set", "type=clik", "--map", "user_id=visitor", ok=False)
    assert bad.exit_code != 0 and "--set type=clik: 'clik' is not a known event type (expected one of view" in (
        bad.stderr + bad.stdout
    )
    unknown = cli("ingest", "events", str(src), "--set", "kind=click", ok=False)
    assert "'kind' is not a field we know (expected one of: " in unknown.stderr + unknown.stdout


def test_cli_a_rating_log_maps_ratings_to_types_and_keeps_the_values(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    src = _write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp,tag\n"
        "1,M1,4.5,1714557600,sci-fi\n"
        "1,M2,3.0,1714557660,sci-fi\n"
        "2,M1,5,1714557720,space opera\n"
        "2,M3,9,1714557780,space opera\n",
    )
    result = cli(
        "ingest", "events", str(src), "--no-progress", "--allow-rejects",
        "--map", "user_id=userId,product_id=movieId,query=tag",
    )  # fmt: skip
    assert "read 4 rows, stored 3" in result.stdout and "rejected 1" in result.stdout
    events = read_events(client, settings.alias("events")).sort_values("rating")
    assert list(zip(events["rating"], events["type"], strict=True)) == [
        (3.0, "view"),
        (4.5, "purchase"),
        (5.0, "purchase"),
    ]
    [reject] = [json.loads(line) for line in (tmp_path / "ratings.csv.rejects.jsonl").read_text().splitlines()]
    assert reject["row"] == 4 and reject["reasons"] == [
        "rating: '9' is outside the rating scale, expected a number from 0 to 5 (events.ratings.min / max)"
    ]


def test_a_month_index_from_the_first_events_mapping_gains_the_new_fields(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    spec = load_mapping(REPO / "mappings" / "events.json", "events")
    old = json.loads(json.dumps(spec.create_body()))
    for name in ("rating", "query_time", "source"):
        del old["mappings"]["properties"][name]
    old["mappings"]["_meta"]["mapping_version"] = 1
    alias = settings.alias("events")
    old["aliases"] = {alias: {}}
    client.indices.create(index=f"{alias}-2024.05", body=old)

    src = _write(tmp_path / "r.csv", "user_id,product_id,rating,timestamp\nu1,P1,4,2024-05-03T10:00:00Z\n")
    cli("ingest", "events", str(src), "--no-progress")
    mapping = client.indices.get_mapping(index=f"{alias}-2024.05")[f"{alias}-2024.05"]["mappings"]
    assert {"rating", "query_time", "source"} <= set(mapping["properties"])
    assert mapping["_meta"]["mapping_version"] == spec.version
    assert read_events(client, alias)["rating"].tolist() == [4.0]


def _shop(cli: Cli, tmp_path: Path) -> Path:
    """A small generated catalog, loaded from its shop export (short and long description) with --map only."""
    from fuserec_os.simulate.shapes import CATALOG_EXPORT_MAP

    catalog, export = tmp_path / "catalog.jsonl", tmp_path / "shop.csv"
    out = cli("generate", "catalog", "--n", "120", "--seed", "5", "-o", str(catalog), "--export", str(export))
    assert f"--map {CATALOG_EXPORT_MAP}" in out.stdout
    loaded = cli("ingest", "products", str(export), "--no-progress", "--map", CATALOG_EXPORT_MAP)
    assert "read 120 rows, indexed 120, rejected 0" in loaded.stdout and "ignored" not in loaded.stdout
    return catalog


def _item_signals(cli: Cli, client: OpenSearch, settings: Settings) -> ItemSignalValues:
    """``fuserec profiles build``, then every stored product's item signals a day after the newest event."""
    built = json.loads(cli("profiles", "build", "--json").stdout)
    assert built["item_docs"] > 0, built
    got = item_store.read_all(client, settings.alias("item-signals"))
    assert got is not None
    signals = got[0]
    newest = read_events(client, settings.alias("events"))["timestamp"].max()
    return signals.values(signals.ids, newest + np.timedelta64(1, "D"))


def _train(cli: Cli, tmp_path: Path) -> str:
    config = tmp_path / "ranking.yaml"
    config.write_text(
        "model:\n  hidden: [8]\n  epochs: 1\n  min_searches: {train: 5, valid: 2, test: 2}\n"
        "events:\n  derived_search_gap_minutes: 30\n"
    )
    cli.env["FUSEREC_CONFIG"] = str(config)
    return str(cli("model", "train", "--no-register", "--report-dir", str(tmp_path / "reports")).stdout)


def test_cli_a_shop_click_log_without_request_ids_loads_with_options_and_trains(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    from fuserec_os.simulate.shapes import CLICK_LOG_MAP

    catalog = _shop(cli, tmp_path)
    description = client.search(index=settings.alias("products"), body={"size": 1})["hits"]["hits"][0]["_source"]
    assert description["description"].count(".") >= 2  # the short and the long description, joined
    clicks = tmp_path / "clicks.csv"
    made = cli(
        "generate", "events", "--catalog", str(catalog), "--users", "60", "--days", "6", "--seed", "3",
        "--shape", "clicks", "-o", str(clicks),
    )  # fmt: skip
    assert f"--set type=click --map {CLICK_LOG_MAP}" in made.stdout
    header = clicks.read_text().splitlines()[0]
    assert header == "visitor_id,sku,clicked_at,search_term,searched_at"  # no type, no request id
    loaded = cli("ingest", "events", str(clicks), "--no-progress", "--set", "type=click", "--map", CLICK_LOG_MAP)
    assert "rejected 0" in loaded.stdout and "ignored" not in loaded.stdout
    assert read_events(client, settings.alias("events"))["request_id"].isna().all()

    signals = _item_signals(cli, client, settings)
    assert np.isnan(signals.ctr).all() and np.isnan(signals.conversion).all()  # no search log: missing, not 0
    assert (signals.decayed[:, 1] > 0).any() and np.isnan(signals.rating_mean).all()  # clicks, no ratings

    out = _train(cli, tmp_path)
    assert "searches derived from events without a request id" in out, out
    assert "no logged searches" not in out
    assert "behaviour_popularity" in out  # the behaviour popularity baseline, from the clicks


def test_cli_a_rating_log_loads_with_options_and_trains(
    cli: Cli, client: OpenSearch, settings: Settings, tmp_path: Path
) -> None:
    from fuserec_os.simulate.shapes import RATING_LOG_MAP

    catalog = _shop(cli, tmp_path)
    ratings = tmp_path / "ratings.csv"
    cli(
        "generate", "events", "--catalog", str(catalog), "--users", "60", "--days", "6", "--seed", "3",
        "--shape", "ratings", "-o", str(ratings),
    )  # fmt: skip
    assert ratings.read_text().splitlines()[0] == "userId,itemId,rating,timestamp,tag"
    loaded = cli("ingest", "events", str(ratings), "--no-progress", "--map", RATING_LOG_MAP)
    assert "rejected 0" in loaded.stdout
    events = read_events(client, settings.alias("events"))
    assert events["rating"].between(0.5, 5).all()
    assert set(events.loc[events["rating"] >= 4, "type"]) == {"purchase"}
    assert set(events.loc[events["rating"] < 4, "type"]) == {"view"}

    signals = _item_signals(cli, client, settings)
    assert np.nanmin(signals.rating_mean) >= 0.5 and np.nanmax(signals.rating_mean) <= 5  # ratings without clicks
    assert (signals.rating_count > 0).all()  # every product with events here was rated
    assert np.isnan(signals.ctr).all()  # no search log

    out = _train(cli, tmp_path)
    assert "searches derived from events without a request id" in out, out
