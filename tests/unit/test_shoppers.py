"""Unit tests for the shopper simulator (no engine: a fake retriever stands in for BM25).

The fake returns the products of the category the query names, in id order, and nothing for informal terms
(the catalog text never contains them), which is how BM25 behaves on them. Statistical checks run on one
fixed-seed simulation, so they are deterministic, yet each would fail if its signal were missing.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fuserec_os.simulate.catalog import GeneratedProduct, generate_catalog, write_catalog
from fuserec_os.simulate.queries import INFORMAL_TERMS, QueryIntent, QueryVocabulary, typo_variants
from fuserec_os.simulate.retrieval import Retriever, ShopRanker
from fuserec_os.simulate.shoppers import (
    DEFAULT_START,
    EVENT_FIELDS,
    EVENT_TYPES,
    SimulationResult,
    UserLatent,
    load_catalog,
    preference_lift,
    simulate,
    utility,
    write_simulation,
)

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VOCAB = QueryVocabulary()


class CategoryRetriever:
    """Products of the query's category (from the vocabulary's rules) in id order; informal terms find nothing."""

    def __init__(self, catalog: Sequence[GeneratedProduct]) -> None:
        self.ids = sorted((str(p.doc["product_id"]), str(p.doc["category"])) for p in catalog)
        self.calls = 0

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        self.calls += 1
        out = []
        for q in queries:
            cat = VOCAB.category_for(q)
            if cat is None or VOCAB.kind_of(q) == "informal":
                out.append([])
                continue
            out.append([pid for pid, c in self.ids if c == cat or c.startswith(cat + " > ")][:k])
        return out


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def catalog() -> list[GeneratedProduct]:
    return generate_catalog(600, seed=3)


@pytest.fixture(scope="module")
def result(catalog: list[GeneratedProduct]) -> SimulationResult:
    return simulate(catalog, CategoryRetriever(catalog), users=1500, days=14, seed=11)


def test_fake_retriever_satisfies_the_protocol(catalog: list[GeneratedProduct]) -> None:
    assert isinstance(CategoryRetriever(catalog), Retriever)


def test_same_seed_same_log_different_seed_different(catalog: list[GeneratedProduct]) -> None:
    a = simulate(catalog, CategoryRetriever(catalog), users=150, days=7, seed=5)
    b = simulate(catalog, CategoryRetriever(catalog), users=150, days=7, seed=5)
    c = simulate(catalog, CategoryRetriever(catalog), users=150, days=7, seed=6)
    assert a.events and a.impressions
    assert a.events == b.events
    assert a.impressions == b.impressions
    assert a.users == b.users
    assert a.events != c.events
    assert [asdict(u) for u in a.users] != [asdict(u) for u in c.users]


def test_retriever_is_called_in_one_batch(catalog: list[GeneratedProduct]) -> None:
    fake = CategoryRetriever(catalog)
    res = simulate(catalog, fake, users=100, days=7, seed=5)
    assert res.stats["searches"] > res.stats["distinct_queries"] > 1
    assert fake.calls <= 2  # the shop's page for every planned query, then the recall report


def test_heavy_users_have_more_events_than_light(result: SimulationResult) -> None:
    per_user = Counter(e["user_id"] for e in result.events)
    by_tier: dict[str, list[int]] = defaultdict(list)
    for u in result.users:
        by_tier[u.tier].append(per_user.get(u.user_id, 0))
    assert set(by_tier) == {"light", "medium", "heavy"}
    mean = {t: sum(v) / len(v) for t, v in by_tier.items()}
    assert mean["heavy"] > 2 * mean["medium"] > 2 * mean["light"] > 0
    # heavy-tailed: few heavy users, many light ones
    assert len(by_tier["heavy"]) < len(by_tier["medium"]) < len(by_tier["light"])


class ShuffledRetriever(CategoryRetriever):
    """The category's products in a fixed random order per query: rank carries no relevance."""

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        out = []
        for q, ids in zip(queries, super().search(queries, 10_000), strict=True):
            random.Random(q).shuffle(ids)
            out.append(ids[:k])
        return out


def test_click_through_rate_falls_with_position() -> None:
    # pages in random order without merchandising, and only full pages counted, so relevance does not fall
    # with rank: the decline comes from examination (0.98 * rank ** -0.7) and stopping after a click. The
    # stopping alone gives ~1.7x from rank 1 to 5 and from 5 to 15; with examination it is ~4x each.
    catalog = generate_catalog(2000, seed=5)
    fake = ShuffledRetriever(catalog)
    res = simulate(catalog, fake, users=800, days=14, seed=4, ranker=ShopRanker(catalog, fake, merch_weight=0.0))
    full = {i["request_id"] for i in res.impressions if len(i["product_ids"]) == 24}
    assert len(full) > 1000
    clicks = Counter(e["position"] for e in res.events if e["type"] == "click" and e["request_id"] in full)
    ctr = {r: clicks[r] / len(full) for r in (1, 5, 15)}
    assert ctr[1] > 2.5 * ctr[5] > 2.5 * 2.5 * ctr[15] > 0


def test_users_click_and_buy_more_in_their_preferred_categories(
    result: SimulationResult, catalog: list[GeneratedProduct]
) -> None:
    lift = preference_lift(result, catalog)
    assert lift["click_leaf_lift"] > 3.0
    assert lift["purchase_leaf_lift"] > 3.0
    assert lift["click_brand_lift"] > 1.5
    assert lift["purchase_brand_lift"] > 1.5
    assert lift["click_style_lift"] > 1.1

    # the same check done by hand for clicks: own preferred leaves vs everyone else's behaviour there
    category = {p.doc["product_id"]: p.doc["category"] for p in catalog}
    clicks = [e for e in result.events if e["type"] == "click"]
    users = {u.user_id: u for u in result.users}
    own = sum(category[e["product_id"]] in users[e["user_id"]].leaf_affinity for e in clicks) / len(clicks)
    other = [
        category[e["product_id"]] in users[uid].leaf_affinity
        for e in clicks[:3000]
        for uid in list(users)[:40]
        if uid != e["user_id"]
    ]
    assert own > 3 * (sum(other) / len(other))


def test_purchases_follow_a_click_or_view_of_the_same_product(result: SimulationResult) -> None:
    seen: dict[tuple[str, str], str] = {}
    carts: dict[tuple[str, str], str] = {}
    purchases = 0
    for e in result.events:  # time order
        key = (e["user_id"], e["product_id"])
        if e["type"] in ("click", "view"):
            seen.setdefault(key, e["timestamp"])
        elif e["type"] == "add_to_cart":
            assert key in seen, e
            carts.setdefault(key, e["timestamp"])
        elif e["type"] == "purchase":
            purchases += 1
            assert key in seen and seen[key] < e["timestamp"], e
            assert key in carts and carts[key] < e["timestamp"], e
            assert e["quantity"] >= 1
    assert purchases > 50


def test_new_users_have_no_events_before_arrival(result: SimulationResult) -> None:
    first: dict[str, str] = {}
    for e in sorted([*result.events, *result.impressions], key=lambda r: r["timestamp"]):
        first.setdefault(e["user_id"], e["timestamp"])
    new = [u for u in result.users if u.is_new]
    assert 0.05 * len(result.users) < len(new) < 0.2 * len(result.users)
    half = DEFAULT_START + timedelta(days=7)
    active_new = 0
    for u in result.users:
        assert _ts(u.arrival) >= DEFAULT_START
        if u.user_id in first:
            assert _ts(first[u.user_id]) >= _ts(u.arrival), u
        if u.is_new:
            assert _ts(u.arrival) >= half  # they arrive late in the period
            active_new += u.user_id in first
        else:
            assert _ts(u.arrival) == DEFAULT_START
    assert active_new == len(new)  # a new user's arrival is their first visit (a search or a view)


def test_timestamps_within_the_period_and_ordered(result: SimulationResult) -> None:
    end = DEFAULT_START + timedelta(days=14)
    stamps = [e["timestamp"] for e in result.events]
    assert stamps == sorted(stamps)
    sessions: dict[str, list[str]] = defaultdict(list)
    for e in result.events:
        assert ISO_MS.match(e["timestamp"]), e["timestamp"]
        assert DEFAULT_START <= _ts(e["timestamp"]) < end
        sessions[e["session_id"]].append(e["timestamp"])
    for ts in sessions.values():
        assert all(a < b for a, b in itertools.pairwise(ts))
    assert [i["timestamp"] for i in result.impressions] == sorted(i["timestamp"] for i in result.impressions)


def test_event_rows_have_the_schema_and_real_products(
    result: SimulationResult, catalog: list[GeneratedProduct]
) -> None:
    price = {p.doc["product_id"]: p.doc["price"] for p in catalog}
    shown = {i["request_id"]: i for i in result.impressions}
    ids = [e["event_id"] for e in result.events]
    assert len(ids) == len(set(ids))
    assert {e["type"] for e in result.events} == set(EVENT_TYPES)
    for e in result.events:
        assert tuple(e) == EVENT_FIELDS
        json.dumps(e)
        assert e["type"] in EVENT_TYPES
        assert e["product_id"] in price
        assert e["price"] == price[e["product_id"]]
        assert e["session_id"].startswith(e["user_id"])
        assert (e["quantity"] is not None) == (e["type"] == "purchase")
        if e["type"] == "click":
            imp = shown[e["request_id"]]
            assert imp["query"] == e["query"] and imp["user_id"] == e["user_id"]
            assert imp["product_ids"][e["position"] - 1] == e["product_id"]
            assert imp["timestamp"] < e["timestamp"]
        else:
            assert e["position"] is None
        if e["type"] == "view":
            assert e["query"] is None and e["request_id"] is None
        if e["request_id"] is not None:
            assert shown[e["request_id"]]["query"] == e["query"]
    for imp in result.impressions:
        assert set(imp) == {"request_id", "user_id", "session_id", "timestamp", "query", "product_ids"}
        assert 0 < len(imp["product_ids"]) <= 24 and all(p in price for p in imp["product_ids"])


def test_stats_and_recall_report(result: SimulationResult) -> None:
    s = result.stats
    assert s["events"] == len(result.events)
    assert sum(s["events_by_type"].values()) == len(result.events)
    assert s["searches"] == len(result.impressions)
    assert 1 < s["distinct_queries"] < 5000
    r = s["bm25_recall"]
    assert 0.3 < r["clicks"] < 1.0 and 0.3 < r["purchases"] <= 1.0
    assert r["clicks_by_kind"]["informal"]["recall"] == 0.0  # the fake never finds informal terms
    assert r["clicks_by_kind"]["canonical"]["recall"] > 0.5
    text = result.summary()
    assert "BM25 recall@100" in text and "distinct queries" in text


def test_write_simulation_keeps_truth_separate(result: SimulationResult, tmp_path: Path) -> None:
    write_simulation(result, tmp_path / "ev.jsonl", tmp_path / "imp.jsonl", tmp_path / "truth.jsonl")
    events_text = (tmp_path / "ev.jsonl").read_text()
    rows = [json.loads(line) for line in events_text.splitlines()]
    assert rows == result.events
    for secret in ("affinity", "style", "price_sensitivity", "is_new", "appeal", "tier"):
        assert secret not in events_text
    truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert [t["user_id"] for t in truth] == [u.user_id for u in result.users]
    assert UserLatent(**truth[0]) == result.users[0]
    assert len((tmp_path / "imp.jsonl").read_text().splitlines()) == len(result.impressions)

    write_simulation(result, tmp_path / "ev.parquet", tmp_path / "imp.parquet", tmp_path / "truth.parquet")
    df = pd.read_parquet(tmp_path / "ev.parquet")
    assert list(df.columns) == list(EVENT_FIELDS) and len(df) == len(result.events)
    assert "affinity" not in " ".join(df.columns)
    imp = pd.read_parquet(tmp_path / "imp.parquet")
    assert list(imp["product_ids"].iloc[0]) == result.impressions[0]["product_ids"]
    assert len(pd.read_parquet(tmp_path / "truth.parquet")) == len(result.users)

    with pytest.raises(ValueError, match="different files"):
        write_simulation(result, tmp_path / "x.jsonl", truth_path=tmp_path / "x.jsonl")
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        write_simulation(result, tmp_path / "x.csv")


def test_informal_terms_are_absent_from_catalog_text() -> None:
    products = generate_catalog(3000, seed=7)
    words: set[str] = set()
    for p in products:
        d = p.doc
        text = " ".join([d["title"], d["description"], d["brand"], d["category"], *d["tags"]]).lower()
        for w in re.findall(r"[a-z0-9]+", text):
            words.update({w, w.rstrip("s")})
    assert len(INFORMAL_TERMS) == len(VOCAB.leaves)
    for leaf, terms in INFORMAL_TERMS.items():
        assert terms, leaf
        for term in terms:
            found = [w for w in term.split() if w in words or w.rstrip("s") in words]
            assert not found, (leaf, term, found)


def test_query_vocabulary_is_bounded_and_deterministic() -> None:
    queries = VOCAB.all_queries()
    assert 1000 < len(queries) < 5000
    assert len(set(queries)) == len(queries)
    assert typo_variants("headphones") == typo_variants("headphones")
    assert len(typo_variants("headphones")) == 2 and typo_variants("tee") == ()
    for q in ("running shoes", "cans", "shoes", "waterproof hiking boots", "stridewell running shoes"):
        assert VOCAB.category_for(q) is not None, q
    assert VOCAB.category_for("shoes") == "shoes"
    assert VOCAB.category_for("cans") == "electronics > headphones"
    assert VOCAB.kind_of("kitchen") == "broad"
    rng_a, rng_b = random.Random(1), random.Random(1)
    a = [VOCAB.intent(rng_a, "shoes > running shoes") for _ in range(200)]
    b = [VOCAB.intent(rng_b, "shoes > running shoes") for _ in range(200)]
    assert a == b
    assert {i.kind for i in a} == {"canonical", "informal", "broad", "specific", "typo"}
    assert all(i.text in set(queries) for i in a)


def _user(**kw: Any) -> UserLatent:
    base: dict[str, Any] = {
        "user_id": "U1",
        "top_affinity": {"shoes": 1.0},
        "leaf_affinity": {"shoes > running shoes": 1.0},
        "brand_affinity": {"Stridewell": 1.0},
        "style": "sporty",
        "price_band": "mid",
        "price_sensitivity": 0.5,
        "quality_sensitivity": 0.5,
        "activity": 0.2,
        "tier": "light",
        "is_new": False,
        "arrival": "2024-04-01T00:00:00.000Z",
    }
    base.update(kw)
    return UserLatent(**base)


def test_utility_rewards_relevance_and_taste(catalog: list[GeneratedProduct]) -> None:
    runners = [p for p in catalog if p.doc["category"] == "shoes > running shoes"]
    lamps = [p for p in catalog if p.doc["category"] == "home > decor > lamps"]
    intent = QueryIntent("shoes > running shoes", "shoes", "canonical", "running shoes", "shoes > running shoes")
    fan, neutral = _user(), _user(leaf_affinity={}, top_affinity={}, brand_affinity={})
    for p in runners[:10]:
        assert utility(fan, p, intent) > utility(fan, lamps[0], intent) + 2
        assert utility(fan, p, intent) > utility(neutral, p, intent)
    stride = next(p for p in runners if p.doc["brand"] == "Stridewell")
    other = next(p for p in runners if p.doc["brand"] != "Stridewell")
    branded = QueryIntent(intent.leaf, "shoes", "specific", "stridewell running shoes", intent.leaf, brand="Stridewell")
    assert utility(neutral, stride, branded) - utility(neutral, other, branded) > utility(
        neutral, stride, intent
    ) - utility(neutral, other, intent)
    hater = _user(brand_affinity={"Stridewell": -1.0})
    assert utility(hater, stride, intent) < utility(_user(brand_affinity={}), stride, intent)


def test_shop_ranker_shows_merchandising_bm25_misses(catalog: list[GeneratedProduct]) -> None:
    fake = CategoryRetriever(catalog)
    shop = ShopRanker(catalog, fake, page_size=24, jitter=0.0)
    intent = QueryIntent("electronics > headphones", "electronics", "informal", "cans", "electronics > headphones")
    shown = shop.shown_list(None, intent, random.Random(1))
    assert fake.search(["cans"], 100) == [[]]
    cats = {p.doc["product_id"]: p.doc["category"] for p in catalog}
    assert len(shown) > 10 and all(cats[p] == "electronics > headphones" for p in shown)
    pops = {p.doc["product_id"]: p.doc["popularity"] for p in catalog}
    assert [pops[p] for p in shown] == sorted((pops[p] for p in shown), reverse=True)


def test_load_catalog_round_trip(catalog: list[GeneratedProduct], tmp_path: Path) -> None:
    sample = catalog[:40]
    for name in ("c.jsonl", "c.csv", "c.parquet"):
        write_catalog(sample, tmp_path / name, latent_path=tmp_path / "c.latent.jsonl")
        loaded = load_catalog(tmp_path / name, tmp_path / "c.latent.jsonl")
        assert [p.latent for p in loaded] == [p.latent for p in sample]
        assert [p.doc["product_id"] for p in loaded] == [p.doc["product_id"] for p in sample]
        assert [p.doc["tags"] for p in loaded] == [p.doc["tags"] for p in sample]
        assert [p.doc["price"] for p in loaded] == [p.doc["price"] for p in sample]
        assert [p.doc["attributes"] for p in loaded] == [p.doc["attributes"] for p in sample]
        assert [p.doc["category"] for p in loaded] == [p.doc["category"] for p in sample]
    (tmp_path / "short.latent.jsonl").write_text(
        "\n".join((tmp_path / "c.latent.jsonl").read_text().splitlines()[:-1]) + "\n"
    )
    with pytest.raises(ValueError, match="no latent row"):
        load_catalog(tmp_path / "c.jsonl", tmp_path / "short.latent.jsonl")


def test_simulate_rejects_bad_arguments(catalog: list[GeneratedProduct]) -> None:
    fake = CategoryRetriever(catalog)
    with pytest.raises(ValueError, match="users"):
        simulate(catalog, fake, users=0)
    with pytest.raises(ValueError, match="days"):
        simulate(catalog, fake, days=0)
    with pytest.raises(ValueError, match="empty"):
        simulate([], fake)


def test_start_parameter_moves_the_period(catalog: list[GeneratedProduct]) -> None:
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    res = simulate(catalog, CategoryRetriever(catalog), users=50, days=3, seed=2, start="2025-01-01T00:00:00Z")
    assert res.events
    assert all(start <= _ts(e["timestamp"]) < start + timedelta(days=3) for e in res.events)
