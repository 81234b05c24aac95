"""``fuserec search tune`` on a real engine: a shop whose shoppers engage with products whose tags match the whole
query (their titles do not), while one query word in a title wins under the default title boost. The tuner must
find a config that beats the one in force, ``--write`` it into the ranking YAML (keeping the rest of the file),
and ``fuserec config`` must then show the new values from the file."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli

TOPICS = {
    "trail running shoes": ("trail", "running", "shoes"),
    "waterproof hiking jacket": ("waterproof", "hiking", "jacket"),
    "wireless noise headphones": ("wireless", "noise", "headphones"),
    "stainless coffee maker": ("stainless", "coffee", "maker"),
    "organic green tea": ("organic", "green", "tea"),
}
FILLER = ("rack", "mug", "poster", "sticker", "keyring", "towel")
EXTRA_TAGS = ("bestseller", "new", "sale", "gift", "outdoor", "indoor", "premium", "classic", "summer", "winter")


def shop(tmp_path: Path) -> tuple[Path, Path]:
    """The catalog and a click log: each query's clicks go to the products tagged with all its words."""
    products, events = [], []
    for t, words in enumerate(TOPICS.values()):
        for i in range(3):  # what shoppers want: every query word in the tags, a title that names none
            products.append(
                {
                    "product_id": f"T{t}{i}",
                    "title": f"Model {t}{i} series",
                    "brand": "Acme",
                    "category": "misc",
                    "tags": [*words, *EXTRA_TAGS],
                    "description": "a well made product",
                    "price": 20.0 + i,
                    "in_stock": True,
                }
            )
        for j in range(len(FILLER)):  # two query words in a short title: best_fields with title^3 loves it
            a, b = words[j % 3], words[(j + 1) % 3]
            products.append(
                {
                    "product_id": f"D{t}{j}",
                    "title": f"{a.capitalize()} {b} {FILLER[j]}",
                    "brand": "Other",
                    "category": "misc",
                    "tags": ["gift"],
                    "description": "a well made product",
                    "price": 5.0 + j,
                    "in_stock": True,
                }
            )
    n = 0
    for day in range(1, 13):
        for t, query in enumerate(TOPICS):
            n += 1
            events.append(
                {
                    "event_id": f"e{n}",
                    "request_id": f"r{n}",
                    "user_id": f"u{n % 17}",
                    "product_id": f"T{t}{n % 3}",
                    "type": "click" if n % 4 else "purchase",
                    "timestamp": f"2024-05-{day:02d}T10:{t:02d}:00Z",
                    "query": query,
                }
            )
    catalog, log = tmp_path / "catalog.jsonl", tmp_path / "events.jsonl"
    catalog.write_text("".join(json.dumps(p) + "\n" for p in products), encoding="utf-8")
    log.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return catalog, log


RANKING = """\
version: 1
# tuned by hand, once
search:
  fields:            # BM25 fields
    title: 3.0
    brand.text: 2.0
    category.text: 1.5
    tags.text: 0.1     # hand-tuned away from tags: a mistake on this shop, on osmem and Lucene alike
    description: 1.0
  max_size: 50       # paging cap
model:
  epochs: 3
"""


def test_tune_picks_a_config_that_beats_the_default_and_writes_it(cli: Cli, tmp_path: Path) -> None:
    catalog, log = shop(tmp_path)
    cli("ingest", "products", str(catalog), "--no-progress")
    cli("ingest", "events", str(log), "--no-progress")
    ranking = tmp_path / "ranking.yaml"
    ranking.write_text(RANKING, encoding="utf-8")
    cli.env["FUSEREC_CONFIG"] = str(ranking)

    read_only = cli("search", "tune", "--min-searches", "20")
    assert "* " in read_only.stdout and "write it with: fuserec search tune --write" in read_only.stdout
    assert ranking.read_text(encoding="utf-8") == RANKING  # nothing written without --write

    out = json.loads(cli("search", "tune", "--min-searches", "20", "--json", "--write").stdout)
    assert out["searches"] == 12 * len(TOPICS) and out["queries"] == len(TOPICS)
    configs = {c["name"]: c for c in out["configs"]}
    current = configs["current best_fields"]
    assert current["in_force"] and current["recall@100"] == 1.0  # every target is retrieved, just ranked low
    winner = out["winner"]
    assert out["changes"] and winner["mrr"] > current["mrr"] + 0.2, (winner, current)
    assert winner["mrr"] == max(c["mrr"] for c in out["configs"])
    # the winner weighs tags more, relative to the title, than the config in force (0.1 vs 3), or changes the type
    in_force = current["fields"]["tags.text"] / current["fields"]["title"]
    tags_up = winner["fields"]["tags.text"] / winner["fields"]["title"] > in_force
    assert tags_up or winner["multi_match_type"] != "best_fields", winner
    assert out["written"] == {
        "path": str(ranking),
        "keys": ["search.fields", "search.multi_match_type"],
        "kept_comments": True,
    }

    text = ranking.read_text(encoding="utf-8")
    for kept in ("# tuned by hand, once", "  fields:            # BM25 fields", "  max_size: 50       # paging cap"):
        assert kept in text
    shown = json.loads(cli("config", "--json").stdout)["ranking"]["sections"]["search"]
    assert shown["search.multi_match_type"] == {"value": winner["multi_match_type"], "source": "file"}
    for name, boost in winner["fields"].items():
        assert shown[f"search.fields.{name}"] == {"value": boost, "source": "file"}
    assert shown["search.max_size"] == {"value": 50, "source": "file"}
    rows = {line.split()[0]: line.split()[1:] for line in cli("config").stdout.splitlines() if line.strip()}
    assert rows["search.fields.tags.text"] == [f"{winner['fields']['tags.text']}", "file"]

    again = cli("search", "tune", "--min-searches", "20")  # the written config is now the one in force
    assert "the config in force is the best of the grid" in again.stdout
    hits = json.loads(cli("search", "trail running shoes", "--json").stdout)["hits"]
    assert {h["id"] for h in hits[:3]} == {"T00", "T01", "T02"}  # served search uses the new config


def test_tune_with_too_few_searches_names_no_winner_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    catalog, log = shop(tmp_path)
    cli("ingest", "products", str(catalog), "--no-progress")
    cli("ingest", "events", str(log), "--no-progress")
    target = tmp_path / "out.yaml"
    res = cli("search", "tune", "--write", str(target))  # 60 searches: the default minimum (50) is met
    assert f"created {target}" in res.stdout
    few = cli("search", "tune", "--min-searches", "1000", "--write", str(tmp_path / "never.yaml"))
    assert "no winner: only 60 searches with engagement" in few.stdout
    assert "not written" in few.stdout and not (tmp_path / "never.yaml").exists()
    assert target.exists() and "multi_match_type" in target.read_text()  # created with the winner


def test_tune_needs_events(cli: Cli) -> None:
    res = cli("search", "tune", ok=False)
    assert res.exit_code != 0 and "ingest events" in res.stderr
    nowhere = cli("search", "tune", "--write", ok=False)
    assert nowhere.exit_code == 2 and "FUSEREC_CONFIG" in nowhere.stderr
