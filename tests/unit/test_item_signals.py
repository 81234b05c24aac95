"""ItemSignals: exact incremental adds (== one batch, any split, late events), point-in-time training rows,
position debiasing on a hand-built log, missing values, documents, and the behaviour popularity baseline."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.behaviour.events import events_frame, make_event_id, normalize_event
from fuserec_os.features.assemble import Candidates, RequestContext, assemble
from fuserec_os.features.items import ItemTable
from fuserec_os.features.spec import BEHAVIOUR_FEATURES, FEATURES, FeatureSet
from fuserec_os.learn.baselines import behaviour_popularity_scores, engine_scores
from fuserec_os.learn.dataset import SplitSpec, build_dataset
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import (
    ItemSignals,
    ItemSignalValues,
    PreparedEvents,
    PreparedImpressions,
    position_weight,
)

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
TYPES = ("view", "click", "add_to_cart", "purchase")
A = 10.0  # the default smoothing (pseudo-examinations)


def frame(rows: Sequence[tuple[str, str, pd.Timestamp, str | None, float | None]]) -> pd.DataFrame:
    """An events frame from (product, type, time, query, rating)."""
    docs = []
    for i, (pid, typ, ts, query, rating) in enumerate(rows):
        raw: dict[str, Any] = {"user_id": f"u{i % 3}", "product_id": pid, "type": typ, "timestamp": ts.isoformat()}
        if query is not None:
            raw["query"] = query
        if rating is not None:
            raw["rating"] = rating
        doc, reasons = normalize_event(raw, now=T0 + 2000 * DAY)
        assert doc is not None, reasons
        doc["event_id"] = make_event_id(doc) + f"-{i}"
        docs.append(doc)
    return events_frame(docs)


def log(rows: Sequence[tuple[pd.Timestamp, str | None, list[str]]]) -> pd.DataFrame:
    """A search log frame from (time, query, shown product ids)."""
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(rows))],
            "user_id": ["u"] * len(rows),
            "timestamp": pd.Series([r[0] for r in rows], dtype="datetime64[ns, UTC]"),
            "query": [r[1] for r in rows],
            "product_ids": [r[2] for r in rows],
        }
    )


def random_log(seed: int, n: int = 400, days: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ts = T0 + pd.Timedelta(seconds=rng.randint(0, days * 86_400))
        rating = rng.choice([None, None, None, 1.0, 3.5, 5.0])
        query = rng.choice(["red shoes", None, "boots"])
        rows.append((f"P{rng.randint(1, 12)}", rng.choice(TYPES), ts, query, rating))
    shown = [
        (T0 + pd.Timedelta(seconds=rng.randint(0, days * 86_400)), rng.choice(["red shoes", "boots", None]),
         rng.sample([f"P{i}" for i in range(1, 15)], 5))
        for _ in range(150)
    ]  # fmt: skip
    return frame(rows), log(shown)


def assert_values_equal(a: ItemSignalValues, b: ItemSignalValues) -> None:
    for name in ("decayed", "ctr", "conversion", "rating_mean", "rating_count", "days_since", "trend"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)


PIDS = [f"P{i}" for i in range(0, 16)]  # P0, P13..P15: never in the log


# ------------------------------------------------------------------------------------------ exactness


def test_incremental_adds_equal_one_batch_in_any_split_and_order() -> None:
    events, shown = random_log(1)
    batch = ItemSignals().add_events(events).add_impressions(shown)
    # in time order, in chunks of every size (what training does, search by search)
    ordered = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    prepared = PreparedEvents.from_frame(ordered)
    chunks = ItemSignals()
    i = 0
    rng = random.Random(2)
    while i < len(prepared):
        j = min(len(prepared), i + rng.randint(1, 25))
        chunks.add_prepared(prepared, i, j)
        i = j
    chunks.add_prepared_impressions(PreparedImpressions.from_frame(shown), 0, 70)
    chunks.add_prepared_impressions(PreparedImpressions.from_frame(shown), 70)
    # shuffled, late events included (an older event after newer ones), impressions first
    shuffled = ItemSignals().add_impressions(shown.iloc[::-1])
    mixed = events.sample(frac=1.0, random_state=3)
    for k in range(0, len(mixed), 60):
        shuffled.add_events(mixed.iloc[k : k + 60])
    newest = events["timestamp"].max()
    for now in (newest + HOUR, newest + 3 * DAY, newest + 40 * DAY):
        want = batch.values(PIDS, now)
        assert_values_equal(chunks.values(PIDS, now), want)
        assert_values_equal(shuffled.values(PIDS, now), want)
    assert len(batch) == len(chunks) == len(shuffled)


def test_values_equal_a_rebuild_from_the_events_before_now() -> None:
    """Point in time: what an accumulator advanced to ``now`` gives is what the events before ``now`` give."""
    events, _ = random_log(4)
    ordered = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    prepared = PreparedEvents.from_frame(ordered)
    running = ItemSignals()
    done = 0
    ns = ordered["timestamp"].astype("int64").to_numpy()
    for now in sorted(ordered["timestamp"].sample(25, random_state=5)):
        hi = int(np.searchsorted(ns, now.value, side="left"))
        running.add_prepared(prepared, done, hi)
        done = hi
        rebuilt = ItemSignals().add_events(events[events["timestamp"] < now])
        assert_values_equal(running.values(PIDS, now), rebuilt.values(PIDS, now))


def test_decay_stays_exact_across_many_half_lives() -> None:
    """Decayed numbers are kept relative to a reference time that moves (rescaled) on a years-long log."""
    rows = [("P1", "purchase", T0 + i * 30 * DAY, None, None) for i in range(40)]  # 3+ years, 85 half-lives
    events = frame(rows)
    s = ItemSignals()
    for i in range(len(events)):
        s.add_events(events.iloc[i : i + 1])
    now = events["timestamp"].max() + DAY
    want = sum(0.5 ** ((now - t) / pd.Timedelta(days=14)) for t in events["timestamp"])
    assert s.values(["P1"], now).decayed[0, 3] == pytest.approx(want, rel=1e-9)
    assert ItemSignals().add_events(events).values(["P1"], now).decayed[0, 3] == pytest.approx(want, rel=1e-9)


# ------------------------------------------------------------------------------------------ the signals


def test_decayed_counts_recency_and_ratings_by_hand() -> None:
    events = frame(
        [
            ("A", "view", T0, None, None),
            ("A", "click", T0 + DAY, "shoes", None),
            ("A", "purchase", T0 + 14 * DAY, None, 4.0),
            ("B", "view", T0 + 2 * DAY, None, 2.0),  # a rating without any click
            ("B", "view", T0 + 3 * DAY, None, 5.0),
        ]
    )
    now = T0 + 28 * DAY
    v = ItemSignals(half_life_days=14.0).add_events(events).values(["A", "B", "Z"], now)
    np.testing.assert_allclose(v.decayed[0], [0.25, 0.5 ** (27 / 14), 0.0, 0.5])
    np.testing.assert_allclose(v.decayed[1], [0.5 ** (26 / 14) + 0.5 ** (25 / 14), 0, 0, 0])
    assert (v.decayed[2] == 0).all()  # no events: a real zero
    np.testing.assert_allclose(v.days_since, [14.0, 25.0, np.nan])
    np.testing.assert_allclose(v.rating_mean, [4.0, 3.5, np.nan])
    np.testing.assert_allclose(v.rating_count, [1.0, 2.0, 0.0])
    np.testing.assert_allclose(v.engagement, [0.5 ** (27 / 14) + 3 * 0.5, 0.0, 0.0])


def test_position_debiased_rates_on_a_hand_built_log() -> None:
    """Two products clicked equally often, one always shown at rank 1 and one at rank 3: the one found despite
    its low rank gets the higher rate; a product shown once and clicked once is pulled towards the shop's rate."""
    shown = log(
        [(T0 + i * HOUR, "shoes", ["TOP", "MID", "LOW"]) for i in range(20)]
        + [(T0 + 30 * HOUR, "shoes", ["ONCE"]), (T0 + 31 * HOUR, None, ["LOW", "TOP"])]  # browsing: not counted
    )
    clicks = [("TOP", "click", T0 + i * HOUR + pd.Timedelta(minutes=1), "shoes", None) for i in range(4)]
    clicks += [("LOW", "click", T0 + i * HOUR + pd.Timedelta(minutes=2), "shoes", None) for i in range(4)]
    clicks += [("LOW", "purchase", T0 + 5 * HOUR, "shoes", None), ("ONCE", "click", T0 + 31 * HOUR, "shoes", None)]
    clicks += [("TOP", "click", T0 + 40 * HOUR, None, None)]  # a click outside search: not a search click
    s = ItemSignals().add_events(frame(clicks)).add_impressions(shown)
    w = position_weight(np.arange(1, 4))
    exams = {"TOP": 20 * w[0], "MID": 20 * w[1], "LOW": 20 * w[2], "ONCE": w[0]}
    total_exams = sum(exams.values())
    prior_click, prior_buy = 9 / total_exams, 1 / total_exams
    v = s.values(["TOP", "MID", "LOW", "ONCE", "NEVER"], T0 + 2 * DAY)
    want_ctr = [(c + A * prior_click) / (exams[p] + A) for p, c in (("TOP", 4), ("MID", 0), ("LOW", 4), ("ONCE", 1))]
    np.testing.assert_allclose(v.ctr[:4], want_ctr)
    want_cvr = [(c + A * prior_buy) / (exams[p] + A) for p, c in (("TOP", 0), ("MID", 0), ("LOW", 1), ("ONCE", 0))]
    np.testing.assert_allclose(v.conversion[:4], want_cvr)
    assert v.ctr[2] > v.ctr[0] > v.ctr[1]  # debiased: LOW beats TOP for the same clicks
    assert v.ctr[3] < 0.5  # one lucky click is not a 100 % product
    assert np.isnan(v.ctr[4]) and np.isnan(v.conversion[4])  # never shown: missing


def test_no_search_log_leaves_the_rates_missing_not_zero() -> None:
    events = frame([("A", "click", T0, "shoes", None), ("A", "purchase", T0 + HOUR, "shoes", None)])
    v = ItemSignals().add_events(events).values(["A"], T0 + DAY)
    assert np.isnan(v.ctr).all() and np.isnan(v.conversion).all()
    assert v.decayed[0, 1] > 0  # the counts are there


def test_trend_compares_the_last_week_with_the_three_before() -> None:
    rows = [("UP", "view", T0 + 25 * DAY + i * HOUR, None, None) for i in range(6)]  # days 25: the last week
    rows += [("UP", "view", T0 + 2 * DAY, None, None)]  # 3 weeks before: 1 view
    rows += [("DOWN", "purchase", T0 + 5 * DAY, None, None)]  # 10 before
    rows += [("OLD", "view", T0 - 30 * DAY, None, None)]  # outside the 4 weeks
    now = T0 + 27 * DAY + 12 * HOUR  # day 27: the last 7 days are days 21..27
    v = ItemSignals().add_events(frame(rows)).values(["UP", "DOWN", "OLD", "Z"], now)
    np.testing.assert_allclose(v.trend[:2], [math.log(7 / (1 / 3 + 1)), math.log(1 / (10 / 3 + 1))])
    assert np.isnan(v.trend[2:]).all()


def test_features_have_scope_item_and_are_missing_without_signals() -> None:
    assert BEHAVIOUR_FEATURES and all(FEATURES[n].scope == "item" and FEATURES[n].can_be_missing for n in
                                      BEHAVIOUR_FEATURES)  # fmt: skip
    products = pd.DataFrame([{"product_id": p, "title": f"shoe {p}", "price": 10.0} for p in ("A", "B")])
    items = ItemTable.from_frame(products)
    fs = FeatureSet(tuple(sorted(BEHAVIOUR_FEATURES)))
    cands = Candidates(["A", "B", "NOT_IN_CATALOG"], np.ones(3), np.arange(1.0, 4.0))
    now = T0 + DAY
    none = assemble(fs, items, RequestContext("shoes", None, now), cands)
    assert none.missing.all() and (none.X[:, : len(fs.names)] == 0).all()
    events = frame([("A", "click", T0, "shoes", None), ("NOT_IN_CATALOG", "purchase", T0, None, None)])
    signals = ItemSignals().add_events(events)
    f = assemble(fs, items, RequestContext("shoes", None, now, item_signals=signals), cands)
    col = {n: f.X[:, i] for i, n in enumerate(f.names)}
    assert col["item_clicks"][0] == pytest.approx(math.log1p(0.5 ** (1 / 14)), rel=1e-6)
    assert col["item_clicks__missing"].tolist() == [0.0, 0.0, 1.0]  # B: 0 is a value; outside the catalog: missing
    assert col["item_ctr__missing"].tolist() == [1.0, 1.0, 1.0]  # no search log
    assert col["item_days_since__missing"].tolist() == [0.0, 1.0, 1.0]
    assert col["item_rating_mean__missing"].tolist() == [1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------------------ documents


def test_documents_round_trip_and_partial_replace() -> None:
    events, shown = random_log(6)
    full = ItemSignals().add_events(events).add_impressions(shown)
    docs = full.to_docs()
    assert [d["product_id"] for d in docs] == sorted(d["product_id"] for d in docs)
    back = ItemSignals.from_docs(docs)
    now = events["timestamp"].max() + 2 * DAY
    assert_values_equal(back.values(PIDS, now), full.values(PIDS, now))
    # a serving copy taking the docs of the products a later batch touched equals the full state
    later, _ = random_log(7, n=40, days=70)
    later = later[later["timestamp"] > events["timestamp"].max()]
    both = full.copy().add_events(later)
    touched = sorted(set(later["product_id"]))
    partial = ItemSignals.from_docs([d for d in docs if d["product_id"] in touched]).add_events(later)
    copy = back.copy().replace_docs(partial.to_docs(touched))
    now = later["timestamp"].max() + DAY
    assert_values_equal(copy.values(PIDS, now), both.values(PIDS, now))
    assert_values_equal(back.values(PIDS, now), full.values(PIDS, now))  # the copy's source is unchanged


# ------------------------------------------------------------------------------------------ training


PRODUCTS = pd.DataFrame(
    [{"product_id": f"P{i}", "title": f"trail shoe {i}", "price": 50.0 + i} for i in range(1, 7)]
)  # fmt: skip


class FakeEngine:
    def search_scored(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        return [[(f"P{i}", 10.0 - i) for i in range(1, 7)][:k] for _ in queries]


def test_training_rows_hold_the_signals_of_the_events_strictly_before_each_search() -> None:
    rng = random.Random(8)
    raw = []
    for i in range(120):
        ts = T0 + pd.Timedelta(minutes=37 * i)
        pid = f"P{rng.randint(1, 6)}"
        raw.append({"user_id": f"u{i % 5}", "product_id": pid, "type": rng.choice(TYPES[1:]),
                    "timestamp": ts.isoformat(), "query": "trail shoes", "request_id": f"r{i // 2}"})  # fmt: skip
    raw.append({**raw[40], "type": "purchase", "product_id": "P6"})  # at a search's own time: not before it
    docs = []
    for r in raw:
        doc, reasons = normalize_event(r, now=T0 + 400 * DAY)
        assert doc is not None, reasons
        doc["event_id"] = make_event_id(doc)
        docs.append(doc)
    events = events_frame(docs)
    shown = log([(T0 + pd.Timedelta(minutes=37 * i) - pd.Timedelta(seconds=5), "trail shoes",
                  [f"P{1 + (i + j) % 6}" for j in range(6)]) for i in range(0, 120, 2)])  # fmt: skip
    shown["request_id"] = [f"r{i // 2}" for i in range(0, 120, 2)]
    fs = FeatureSet(tuple(sorted(BEHAVIOUR_FEATURES)))
    for freeze in (False, True):
        _check_signals_in_time(events, shown, fs, freeze)


def _check_signals_in_time(events: pd.DataFrame, shown: pd.DataFrame, fs: FeatureSet, freeze: bool) -> None:
    """Live statistics: each search sees every event before it. Frozen (the default): the test period's
    events are held out, and validation sees the signals as of its own start."""
    ds = build_dataset(
        events, ProductCatalog.from_frame(PRODUCTS), fs, ProfilesConfig(), FakeEngine(), impressions=shown,
        products=PRODUCTS, split=SplitSpec(test_fraction=0.25, valid_fraction=0.2, freeze_stats=freeze),
    )  # fmt: skip
    searches = ds.searches
    test_start = searches.loc[searches["split"] == "test", "timestamp"].min()
    valid_start = searches.loc[searches["split"] == "valid", "timestamp"].min()
    checked = 0
    for row in searches.to_dict("records"):
        now = pd.Timestamp(row["timestamp"])
        mask = ds.groups == row["search_id"]
        pids = ds.candidates.loc[mask, "product_id"].tolist()
        until = now
        if freeze:
            until = min(now, valid_start) if row["split"] == "valid" else min(now, test_start)
        ref = ItemSignals().add_events(events[events["timestamp"] < until])
        ref.add_impressions(shown[shown["timestamp"] < until])
        want = assemble(fs, ItemTable.from_frame(PRODUCTS), RequestContext("", None, now, item_signals=ref),
                        Candidates(pids, np.zeros(len(pids)), np.zeros(len(pids))))  # fmt: skip
        np.testing.assert_allclose(ds.X[mask], want.X, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ds.candidates.loc[mask, "item_engagement"], ref.engagement(pids, now), rtol=1e-9)
        checked += 1
    assert checked > 20


def test_the_behaviour_popularity_baseline_ranks_by_engagement_then_engine() -> None:
    engine = engine_scores([3.0, 2.0, 1.0, np.nan], [1, 2, 3, np.nan], [1, 2, 3, 4])
    scores = behaviour_popularity_scores([0.0, np.nan, 2.5, 0.0], engine)
    assert list(np.argsort(-scores, kind="stable")) == [2, 0, 1, 3]
    assert list(np.argsort(-behaviour_popularity_scores([np.nan] * 4, engine), kind="stable")) == [0, 1, 2, 3]


def test_explanations_say_what_the_signals_mean() -> None:
    from fuserec_os.rerank.explain import describe

    hit = type("Hit", (), {"source": {}, "score": 1.0})()
    assert describe("item_purchases", math.log1p(2.5), hit, None) == "bought by shoppers lately (2.5, decayed)"
    assert describe("item_ctr", 0.25, hit, None) == "clicked in search results (25% of examinations)"
    assert describe("item_trend", 0.4, hit, None) == "trending up"
    assert describe("item_rating_mean", 4.3, hit, None) == "shoppers rate it 4.3"
    assert describe("item_ctr__missing", 1.0, hit, None) == "never shown in a logged search"
    assert describe("item_trend__missing", 1.0, hit, None) == "no engagement in the last 4 weeks"


def test_searches_that_showed_nothing_add_nothing() -> None:
    """Issue 12: an empty page in the search log examines no product: the signals equal those without it."""
    events, shown = random_log(4)
    empty = log([(T0 + i * HOUR, "red shoes", []) for i in range(30)] + [(T0, None, [])])
    with_empty = pd.concat([shown, empty], ignore_index=True).sort_values("timestamp", kind="stable")
    a = ItemSignals().add_events(events).add_impressions(with_empty)
    b = ItemSignals().add_events(events).add_impressions(shown)
    assert_values_equal(a.values(PIDS, T0 + 70 * DAY), b.values(PIDS, T0 + 70 * DAY))
    prepared = PreparedImpressions.from_frame(empty)
    assert len(prepared) == len(empty) and prepared.product_ids == [] and prepared.offsets.tolist() == [0] * 32
    only = ItemSignals().add_events(events).add_impressions(empty)
    assert np.isnan(only.values(PIDS, T0 + 70 * DAY).ctr).all()  # no examination logged: the rates stay missing
