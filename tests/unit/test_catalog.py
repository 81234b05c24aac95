"""Unit tests for the seeded catalog generator (no engine needed).

The statistical checks use a fixed seed and a few thousand products, so they are deterministic,
yet they would fail if the causal links (quality -> price/rating) were broken.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fuserec_os.simulate.catalog import (
    BRANDS,
    CATEGORY_PATHS,
    CATEGORY_TREE,
    DOC_KEYS,
    PRICE_BANDS,
    REFERENCE_DATE,
    STYLES,
    GeneratedProduct,
    ProductLatent,
    generate_catalog,
    write_catalog,
)

EXPECTED_KEYS = {
    "product_id",
    "title",
    "description",
    "brand",
    "category",
    "price",
    "currency",
    "rating",
    "review_count",
    "in_stock",
    "tags",
    "attributes",
    "image_url",
    "created_at",
    "popularity",
}
LATENT_KEYS = {"style", "quality_tier", "price_band", "appeal"}


@pytest.fixture(scope="module")
def big() -> list[GeneratedProduct]:
    """One shared 3000-product catalog: enough for stable averages, fast to build."""
    return generate_catalog(3000, seed=11)


def test_same_seed_is_identical() -> None:
    a = generate_catalog(200, seed=3)
    b = generate_catalog(200, seed=3)
    assert [p.doc for p in a] == [p.doc for p in b]
    assert [p.latent for p in a] == [p.latent for p in b]


def test_different_seed_differs() -> None:
    a = generate_catalog(200, seed=3)
    b = generate_catalog(200, seed=4)
    assert [p.doc["title"] for p in a] != [p.doc["title"] for p in b]


def test_default_seed_is_fixed() -> None:
    assert [p.doc for p in generate_catalog(20)] == [p.doc for p in generate_catalog(20, seed=7)]


@pytest.mark.parametrize("n", [1, 17, 500])
def test_n_respected_and_ids_unique(n: int) -> None:
    products = generate_catalog(n)
    assert len(products) == n
    ids = [p.doc["product_id"] for p in products]
    assert len(set(ids)) == n
    assert ids[0] == "P000001"
    assert all(re.fullmatch(r"P\d{6}", pid) for pid in ids)


def test_doc_keys_and_types(big: list[GeneratedProduct]) -> None:
    assert set(DOC_KEYS) == EXPECTED_KEYS
    for p in big:
        doc: dict[str, Any] = p.doc
        assert set(doc) == EXPECTED_KEYS
        for key in ("product_id", "title", "description", "brand", "category", "currency", "image_url"):
            assert isinstance(doc[key], str) and doc[key], key
        assert isinstance(doc["price"], float) and doc["price"] > 0
        assert round(doc["price"], 2) == doc["price"]
        assert doc["currency"] == "USD"
        assert isinstance(doc["rating"], float) and 1.0 <= doc["rating"] <= 5.0
        assert round(doc["rating"], 1) == doc["rating"]
        assert isinstance(doc["review_count"], int) and doc["review_count"] >= 0
        assert isinstance(doc["in_stock"], bool)
        assert isinstance(doc["tags"], list) and 1 <= len(doc["tags"]) <= 4
        assert all(isinstance(t, str) and t for t in doc["tags"])
        assert isinstance(doc["attributes"], dict) and doc["attributes"]
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in doc["attributes"].items())
        assert doc["image_url"] == f"https://img.example.com/p/{doc['product_id']}.jpg"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", doc["created_at"])
        assert isinstance(doc["popularity"], float) and doc["popularity"] >= 0


def test_latent_fields(big: list[GeneratedProduct]) -> None:
    for p in big:
        assert isinstance(p.latent, ProductLatent)
        assert p.latent.style in STYLES
        assert p.latent.quality_tier in (1, 2, 3)
        assert p.latent.price_band in PRICE_BANDS
        assert 0.0 <= p.latent.appeal <= 1.0
    assert {p.latent.quality_tier for p in big} == {1, 2, 3}
    assert {p.latent.price_band for p in big} == set(PRICE_BANDS)


def test_created_at_within_two_years_before_reference(big: list[GeneratedProduct]) -> None:
    earliest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 2)
    for p in big:
        ts = pd.Timestamp(p.doc["created_at"])
        assert earliest <= ts < REFERENCE_DATE


def test_premium_prices_higher_than_budget(big: list[GeneratedProduct]) -> None:
    by_band = {b: [p.doc["price"] for p in big if p.latent.price_band == b] for b in PRICE_BANDS}
    assert statistics.mean(by_band["premium"]) > 1.5 * statistics.mean(by_band["budget"])


def test_quality_tier_raises_price_beyond_brand_and_category(big: list[GeneratedProduct]) -> None:
    # Divide out product-type base price and brand price level, so only quality can explain a gap.
    brand_level = {(top, b.name): b.price_level for top, brands in BRANDS.items() for b in brands}

    def normalized(p: GeneratedProduct) -> float:
        top, leaf = p.doc["category"].split(" > ", 1)
        return float(p.doc["price"]) / (CATEGORY_TREE[top][leaf].base_price * brand_level[(top, p.doc["brand"])])

    tier3 = [normalized(p) for p in big if p.latent.quality_tier == 3]
    tier1 = [normalized(p) for p in big if p.latent.quality_tier == 1]
    assert statistics.mean(tier3) > 1.5 * statistics.mean(tier1)


def test_ratings_higher_for_tier3_than_tier1(big: list[GeneratedProduct]) -> None:
    tier3 = [p.doc["rating"] for p in big if p.latent.quality_tier == 3]
    tier1 = [p.doc["rating"] for p in big if p.latent.quality_tier == 1]
    assert statistics.mean(tier3) > statistics.mean(tier1) + 0.3


def test_popularity_heavy_tailed_and_tracks_appeal(big: list[GeneratedProduct]) -> None:
    pops = sorted(p.doc["popularity"] for p in big)
    top_share = sum(pops[-len(pops) // 100 :]) / sum(pops)
    assert top_share > 0.1  # the top 1% hold far more than 1% of the popularity mass
    ranked = sorted(big, key=lambda p: p.latent.appeal)
    low = statistics.median(p.doc["popularity"] for p in ranked[:500])
    high = statistics.median(p.doc["popularity"] for p in ranked[-500:])
    assert high > 1.5 * low


def test_categories_are_tree_paths(big: list[GeneratedProduct]) -> None:
    valid = {f"{top} > {leaf}" for top, leaves in CATEGORY_TREE.items() for leaf in leaves}
    assert set(CATEGORY_PATHS) == valid
    assert 6 <= len(CATEGORY_TREE) <= 8
    assert all(3 <= len(leaves) <= 6 for leaves in CATEGORY_TREE.values())
    seen = {p.doc["category"] for p in big}
    assert seen <= valid
    assert len(seen) == len(valid)  # 3000 products cover every leaf
    assert all(2 <= len(c.split(" > ")) <= 3 for c in seen)
    assert any(len(c.split(" > ")) == 3 for c in seen)


def test_brands_belong_to_category_top(big: list[GeneratedProduct]) -> None:
    assert set(BRANDS) == set(CATEGORY_TREE)
    for top, brands in BRANDS.items():
        assert 4 <= len(brands) <= 8, top
        assert all(0.6 <= b.price_level <= 2.0 for b in brands)
    for p in big:
        top = p.doc["category"].split(" > ")[0]
        assert p.doc["brand"] in {b.name for b in BRANDS[top]}
        assert p.doc["title"].startswith(p.doc["brand"] + " ")


def test_leaf_sizes_unequal(big: list[GeneratedProduct]) -> None:
    counts = pd.Series([p.doc["category"] for p in big]).value_counts()
    assert counts.max() > 3 * counts.min()


def test_vocabulary_matches_common_queries(big: list[GeneratedProduct]) -> None:
    texts = [(p.doc["title"] + " " + p.doc["description"]).lower() for p in big]
    for query in (
        "running shoes",
        "wireless headphones",
        "laptop",
        "coffee maker",
        "yoga mat",
        "tee",
        "trainers",
    ):
        assert sum(query in t for t in texts) >= 20, query


def test_in_stock_rate_and_html_rows(big: list[GeneratedProduct]) -> None:
    in_stock = sum(p.doc["in_stock"] for p in big) / len(big)
    assert 0.85 <= in_stock <= 0.95
    html = sum("<br>" in p.doc["description"] or "<b>" in p.doc["description"] for p in big) / len(big)
    assert 0.02 <= html <= 0.09


@pytest.mark.parametrize("bad", [0, -5, 2.5, "10", True])
def test_bad_n_raises(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"integer >= 1"):
        generate_catalog(bad)


@pytest.mark.parametrize("name", ["catalog.jsonl", "catalog.ndjson", "catalog.csv", "catalog.parquet"])
def test_write_round_trips_through_pandas(tmp_path: Path, name: str) -> None:
    products = generate_catalog(150, seed=5)
    path = tmp_path / "out" / name
    write_catalog(products, path)
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype={"product_id": str})
        first = df.iloc[0]
        assert first["tags"] == "|".join(products[0].doc["tags"])
        attrs = dict(kv.split("=", 1) for kv in first["attributes"].split("|"))
        assert attrs == products[0].doc["attributes"]
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
        assert list(df.iloc[0]["tags"]) == products[0].doc["tags"]
        assert dict(df.iloc[0]["attributes"]) == products[0].doc["attributes"]
    else:
        df = pd.read_json(path, lines=True, dtype=False)
    assert list(df.columns) == list(DOC_KEYS)
    assert df["product_id"].tolist() == [p.doc["product_id"] for p in products]
    assert df["title"].tolist() == [p.doc["title"] for p in products]
    assert df["price"].tolist() == [p.doc["price"] for p in products]


def test_latent_file_separate_from_docs(tmp_path: Path) -> None:
    products = generate_catalog(120, seed=9)
    docs_path = tmp_path / "catalog.jsonl"
    latent_path = tmp_path / "latent.jsonl"
    write_catalog(products, docs_path, latent_path=latent_path)

    latent_lines = latent_path.read_text(encoding="utf-8").splitlines()
    assert len(latent_lines) == len(products)
    rows = [json.loads(line) for line in latent_lines]
    assert [r["product_id"] for r in rows] == [p.doc["product_id"] for p in products]
    assert all(set(r) == {"product_id"} | LATENT_KEYS for r in rows)
    assert rows[0]["quality_tier"] == products[0].latent.quality_tier

    docs = [json.loads(line) for line in docs_path.read_text(encoding="utf-8").splitlines()]
    assert len(docs) == len(products)
    assert all(not (set(d) & LATENT_KEYS) for d in docs)
    assert all(set(d) == EXPECTED_KEYS for d in docs)


def test_no_latent_file_unless_asked(tmp_path: Path) -> None:
    write_catalog(generate_catalog(5), tmp_path / "c.jsonl")
    assert [f.name for f in tmp_path.iterdir()] == ["c.jsonl"]


def test_latent_path_equal_to_docs_path_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with pytest.raises(ValueError, match="latent_path must differ"):
        write_catalog(generate_catalog(5), path, latent_path=path)
    assert not path.exists()


@pytest.mark.parametrize("name", ["catalog.json", "catalog.txt", "catalog"])
def test_bad_extension_raises(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        write_catalog(generate_catalog(3), tmp_path / name)
    message = str(excinfo.value)
    for ext in (".jsonl", ".ndjson", ".csv", ".parquet"):
        assert ext in message
    assert not (tmp_path / name).exists()
