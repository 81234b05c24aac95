"""User profiles: hand-computed affinities, decay, price/rating/interests, incremental == rebuild, point in time."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.profiles.compute import (
    ProductCatalog,
    UserProfile,
    build_profiles,
    fold_in,
    price_bucket,
    profile_as_of,
    update_profiles,
)
from fuserec_os.profiles.config import ProfilesConfig

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)
CFG = ProfilesConfig()  # view 1, click 3, add_to_cart 5, purchase 10; half-life 14 days


def make_events(rows: Sequence[tuple[str, str, str, Any]]) -> pd.DataFrame:
    """An events frame in the events_frame schema from (user_id, type, product_id, timestamp) rows."""
    n = len(rows)
    ts = pd.Series([pd.Timestamp(r[3]) for r in rows], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "event_id": pd.Series([f"e{i}" for i in range(n)], dtype="str"),
            "user_id": pd.Series([r[0] for r in rows], dtype="str"),
            "session_id": pd.Series([None] * n, dtype="object"),
            "type": pd.Series([r[1] for r in rows], dtype="str"),
            "product_id": pd.Series([r[2] for r in rows], dtype="str"),
            "timestamp": ts,
            "query": pd.Series([None] * n, dtype="object"),
            "query_norm": pd.Series([None] * n, dtype="object"),
            "position": pd.Series([None] * n, dtype="object").astype("Int64"),
            "price": pd.Series([np.nan] * n, dtype="float64"),
            "quantity": pd.Series([None] * n, dtype="object").astype("Int64"),
            "request_id": pd.Series([None] * n, dtype="object"),
            "ingested_at": ts,
        }
    )


PRODUCTS = pd.DataFrame(
    [
        {
            "product_id": "P1",
            "title": "Espresso Machine",
            "description": "Italian espresso brewing with a steam wand.",
            "brand": "Brewmaster",
            "category": "home > kitchen > coffee makers",
            "price": 50.0,
            "rating": 4.0,
            "tags": ["coffee", "barista"],
        },
        {
            "product_id": "P2",
            "title": "Drip Coffee Maker",
            "description": "Programmable carafe for twelve cups.",
            "brand": "Brewmaster",
            "category": "home > kitchen > coffee makers",
            "price": 200.0,
            "rating": 5.0,
            "tags": ["coffee"],
        },
        {
            "product_id": "P3",
            "title": "Chef Knife",
            "description": "Forged steel blade.",
            "brand": "Sharpco",
            "category": "home > kitchen > knives",
            "price": 30.0,
            "rating": 3.0,
            "tags": None,
        },
        {
            "product_id": "P4",
            "title": "Trail Running Shoe",
            "description": "Grippy outsole for mountain trails.",
            "brand": "Kinetix",
            "category": "shoes > running shoes",
            "price": 120.0,
            "rating": 4.5,
            "tags": "running|trail",
        },
        {
            "product_id": "P5",
            "title": "Mystery Gadget",
            "description": None,
            "brand": None,
            "category": None,
            "price": np.nan,
            "rating": np.nan,
            "tags": None,
        },
    ]
)


@pytest.fixture(scope="module")
def catalog() -> ProductCatalog:
    return ProductCatalog.from_frame(PRODUCTS)


def one(events: pd.DataFrame, catalog: ProductCatalog, user: str = "u1", cfg: ProfilesConfig = CFG) -> UserProfile:
    return build_profiles(events, catalog, cfg, as_of=T0)[user]


# ------------------------------------------------------------------------------------------ hand-computed


def test_purchase_decays_onto_leaf_parent_and_top_category(catalog: ProductCatalog) -> None:
    p = one(make_events([("u1", "purchase", "P1", T0 - 14 * DAY)]), catalog)
    # 10 (purchase) * 0.5 ** (14 days / 14 days) = 5.0, on every level of the path
    assert p.categories == pytest.approx(
        {"home": 5.0, "home > kitchen": 5.0, "home > kitchen > coffee makers": 5.0}, rel=1e-12
    )
    assert p.brands == pytest.approx({"Brewmaster": 5.0}, rel=1e-12)
    assert p.total_weight == pytest.approx(5.0, rel=1e-12)
    assert p.items["P1"].w == pytest.approx(5.0, rel=1e-12)
    assert dict(p.items["P1"].counts) == {"purchase": 1}
    assert p.as_of == T0


def test_mixed_events_sum_decayed_weights(catalog: ProductCatalog) -> None:
    events = make_events(
        [
            ("u1", "view", "P3", T0 - 28 * DAY),  # 1 * 0.25
            ("u1", "click", "P1", T0 - 7 * DAY),  # 3 * 2 ** -0.5
            ("u1", "add_to_cart", "P1", T0 - 14 * DAY),  # 5 * 0.5
            ("u1", "purchase", "P4", T0),  # at as_of: excluded (strictly before)
        ]
    )
    p = one(events, catalog)
    w_p3, w_p1 = 0.25, 3 * 2**-0.5 + 2.5
    assert p.categories == pytest.approx(
        {
            "home": w_p3 + w_p1,
            "home > kitchen": w_p3 + w_p1,
            "home > kitchen > coffee makers": w_p1,
            "home > kitchen > knives": w_p3,
        },
        rel=1e-12,
    )
    assert p.brands == pytest.approx({"Brewmaster": w_p1, "Sharpco": w_p3}, rel=1e-12)
    brands = p.top_brands(5)
    assert [b for b, _ in brands] == ["Brewmaster", "Sharpco"]
    assert brands[0][1] == pytest.approx(w_p1 / (w_p1 + w_p3))
    assert sum(s for _, s in brands) == pytest.approx(1.0)
    cats = p.top_categories(10)
    assert cats[0][1] == pytest.approx(1.0)  # "home" holds every categorised engagement
    assert dict(p.top_categories(10, depth=3)) == pytest.approx(
        {"home > kitchen > coffee makers": w_p1 / (w_p1 + w_p3), "home > kitchen > knives": w_p3 / (w_p1 + w_p3)}
    )
    assert dict(p.items["P1"].counts) == {"click": 1, "add_to_cart": 1}
    assert "P4" not in p.items


def test_counts_seen_and_recent_order_with_cap(catalog: ProductCatalog) -> None:
    cfg = ProfilesConfig(recent_items=3)
    events = make_events(
        [
            ("u1", "view", "P1", T0 - 5 * DAY),
            ("u1", "click", "P1", T0 - 4 * DAY),
            ("u1", "view", "P2", T0 - 3 * DAY),
            ("u1", "add_to_cart", "P2", T0 - 2 * DAY),
            ("u1", "purchase", "P2", T0 - 1 * DAY),
            ("u2", "view", "P3", T0 - 1 * DAY),
        ]
    )
    p = one(events, catalog, cfg=cfg)
    assert p.counts == {"view": 2, "click": 1, "add_to_cart": 1, "purchase": 1}
    assert p.n_events == 5
    assert p.first_seen == T0 - 5 * DAY
    assert p.last_seen == T0 - 1 * DAY
    assert [(r.product_id, r.type, r.timestamp) for r in p.recent] == [
        ("P2", "purchase", T0 - 1 * DAY),
        ("P2", "add_to_cart", T0 - 2 * DAY),
        ("P2", "view", T0 - 3 * DAY),
    ]
    assert p.items["P2"].last == T0 - 1 * DAY
    assert dict(p.items["P2"].counts) == {"view": 1, "add_to_cart": 1, "purchase": 1}


def test_price_median_and_spread_from_histogram(catalog: ProductCatalog) -> None:
    events = make_events([("u1", "purchase", pid, T0 - DAY) for pid in ("P3", "P1", "P2")])  # 30, 50, 200
    price = one(events, catalog).price
    assert price is not None
    assert price_bucket(price.median) == price_bucket(50.0)
    assert price_bucket(price.p25) == price_bucket(30.0)
    assert price_bucket(price.p75) == price_bucket(200.0)
    assert price.p25 < price.median < price.p75
    assert price.weight == pytest.approx(3 * 10 * 0.5 ** (1 / 14), rel=1e-12)
    assert sum(price.histogram.values()) == pytest.approx(price.weight)


def test_price_sensitivity_sign(catalog: ProductCatalog) -> None:
    # leaf medians: coffee makers median(50, 200) = 125; knives 30
    cheap = one(make_events([("u1", "purchase", "P1", T0 - DAY)]), catalog).price
    dear = one(make_events([("u1", "purchase", "P2", T0 - DAY)]), catalog).price
    typical = one(make_events([("u1", "purchase", "P3", T0 - DAY)]), catalog).price
    assert cheap is not None and dear is not None and typical is not None
    assert cheap.sensitivity == pytest.approx(math.log(50 / 125))
    assert dear.sensitivity == pytest.approx(math.log(200 / 125))
    assert typical.sensitivity == pytest.approx(0.0, abs=1e-12)
    assert catalog.leaf_median_price["home > kitchen > coffee makers"] == 125.0


def test_rating_is_decayed_weighted_mean(catalog: ProductCatalog) -> None:
    events = make_events([("u1", "purchase", "P1", T0 - 14 * DAY), ("u1", "view", "P2", T0 - 14 * DAY)])
    # weights 5.0 (rating 4) and 0.5 (rating 5)
    assert one(events, catalog).rating == pytest.approx((5.0 * 4 + 0.5 * 5) / 5.5, rel=1e-12)


def test_interests_hold_the_engaged_products_distinctive_words(catalog: ProductCatalog) -> None:
    p = one(make_events([("u1", "purchase", "P1", T0 - DAY), ("u1", "view", "P4", T0 - DAY)]), catalog)
    assert "espresso" in p.interests
    assert next(iter(p.interests)) == "espresso"  # in title and description, and bought: the strongest
    assert "trail" in p.interests
    assert "knife" not in p.interests
    weights = list(p.interests.values())
    assert weights == sorted(weights, reverse=True)
    small = one(make_events([("u1", "purchase", "P1", T0 - DAY)]), catalog, cfg=ProfilesConfig(interest_terms=2))
    assert len(small.interests) == 2


def test_missing_values_are_none_and_unknown_products_count_only_as_items(catalog: ProductCatalog) -> None:
    events = make_events([("u1", "purchase", "P5", T0 - 14 * DAY), ("u1", "click", "NOT-IN-CATALOG", T0 - 14 * DAY)])
    p = one(events, catalog)
    assert p.price is None
    assert p.rating is None
    assert p.categories == {}
    assert p.brands == {}
    assert p.top_categories() == []
    assert p.top_brands() == []
    assert set(p.items) == {"P5", "NOT-IN-CATALOG"}
    assert p.items["NOT-IN-CATALOG"].w == pytest.approx(1.5)
    assert p.total_weight == pytest.approx(5.0 + 1.5)
    assert p.counts["click"] == 1
    assert {r.product_id for r in p.recent} == {"P5", "NOT-IN-CATALOG"}
    assert set(p.interests) <= {"mystery", "gadget"}  # from P5's title only
    only_unknown = one(make_events([("u1", "view", "X", T0 - DAY)]), catalog)
    assert only_unknown.interests == {}
    assert only_unknown.price is None
    doc = only_unknown.to_doc()
    assert doc["price"] is None and doc["rating"] is None


def test_config_weights_are_respected(catalog: ProductCatalog) -> None:
    events = make_events([("u1", "purchase", "P1", T0 - 3 * DAY), ("u1", "view", "P3", T0 - 3 * DAY)])
    base = one(events, catalog)
    doubled = one(events, catalog, cfg=ProfilesConfig(weights={**CFG.weights, "purchase": 20.0}))
    assert doubled.brands["Brewmaster"] == pytest.approx(2 * base.brands["Brewmaster"], rel=1e-12)
    assert doubled.brands["Sharpco"] == pytest.approx(base.brands["Sharpco"], rel=1e-12)
    slower = one(events, catalog, cfg=ProfilesConfig(half_life_days=3.0))
    assert slower.brands["Brewmaster"] == pytest.approx(10 * 0.5, rel=1e-12)


def test_events_without_ids_or_with_unknown_types_are_ignored(catalog: ProductCatalog) -> None:
    events = make_events([("u1", "view", "P1", T0 - DAY), ("u1", "wishlist", "P2", T0 - DAY)])
    events.loc[len(events)] = events.iloc[0]
    events.loc[len(events) - 1, "product_id"] = None
    p = one(events, catalog)
    assert p.n_events == 1
    assert set(p.items) == {"P1"}


# ------------------------------------------------------------------------------------------ time


def test_point_in_time_ignores_events_at_or_after_as_of(catalog: ProductCatalog) -> None:
    before = [("u1", "view", "P1", T0 - 2 * DAY), ("u1", "purchase", "P2", T0 - pd.Timedelta(milliseconds=1))]
    later = [
        ("u1", "purchase", "P4", T0),  # exactly as_of: excluded
        ("u1", "purchase", "P3", T0 + DAY),
        ("u2", "purchase", "P3", T0 + DAY),  # a user who only exists later
    ]
    ref = build_profiles(make_events(before), catalog, CFG, as_of=T0)
    got = build_profiles(make_events(before + later), catalog, CFG, as_of=T0)
    assert set(got.profiles) == {"u1"}
    assert got["u1"].to_doc() == ref["u1"].to_doc()
    assert got["u1"].last_seen == T0 - pd.Timedelta(milliseconds=1)
    assert profile_as_of(make_events(before + later), catalog, CFG, "u1", T0) == UserProfile.from_doc(
        {**ref["u1"].to_doc(), "vector": None}
    )
    assert profile_as_of(make_events(later), catalog, CFG, "u1", T0) is None


def test_as_of_defaults_to_latest_event_plus_one_millisecond(catalog: ProductCatalog) -> None:
    latest = T0 - DAY
    built = build_profiles(
        make_events([("u1", "view", "P1", T0 - 2 * DAY), ("u1", "view", "P2", latest)]), catalog, CFG
    )
    assert built.as_of == latest + pd.Timedelta(milliseconds=1)
    assert built["u1"].n_events == 2
    assert built.config["weights"] == dict(CFG.weights)


def test_decayed_to_scales_decayed_numbers_only(catalog: ProductCatalog) -> None:
    p = one(make_events([("u1", "purchase", "P1", T0 - DAY), ("u1", "view", "P3", T0 - 2 * DAY)]), catalog)
    later = p.decayed_to(T0 + 14 * DAY, CFG)
    assert later.as_of == T0 + 14 * DAY
    assert later.categories["home"] == pytest.approx(p.categories["home"] / 2, rel=1e-12)
    assert later.items["P1"].w == pytest.approx(p.items["P1"].w / 2, rel=1e-12)
    assert later.total_weight == pytest.approx(p.total_weight / 2, rel=1e-12)
    assert later.price is not None and p.price is not None
    assert later.price.median == p.price.median
    assert later.rating == p.rating
    assert dict(later.top_brands()) == pytest.approx(dict(p.top_brands()))
    assert later.counts == p.counts
    with pytest.raises(ValueError, match="back to"):
        p.decayed_to(T0 - DAY, CFG)


# ------------------------------------------------------------------------------------------ incremental


def random_events(
    seed: int, n: int, users: Sequence[str], start: pd.Timestamp, days: float
) -> list[tuple[str, str, str, Any]]:
    rng = np.random.default_rng(seed)
    products = ["P1", "P2", "P3", "P4", "P5", "UNKNOWN-1", "UNKNOWN-2"]
    rows = []
    for _ in range(n):
        offset = pd.Timedelta(milliseconds=int(rng.integers(0, int(days * 86_400_000))))
        rows.append(
            (
                str(rng.choice(list(users))),
                str(rng.choice(EVENT_TYPES, p=[0.55, 0.25, 0.12, 0.08])),
                str(rng.choice(products)),
                start + offset,
            )
        )
    return rows


def assert_close_profiles(got: UserProfile, ref: UserProfile) -> None:
    rel = 1e-9
    assert got.as_of == ref.as_of
    assert (got.first_seen, got.last_seen, got.n_events, got.counts) == (
        ref.first_seen,
        ref.last_seen,
        ref.n_events,
        ref.counts,
    )
    assert got.recent == ref.recent
    assert list(got.items) == list(ref.items)
    for pid, state in ref.items.items():
        assert got.items[pid].w == pytest.approx(state.w, rel=rel)
        assert dict(got.items[pid].counts) == dict(state.counts)
        assert got.items[pid].last == state.last
    assert got.categories == pytest.approx(ref.categories, rel=rel)
    assert got.brands == pytest.approx(ref.brands, rel=rel)
    assert list(got.interests) == list(ref.interests)
    assert got.interests == pytest.approx(ref.interests, rel=rel)
    assert got.total_weight == pytest.approx(ref.total_weight, rel=rel)
    assert (got.rating is None) == (ref.rating is None)
    if ref.rating is not None:
        assert got.rating == pytest.approx(ref.rating, rel=rel)
    assert (got.price is None) == (ref.price is None)
    if got.price is not None and ref.price is not None:
        for name in ("weight", "median", "p25", "p75", "sensitivity"):
            assert getattr(got.price, name) == pytest.approx(getattr(ref.price, name), rel=rel), name
        assert got.price.histogram == pytest.approx(ref.price.histogram, rel=rel)


def test_incremental_update_equals_full_rebuild(catalog: ProductCatalog) -> None:
    cfg = ProfilesConfig(recent_items=5)
    start = T0 - 40 * DAY
    split = start + 25 * DAY
    old_users = ["a", "b", "c", "d", "e"]
    rows = random_events(1, 300, old_users, start, 40)
    rows += random_events(2, 40, ["new1", "new2"], split, 15)  # users only in the new part
    rows += [("a", "purchase", "P2", split - pd.Timedelta(hours=1))]
    first = [r for r in rows if r[3] < split]
    second = [r for r in rows if r[3] >= split]
    assert {r[0] for r in second} - {r[0] for r in first} == {"new1", "new2"}
    end = start + 40 * DAY + pd.Timedelta(minutes=1)

    base = build_profiles(make_events(first), catalog, cfg, as_of=split)
    updated = update_profiles(base.profiles, make_events(second), catalog, cfg, end)
    full = build_profiles(make_events(rows), catalog, cfg, as_of=end)

    assert set(updated) == {r[0] for r in second}
    for uid, got in updated.items():
        assert_close_profiles(got, full[uid])
    # latent vectors: only a full build refits them
    for uid in set(updated) & set(base.profiles):
        assert updated[uid].vector is not None
        np.testing.assert_array_equal(updated[uid].vector, base[uid].vector)
    assert updated["new1"].vector is None  # no product vectors passed: no fold-in

    # three steps equal two: the update composes
    mid = split + 7 * DAY
    step1 = update_profiles(base.profiles, make_events([r for r in second if r[3] < mid]), catalog, cfg, mid)
    merged = {**base.profiles, **step1}
    step2 = update_profiles(merged, make_events([r for r in second if r[3] >= mid]), catalog, cfg, end)
    for uid, got in step2.items():
        assert_close_profiles(got, full[uid])


def test_update_folds_new_users_into_the_product_vectors(catalog: ProductCatalog) -> None:
    rows = random_events(3, 200, ["a", "b", "c", "d"], T0 - 20 * DAY, 10)
    base = build_profiles(make_events(rows), catalog, CFG, as_of=T0 - 10 * DAY)
    new = make_events([("z", "purchase", "P1", T0 - DAY), ("z", "view", "P4", T0 - DAY), ("z", "view", "X9", T0 - DAY)])
    got = update_profiles(base.profiles, new, catalog, CFG, T0, product_vectors=base.product_vectors)
    z = got["z"]
    assert z.vector is not None
    V = np.vstack([base.product_vectors[p] for p in base.product_vectors])
    r = np.array([z.items[p].w if p in z.items else 0.0 for p in base.product_vectors])
    np.testing.assert_allclose(z.vector, r @ V @ np.linalg.inv(V.T @ V), rtol=1e-9, atol=1e-12)
    assert fold_in({"X9": 1.0}, base.product_vectors) is None
    assert fold_in({"P1": 1.0}, {}) is None


def test_update_refuses_to_go_back_in_time(catalog: ProductCatalog) -> None:
    base = build_profiles(make_events([("u1", "view", "P1", T0 - DAY)]), catalog, CFG, as_of=T0)
    with pytest.raises(ValueError, match="later than"):
        update_profiles(base.profiles, make_events([("u1", "view", "P2", T0 - 3 * DAY)]), catalog, CFG, T0 - 2 * DAY)
    assert update_profiles(base.profiles, make_events([]), catalog, CFG, T0 + DAY) == {}


# ------------------------------------------------------------------------------------------ latent


def test_users_with_the_same_products_have_closer_vectors(catalog: ProductCatalog) -> None:
    rows = []
    for i in range(6):
        for pid in ("P1", "P2", "P3"):
            rows.append((f"kitchen{i}", "purchase", pid, T0 - (i + 1) * DAY))
        for pid in ("P4", "P5"):
            rows.append((f"runner{i}", "purchase", pid, T0 - (i + 1) * DAY))
    built = build_profiles(make_events(rows), catalog, ProfilesConfig(latent_dims=2), as_of=T0)
    assert built.config["latent_dims_used"] == 2
    assert set(built.product_vectors) == {"P1", "P2", "P3", "P4", "P5"}

    def cos(a: str, b: str) -> float:
        x, y = built[a].vector, built[b].vector
        assert x is not None and y is not None and len(x) == 2
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))

    assert cos("kitchen0", "kitchen5") > cos("kitchen0", "runner0") + 0.5
    assert cos("runner1", "runner3") > cos("runner1", "kitchen3") + 0.5


def test_latent_dims_shrink_for_small_matrices(catalog: ProductCatalog) -> None:
    built = build_profiles(
        make_events([("u1", "view", "P1", T0 - DAY), ("u2", "view", "P2", T0 - DAY)]), catalog, CFG, as_of=T0
    )
    assert built.config["latent_dims_used"] == 2
    assert all(len(v) == 2 for v in built.product_vectors.values())


# ------------------------------------------------------------------------------------------ documents


def test_doc_round_trip_is_json_and_exact(catalog: ProductCatalog) -> None:
    rows = random_events(4, 120, ["a", "b"], T0 - 30 * DAY, 30)
    built = build_profiles(make_events(rows), catalog, CFG, as_of=T0 + pd.Timedelta(microseconds=1))
    for p in built:
        doc = p.to_doc()
        text = json.dumps(doc)
        back = UserProfile.from_doc(json.loads(text))
        assert back == p
        assert back.to_doc() == doc
        assert back.as_of == p.as_of
        assert back.vector is not None and p.vector is not None
        np.testing.assert_array_equal(back.vector, p.vector)
    doc = built["a"].to_doc()
    assert doc["as_of"] == "2026-03-01T00:00:00.000001Z"
    assert doc["counts"] == built["a"].counts
    assert doc["top_categories"][0] == built["a"].top_categories(1)[0][0]
    assert isinstance(doc["interests"], list)
    with pytest.raises(ValueError, match="schema"):
        UserProfile.from_doc({**doc, "schema": 99})


def test_catalog_handles_duplicates_and_missing_columns() -> None:
    frame = pd.DataFrame(
        [
            {"product_id": "A", "title": "old title", "category": "x > y", "price": 5.0},
            {"product_id": "A", "title": "new title", "category": "x > z", "price": -1},
            {"product_id": None, "title": "no id"},
        ]
    )
    cat = ProductCatalog.from_frame(frame)
    assert cat.product_ids == ["A"]
    assert cat.category == ["x > z"]
    assert math.isnan(cat.price[0])  # a negative price is no price
    assert set(cat.category_names) == {"x", "x > z"}
    assert cat.brand == [None]
    assert "new" in set(cat.terms)
    empty = ProductCatalog.from_frame(pd.DataFrame({"product_id": ["B"]}))
    assert empty.tfidf.shape == (1, 0)
    p = build_profiles(make_events([("u", "view", "B", T0 - DAY)]), empty, CFG, as_of=T0)["u"]
    assert p.interests == {} and p.categories == {} and p.price is None
