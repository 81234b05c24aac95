"""Feature library: hand-computed values for every feature, missing indicators, config errors, and the same
X offline (profile from build_profiles) and online (the profile document read back)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.errors import ConfigError
from fuserec_os.features.assemble import Candidates, Features, RequestContext, assemble
from fuserec_os.features.items import ItemTable
from fuserec_os.features.spec import DEFAULT_FEATURES, FEATURES, FeatureSet
from fuserec_os.profiles.compute import ItemState, PriceProfile, ProductCatalog, UserProfile, build_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.text import terms

NOW = pd.Timestamp("2026-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)
A = 10.0  # QueryStats' default smoothing

PRODUCTS = pd.DataFrame(
    [
        {
            "product_id": "A1",
            "title": "Trail Running Shoes",
            "description": "Grippy trail shoes for mountain runs.",
            "brand": "Acme",
            "category": "shoes > running",
            "price": 100.0,
            "rating": 4.5,
            "review_count": 9,
            "popularity": 3.0,
            "in_stock": True,
            "created_at": "2026-02-20T00:00:00Z",
        },
        {
            "product_id": "A2",
            "title": "Road Running Shoe",
            "description": "Light road shoe with foam.",
            "brand": "Acme",
            "category": "shoes > running",
            "price": 50.0,
            "rating": None,
            "review_count": 0,
            "popularity": 0.0,
            "in_stock": False,
            "created_at": "2026-02-01T00:00:00Z",
        },
        {
            "product_id": "B1",
            "title": "Leather Boots",
            "description": "Waterproof leather boots.",
            "brand": "Bolt",
            "category": "shoes > boots",
            "price": 200.0,
            "rating": 3.0,
            "review_count": 99,
            "popularity": 1.0,
            "in_stock": True,
            "created_at": "2025-03-01T00:00:00Z",
        },
        {
            "product_id": "C1",
            "title": "Coffee Mug",
            "description": "Stoneware mug.",
            "brand": "Cupco",
            "category": "home > kitchen",
            "price": 10.0,
            "rating": 5.0,
            "review_count": None,
            "popularity": None,
            "in_stock": None,
            "created_at": None,
        },
    ]
)
VECTORS = {
    "A1": np.array([1.0, 0.0]),
    "A2": np.array([0.9, 0.1]),  # A1's neighbour
    "B1": np.array([0.0, 2.0]),  # norm 2: the table normalises
    "C1": np.array([-1.0, 0.0]),  # opposite of A1
}


@pytest.fixture(scope="module")
def catalog() -> ProductCatalog:
    return ProductCatalog.from_frame(PRODUCTS)


@pytest.fixture(scope="module")
def items(catalog: ProductCatalog) -> ItemTable:
    return ItemTable.from_catalog(catalog, VECTORS, products=PRODUCTS)


def hand_profile(**changes: Any) -> UserProfile:
    """A profile with round numbers: top-level category total 10, brand total 8, price median 100."""
    ts = NOW - 2 * DAY
    fields: dict[str, Any] = {
        "user_id": "u1",
        "as_of": NOW,
        "first_seen": NOW - 10 * DAY,
        "last_seen": ts,
        "n_events": 6,
        "counts": {"view": 2, "click": 2, "add_to_cart": 1, "purchase": 1},
        "items": {
            "A1": ItemState(6.0, {"click": 1, "purchase": 1}, ts),
            "B1": ItemState(2.0, {"view": 2}, ts),
            "X9": ItemState(1.0, {"click": 1, "add_to_cart": 1}, ts),  # not in the catalog
        },
        "recent": [],
        "categories": {"shoes": 8.0, "shoes > running": 6.0, "shoes > boots": 2.0, "home": 2.0},
        "brands": {"Acme": 6.0, "Bolt": 2.0},
        "price": PriceProfile(histogram={}, weight=8.0, median=100.0, p25=80.0, p75=150.0, sensitivity=None),
        "interests": {"trail": 1.0, "grippy": 0.5},
        "total_weight": 9.0,
    }
    fields.update(changes)
    return UserProfile(**fields)


def cands(
    ids: Sequence[str], scores: Sequence[float] | None = None, ranks: Sequence[float] | None = None
) -> Candidates:
    n = len(ids)
    return Candidates(
        list(ids),
        np.array(scores if scores is not None else [float(n - i) for i in range(n)], dtype=float),
        np.array(ranks if ranks is not None else [float(i + 1) for i in range(n)], dtype=float),
    )


def run(
    items: ItemTable,
    ids: Sequence[str],
    *,
    query: str = "running shoes",
    user: UserProfile | None = None,
    stats: QueryStats | None = None,
    scores: Sequence[float] | None = None,
    ranks: Sequence[float] | None = None,
    fs: FeatureSet = DEFAULT_FEATURES,
) -> Features:
    ctx = RequestContext(query=query, user=user, now=NOW, stats=stats.view(query) if stats is not None else None)
    return assemble(fs, items, ctx, cands(ids, scores, ranks))


def col(f: Features, name: str) -> np.ndarray:
    return f.column(name).astype(np.float64)


def miss(f: Features, name: str) -> np.ndarray:
    return f.column(name + "__missing") == 1.0


# ------------------------------------------------------------------------------------------ the registry


def test_feature_set_columns_are_values_then_indicators() -> None:
    fs = FeatureSet(("bm25", "rating", "seen_before"))
    assert fs.columns == ("bm25", "rating", "seen_before", "bm25__missing", "rating__missing", "seen_before__missing")
    assert DEFAULT_FEATURES.names == tuple(FEATURES)
    assert len(DEFAULT_FEATURES.columns) == 2 * len(FEATURES)
    assert {d.scope for d in FEATURES.values()} == {"query_item", "query_item_engagement", "item", "user", "cross"}


def test_feature_set_from_config() -> None:
    assert FeatureSet.from_config(None) is DEFAULT_FEATURES
    assert FeatureSet.from_config(["rating", "bm25"]).names == ("rating", "bm25")
    with pytest.raises(ConfigError, match=r"unknown feature\(s\) 'bm52'.*valid: bm25, bm25_norm"):
        FeatureSet.from_config(["bm25", "bm52"])
    with pytest.raises(ConfigError, match="more than once: rating"):
        FeatureSet.from_config(["rating", "bm25", "rating"])
    with pytest.raises(ConfigError, match="list of feature names"):
        FeatureSet.from_config("bm25")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty"):
        FeatureSet.from_config([])


def test_stemmer_joins_plural_and_ing_forms() -> None:
    assert terms("shoes") == terms("shoe") == ("sho",)
    assert terms("boxes") == terms("box")
    assert terms("Running") == terms("run")
    assert terms("Strings") == terms("string") == ("string",)
    assert terms("Red  red, RED!") == ("red",)
    assert terms("") == ()


# ------------------------------------------------------------------------------------------ query x item


def test_engine_features_and_missing_score(items: ItemTable) -> None:
    f = run(items, ["A1", "A2", "B1", "C1"], scores=[12.0, 7.0, math.nan, 2.0], ranks=[1.0, 2.0, math.nan, 3.0])
    np.testing.assert_allclose(col(f, "bm25"), [12.0, 7.0, 0.0, 2.0])
    np.testing.assert_allclose(col(f, "bm25_norm"), [1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(col(f, "engine_rank"), np.log1p([1.0, 2.0, 0.0, 3.0]), rtol=1e-6)
    for name in ("bm25", "bm25_norm", "engine_rank"):
        assert miss(f, name).tolist() == [False, False, True, False]
    # one scored candidate: it is the top of the list
    one = run(items, ["A1", "A2"], scores=[3.0, math.nan])
    assert col(one, "bm25_norm").tolist() == [1.0, 0.0]


def test_title_term_share_with_stemming(items: ItemTable) -> None:
    ids = ["A1", "A2", "B1", "ZZ"]
    f = run(items, ids, query="Running Shoes")  # terms run, sho
    np.testing.assert_allclose(col(f, "title_term_share"), [1.0, 1.0, 0.0, 0.0])
    assert miss(f, "title_term_share").tolist() == [False, False, False, True]  # ZZ: unknown product
    g = run(items, ids, query="trail shoe boots")  # trail, sho, boot
    np.testing.assert_allclose(col(g, "title_term_share"), [2 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-6)
    empty = run(items, ids, query="  ")
    assert miss(empty, "title_term_share").all()
    assert (col(empty, "title_term_share") == 0).all()


# ------------------------------------------------------------------------------------------ engagement


def query_events(rows: Sequence[tuple[str, str, str, str]]) -> pd.DataFrame:
    """An events frame from (query, type, product_id, request_id), one minute apart before NOW."""
    n = len(rows)
    ts = pd.Series([NOW - 10 * DAY + i * pd.Timedelta(minutes=1) for i in range(n)], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "event_id": pd.Series([f"e{i}" for i in range(n)], dtype="str"),
            "user_id": pd.Series(["u9"] * n, dtype="str"),
            "session_id": pd.Series([None] * n, dtype="object"),
            "type": pd.Series([r[1] for r in rows], dtype="str"),
            "product_id": pd.Series([r[2] for r in rows], dtype="str"),
            "timestamp": ts,
            "query": pd.Series([r[0] for r in rows], dtype="object"),
            "query_norm": pd.Series([r[0] for r in rows], dtype="object"),
            "position": pd.Series([None] * n, dtype="object").astype("Int64"),
            "price": pd.Series([np.nan] * n, dtype="float64"),
            "quantity": pd.Series([None] * n, dtype="object").astype("Int64"),
            "request_id": pd.Series([r[3] for r in rows], dtype="object"),
            "ingested_at": ts,
        }
    )


ENGAGEMENT = query_events(
    [
        ("running shoes", "click", "A1", "r1"),
        ("running shoes", "add_to_cart", "A1", "r1"),
        ("running shoes", "purchase", "A1", "r1"),
        ("running shoes", "click", "A1", "r2"),
        ("running shoes", "click", "A2", "r3"),
        ("trail shoes", "click", "A1", "r4"),
    ]
)


def test_exact_query_rates_without_impressions(items: ItemTable) -> None:
    stats = QueryStats().add_events(ENGAGEMENT)
    f = run(items, ["A1", "A2", "B1"], stats=stats)
    # queries table: "running shoes" 3 requests x 2 products, "trail shoes" 1 request x 1 product -> exposure 7
    prior = np.array([4, 1, 1]) / 7
    exposure = 3.0  # no impressions: the query's search count
    click = (np.array([2, 1, 0]) + A * prior[0]) / (exposure + A)
    cart = (np.array([1, 0, 0]) + A * prior[1]) / (exposure + A)
    buy = (np.array([1, 0, 0]) + A * prior[2]) / (exposure + A)
    np.testing.assert_allclose(col(f, "q_click_rate"), click, rtol=1e-6)
    np.testing.assert_allclose(col(f, "q_cart_rate"), cart, rtol=1e-6)
    np.testing.assert_allclose(col(f, "q_purchase_rate"), buy, rtol=1e-6)
    np.testing.assert_allclose(col(f, "q_log_clicks"), np.log1p([2, 1, 0]), rtol=1e-6)
    for name in ("q_click_rate", "q_cart_rate", "q_purchase_rate", "q_log_clicks"):
        assert not miss(f, name).any()


def test_term_rates_average_the_seen_terms(items: ItemTable) -> None:
    stats = QueryStats().add_events(ENGAGEMENT)
    # terms: run <- "running shoes" (3 requests; A1: 2 clicks, A2: 1), sho <- both queries (4 requests;
    # A1: 3 clicks, A2: 1), trail <- "trail shoes" (1 request; A1: 1 click)
    # term table exposure: run 3 x 2, sho 4 x 2, trail 1 x 1 = 15; clicks 3 + 4 + 1 = 8
    p_click = 8 / 15
    f = run(items, ["A1", "A2", "B1"], query="trail boots", stats=stats)  # boot never seen: only "trail"
    assert miss(f, "q_click_rate").all() and (col(f, "q_click_rate") == 0).all()
    trail = (np.array([1, 0, 0]) + A * p_click) / (1 + A)
    np.testing.assert_allclose(col(f, "qt_click_rate"), trail, rtol=1e-6)
    g = run(items, ["A1", "A2", "B1"], query="shoes running", stats=stats)  # unseen as a query, both terms seen
    run_rate = (np.array([2, 1, 0]) + A * p_click) / (3 + A)
    sho_rate = (np.array([3, 1, 0]) + A * p_click) / (4 + A)
    np.testing.assert_allclose(col(g, "qt_click_rate"), (run_rate + sho_rate) / 2, rtol=1e-6)
    assert miss(g, "q_click_rate").all() and not miss(g, "qt_click_rate").any()
    p_cart = 2 / 15  # the cart of r1 counts for run and sho
    cart = ((np.array([1, 0, 0]) + A * p_cart) / (3 + A) + (np.array([1, 0, 0]) + A * p_cart) / (4 + A)) / 2
    np.testing.assert_allclose(col(g, "qt_cart_rate"), cart, rtol=1e-6)


def test_rates_use_position_weighted_examinations(items: ItemTable) -> None:
    imps = pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "user_id": ["u9"] * 3,
            "timestamp": [NOW - 10 * DAY] * 3,
            "query": ["running shoes"] * 3,
            "product_ids": [["A1", "A2"], ["A1", "A2"], ["A2", "A1"]],
        }
    )
    events = ENGAGEMENT[ENGAGEMENT["query"] == "running shoes"]
    stats = QueryStats().add_events(events).add_impressions(imps)
    w2 = 1 / math.log2(3)
    exam = np.array([2 + w2, 1 + 2 * w2])  # A1, A2
    prior_click = 3 / exam.sum()
    f = run(items, ["A1", "A2", "B1"], stats=stats)
    expected = (np.array([2, 1, 0]) + A * prior_click) / (np.r_[exam, 0.0] + A)
    np.testing.assert_allclose(col(f, "q_click_rate"), expected, rtol=1e-6)


def test_unseen_query_and_no_stats_are_missing(items: ItemTable) -> None:
    stats = QueryStats().add_events(ENGAGEMENT)
    for f in (run(items, ["A1", "B1"], query="garden hose", stats=stats), run(items, ["A1", "B1"], stats=None)):
        for name, d in FEATURES.items():
            if d.scope == "query_item_engagement":
                assert miss(f, name).all(), name
                assert (col(f, name) == 0).all(), name


# ------------------------------------------------------------------------------------------ item and user


def test_item_features_and_unknown_product(items: ItemTable) -> None:
    f = run(items, ["A1", "A2", "C1", "ZZ"])
    np.testing.assert_allclose(col(f, "log_price"), [math.log1p(100), math.log1p(50), math.log1p(10), 0], rtol=1e-6)
    np.testing.assert_allclose(col(f, "rating"), [4.5, 0.0, 5.0, 0.0])
    assert miss(f, "rating").tolist() == [False, True, False, True]
    np.testing.assert_allclose(col(f, "log_review_count"), [math.log(10), 0.0, 0.0, 0.0], rtol=1e-6)
    assert miss(f, "log_review_count").tolist() == [False, False, True, True]  # 0 reviews is a value
    np.testing.assert_allclose(col(f, "log_popularity"), [math.log(4), 0.0, 0.0, 0.0], rtol=1e-6)
    assert col(f, "in_stock").tolist() == [1.0, 0.0, 0.0, 0.0]
    assert miss(f, "in_stock").tolist() == [False, False, True, True]  # out of stock is not "unknown"
    np.testing.assert_allclose(col(f, "age_days"), [9.0, 28.0, 0.0, 0.0])
    assert miss(f, "age_days").tolist() == [False, False, True, True]
    for name, d in FEATURES.items():
        if d.scope == "item":
            assert miss(f, name)[3], name  # the unknown product: every item feature missing, not an error


def test_user_features(items: ItemTable) -> None:
    f = run(items, ["A1", "B1"], user=hand_profile())
    expected = {
        "user_history": math.log1p(6),
        "user_views": math.log1p(2),
        "user_clicks": math.log1p(2),
        "user_carts": math.log1p(1),
        "user_purchases": math.log1p(1),
        "days_since_last_seen": 2.0,
    }
    for name, value in expected.items():
        np.testing.assert_allclose(col(f, name), [value, value], rtol=1e-6, err_msg=name)
        assert not miss(f, name).any()


def test_no_profile_means_user_and_cross_missing(items: ItemTable) -> None:
    f = run(items, ["A1", "B1", "ZZ"], user=None)
    for name, d in FEATURES.items():
        if d.scope in ("user", "cross"):
            assert miss(f, name).all(), name
            assert (col(f, name) == 0).all(), name
    assert not miss(f, "log_price")[:2].any()  # the rest is unaffected


# ------------------------------------------------------------------------------------------ cross


def test_affinities_and_price_vs_user(items: ItemTable) -> None:
    f = run(items, ["A1", "A2", "B1", "C1", "ZZ"], user=hand_profile())
    # category shares over the top-level total 10 (shoes 8 + home 2)
    np.testing.assert_allclose(col(f, "cat_affinity"), [0.6, 0.6, 0.2, 0.0, 0.0])
    assert miss(f, "cat_affinity").tolist() == [False, False, False, False, True]  # no kitchen weight: share 0
    np.testing.assert_allclose(col(f, "parent_cat_affinity"), [0.8, 0.8, 0.8, 0.2, 0.0])
    # brand shares over 8 (Acme 6 + Bolt 2); Cupco never engaged: 0, not missing
    np.testing.assert_allclose(col(f, "brand_affinity"), [0.75, 0.75, 0.25, 0.0, 0.0])
    assert miss(f, "brand_affinity").tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(col(f, "price_vs_user"), [0.0, math.log(0.5), math.log(2.0), math.log(0.1), 0.0])
    assert miss(f, "price_vs_user").tolist() == [False, False, False, False, True]
    no_price = run(items, ["A1"], user=hand_profile(price=None, categories={}, brands={}))
    for name in ("price_vs_user", "cat_affinity", "parent_cat_affinity", "brand_affinity"):
        assert miss(no_price, name).all(), name


def test_history_flags(items: ItemTable) -> None:
    f = run(items, ["A1", "A2", "B1", "X9"], user=hand_profile())
    assert col(f, "seen_before").tolist() == [1, 0, 1, 1]
    assert col(f, "clicked_before").tolist() == [1, 0, 0, 1]
    assert col(f, "carted_before").tolist() == [0, 0, 0, 1]  # X9 is unknown to the catalog, but was carted
    assert col(f, "bought_before").tolist() == [1, 0, 0, 0]
    assert not miss(f, "seen_before").any()


def test_latent_dot(items: ItemTable) -> None:
    f = run(items, ["A2", "C1", "B1", "ZZ"], user=hand_profile())
    # u = 6 * [1, 0] + 2 * [0, 1] (B1 normalised); X9 has no vector
    u = np.array([6.0, 2.0]) / math.hypot(6.0, 2.0)
    a2 = np.array([0.9, 0.1]) / math.hypot(0.9, 0.1)
    np.testing.assert_allclose(col(f, "latent_dot")[:3], [a2 @ u, -u[0], u[1]], rtol=1e-6)
    lat = col(f, "latent_dot")
    assert lat[0] > 0 > lat[1]  # A1's neighbour beats the unrelated item
    assert miss(f, "latent_dot").tolist() == [False, False, False, True]
    only_unknown = hand_profile(items={"X9": ItemState(1.0, {"view": 1}, NOW - DAY)})
    assert miss(run(items, ["A1"], user=only_unknown), "latent_dot").all()


def test_text_similarity(items: ItemTable, catalog: ProductCatalog) -> None:
    user = hand_profile()
    f = run(items, ["A1", "B1", "C1", "ZZ"], user=user)
    terms_index = {t: i for i, t in enumerate(catalog.terms.tolist())}
    uvec = np.zeros(len(terms_index))
    for t, w in user.interests.items():
        uvec[terms_index[t]] = w
    dense = catalog.tfidf.toarray()
    expected = []
    for pid in ("A1", "B1", "C1"):
        row = dense[catalog.index[pid]]
        expected.append(row @ uvec / (np.linalg.norm(row) * np.linalg.norm(uvec)))
    sim = col(f, "text_similarity")
    np.testing.assert_allclose(sim[:3], expected, rtol=1e-5)
    assert sim[0] > 0.3 and sim[1] == 0.0 and sim[2] == 0.0
    assert miss(f, "text_similarity").tolist() == [False, False, False, True]
    assert miss(run(items, ["A1"], user=hand_profile(interests={"zzz": 1.0})), "text_similarity").all()


# ------------------------------------------------------------------------------------------ the matrix


def test_subset_matches_full_and_x_is_clean(items: ItemTable) -> None:
    stats = QueryStats().add_events(ENGAGEMENT)
    ids = ["A1", "A2", "B1", "C1", "ZZ", "X9"]
    full = run(items, ids, user=hand_profile(), stats=stats, scores=[3, 2, 1, math.nan, 5, math.nan])
    assert full.X.dtype == np.float32 and full.X.shape == (6, len(DEFAULT_FEATURES.columns))
    assert full.missing.shape == (6, len(FEATURES)) and full.names == DEFAULT_FEATURES.columns
    assert np.isfinite(full.X).all()
    nb = len(FEATURES)
    assert np.array_equal(full.X[:, nb:] == 1.0, full.missing)
    assert (full.X[:, :nb][full.missing] == 0).all()
    fs = FeatureSet(("text_similarity", "bm25_norm", "q_click_rate"))
    part = run(items, ids, user=hand_profile(), stats=stats, scores=[3, 2, 1, math.nan, 5, math.nan], fs=fs)
    for name in part.names:
        assert np.array_equal(part.column(name), full.column(name)), name


def shopper_events() -> pd.DataFrame:
    base = NOW - 20 * DAY
    rows = [
        ("u1", "view", "A1", base),
        ("u1", "click", "A1", base + DAY),
        ("u1", "purchase", "A1", base + 2 * DAY),
        ("u1", "view", "B1", base + 3 * DAY),
        ("u1", "add_to_cart", "C1", base + 4 * DAY),
        ("u2", "click", "A2", base + DAY),
        ("u2", "view", "B1", base + 2 * DAY),
        ("u1", "click", "B1", NOW + DAY),  # after as_of: not in the profile
    ]
    n = len(rows)
    ts = pd.Series([r[3] for r in rows], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "product_id": [r[2] for r in rows],
            "timestamp": ts,
        }
    )


def test_offline_and_online_profiles_give_identical_x(catalog: ProductCatalog) -> None:
    built = build_profiles(shopper_events(), catalog, ProfilesConfig(), as_of=NOW - DAY)
    items = ItemTable.from_catalog(catalog, built.product_vectors, products=PRODUCTS)
    offline = built["u1"]
    online = UserProfile.from_doc(json.loads(json.dumps(offline.to_doc())))  # what the proxy reads
    stats = QueryStats().add_events(ENGAGEMENT)
    ids = ["A1", "A2", "B1", "C1", "ZZ"]
    x_off = run(items, ids, user=offline, stats=stats)
    x_on = run(items, ids, user=online, stats=QueryStats.from_docs(json.loads(json.dumps(list(stats.to_docs())))))
    assert np.array_equal(x_off.X, x_on.X)
    assert not x_off.missing[:, DEFAULT_FEATURES.names.index("latent_dot")][:4].any()
    assert col(x_off, "bought_before").tolist() == [1, 0, 0, 0, 0]
    assert col(x_off, "clicked_before")[2] == 0  # the click on B1 is after as_of


def test_item_table_from_frame_and_without_products(catalog: ProductCatalog) -> None:
    table = ItemTable.from_catalog(PRODUCTS)  # the frame itself: catalog and extra columns
    assert table.rows(["C1", "nope", "A1"]).tolist() == [3, -1, 0]
    assert np.array_equal(run(table, ["A1"]).X, run(ItemTable.from_frame(PRODUCTS), ["A1"]).X)
    bare = ItemTable.from_catalog(catalog)  # no products frame: title/reviews/stock/age unknown, price known
    f = run(bare, ["A1"], user=hand_profile())
    for name in ("title_term_share", "log_review_count", "log_popularity", "in_stock", "age_days", "latent_dot"):
        assert miss(f, name).all(), name
    assert not miss(f, "log_price").any() and not miss(f, "text_similarity").any()


def test_candidates_validate_lengths() -> None:
    with pytest.raises(ValueError, match="2 product ids"):
        Candidates(["A1", "A2"], np.array([1.0]), np.array([1.0, 2.0]))
