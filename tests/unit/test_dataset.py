"""Training examples: graded labels, time split, and no leakage of the future into features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from fuserec_os.behaviour.events import events_frame
from fuserec_os.errors import ConfigError
from fuserec_os.features.spec import FeatureSet
from fuserec_os.learn.dataset import SplitSpec, build_dataset, graded_labels, logged_searches
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.profiles.config import ProfilesConfig

PRODUCTS = pd.DataFrame(
    [
        {
            "product_id": f"P{i}",
            "title": f"trail shoe {i}",
            "brand": "Acme" if i % 2 else "Zed",
            "category": "shoes > trail",
            "price": 50.0 + i,
            "rating": 4.0,
            "popularity": float(i),
        }
        for i in range(1, 7)
    ]
)


class FakeEngine:
    """BM25 stand-in: every query returns P1..P6 with falling scores."""

    def search_scored(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        return [[(f"P{i}", 10.0 - i) for i in range(1, 7)][:k] for _ in queries]


def _event(user: str, pid: str, typ: str, ts: str, rid: str | None, query: str | None = "trail shoes") -> dict:
    return {"user_id": user, "product_id": pid, "type": typ, "timestamp": ts, "request_id": rid, "query": query}


def _frame(rows: list[dict]) -> pd.DataFrame:
    from fuserec_os.behaviour.events import make_event_id, normalize_event

    docs = []
    for r in rows:
        doc, reasons = normalize_event(r)
        assert doc is not None, reasons
        doc["event_id"] = make_event_id(doc)
        docs.append(doc)
    return events_frame(docs)


def _searches_over_days() -> pd.DataFrame:
    rows = []
    for day in range(1, 21):
        user = f"u{day % 4}"
        rows.append(_event(user, f"P{1 + day % 6}", "click", f"2024-04-{day:02d}T12:00:00Z", f"r{day}"))
        if day % 3 == 0:
            rows.append(_event(user, f"P{1 + day % 6}", "purchase", f"2024-04-{day:02d}T12:05:00Z", f"r{day}"))
    return _frame(rows)


def test_graded_labels_take_the_strongest_event() -> None:
    ev = _frame(
        [
            _event("u", "P1", "click", "2024-04-01T10:00:00Z", "r1"),
            _event("u", "P1", "purchase", "2024-04-01T10:05:00Z", "r1"),
            _event("u", "P2", "add_to_cart", "2024-04-01T10:06:00Z", "r1"),
            _event("u", "P3", "view", "2024-04-01T10:07:00Z", "r1"),
        ]
    )
    assert graded_labels(ev) == {("r1", "P1"): 3, ("r1", "P2"): 2}


def test_searches_from_events_without_impressions() -> None:
    ev = _frame([_event("u", "P1", "click", "2024-04-01T10:00:00Z", "r1", "Trail  Shoes")])
    s = logged_searches(ev)
    assert list(s["request_id"]) == ["r1"] and s.loc[0, "query_norm"] == "trail shoes"
    assert s.loc[0, "timestamp"] < ev.loc[0, "timestamp"] and s.loc[0, "shown"] is None


def test_split_by_time_and_bad_cut() -> None:
    ts = pd.Series(pd.date_range("2024-04-01", periods=100, freq="h", tz="UTC"))
    valid_from, test_from = SplitSpec(test_fraction=0.2, valid_fraction=0.25).cuts(ts)
    assert test_from == ts.iloc[80] and valid_from == ts.iloc[60]
    cut = pd.Timestamp("2024-04-03T00:00:00Z")
    assert SplitSpec(test_from=cut).cuts(ts)[1] == cut
    with pytest.raises(ConfigError, match="leaves no training"):
        SplitSpec(test_from=pd.Timestamp("2030-01-01T00:00:00Z")).cuts(ts)


def test_dataset_rows_labels_and_splits() -> None:
    ds = build_dataset(
        _searches_over_days(),
        ProductCatalog.from_frame(PRODUCTS),
        FeatureSet.from_config(None),
        ProfilesConfig(),
        FakeEngine(),
        products=PRODUCTS,
        split=SplitSpec(test_fraction=0.25, valid_fraction=0.2),
    )
    assert ds.X.shape == (20 * 6, len(ds.names)) and ds.X.dtype == np.float32
    assert set(ds.searches["split"]) == {"train", "valid", "test"}
    # train strictly before valid strictly before test
    by = ds.searches.groupby("split")["timestamp"]
    assert by.max()["train"] < by.min()["valid"] and by.max()["valid"] < by.min()["test"]
    assert (ds.labels == 3).sum() == 6 and (ds.labels == 1).sum() == 14
    _, _, gte = ds.subset("test")
    assert len(np.unique(gte)) == (ds.searches["split"] == "test").sum() and gte.min() == 0


def test_no_leakage_the_label_event_never_reaches_the_features() -> None:
    """A search whose click is the user's only event must see no profile and no query history."""
    rows = [_event("other", "P2", "click", "2024-04-01T09:00:00Z", "r0", "boots")]
    rows += [_event("solo", "P3", "click", "2024-04-05T12:00:00Z", "r1")]
    rows += [_event(f"w{i}", "P1", "click", f"2024-04-{6 + i:02d}T12:00:00Z", f"x{i}") for i in range(6)]
    ev = _frame(rows)
    ds = build_dataset(
        ev,
        ProductCatalog.from_frame(PRODUCTS),
        FeatureSet.from_config(None),
        ProfilesConfig(),
        FakeEngine(),
        products=PRODUCTS,
        split=SplitSpec(test_fraction=0.3, valid_fraction=0.3),
    )
    sid = int(ds.searches.index[ds.searches["request_id"] == "r1"][0])
    rows_r1 = ds.groups == ds.searches.loc[sid, "search_id"]
    col = ds.names.index
    assert (ds.X[rows_r1, col("user_history__missing")] == 1).all()  # no profile: its only event is the label
    assert (ds.X[rows_r1, col("q_click_rate__missing")] == 1).all()  # the query was never seen before
    # a later search of the same query on another day does see the earlier engagement
    later = ds.groups == ds.searches.loc[ds.searches["request_id"] == "x5", "search_id"].iloc[0]
    assert (ds.X[later, col("q_click_rate__missing")] == 0).all()


def test_searches_are_derived_from_events_without_request_ids() -> None:
    from fuserec_os.learn.dataset import DERIVED_PREFIX, derive_request_ids

    ev = _frame(
        [
            _event("u1", "P1", "click", "2024-05-01T10:00:00Z", None, "Trail  Shoes"),
            _event("u1", "P2", "click", "2024-05-01T10:20:00Z", None, "trail shoes"),  # same search: 20 min later
            _event("u1", "P3", "click", "2024-05-01T11:00:00Z", None, "trail shoes"),  # 40 min gap: a new search
            _event("u2", "P1", "click", "2024-05-01T10:05:00Z", None, "trail shoes"),  # another user
            _event("u1", "P4", "click", "2024-05-01T10:10:00Z", None, "boots"),  # another query
            _event("u1", "P5", "view", "2024-05-01T10:12:00Z", None, None),  # no query: no search
            _event("u3", "P6", "click", "2024-05-01T10:00:00Z", "r9"),  # has its own id: kept
        ]
    )
    out, derived = derive_request_ids(ev, pd.Timedelta(minutes=30))
    assert derived == 4
    rid = {(u, p): r for u, p, r in zip(out["user_id"], out["product_id"], out["request_id"], strict=True)}
    assert rid["u1", "P1"] == rid["u1", "P2"] != rid["u1", "P3"]
    assert rid["u2", "P1"] != rid["u1", "P1"] and rid["u1", "P4"] not in (rid["u1", "P1"], rid["u1", "P3"])
    rid = {p: r for (_, p), r in rid.items() if p != "P1"}
    u1 = out[(out["user_id"] == "u1") & out["query_norm"].eq("trail shoes")]
    assert u1["request_id"].nunique() == 2 and u1["request_id"].iloc[0] == u1["request_id"].iloc[1]
    assert rid["P6"] == "r9" and rid["P5"] is None
    assert all(str(r).startswith(DERIVED_PREFIX) for p, r in rid.items() if p not in ("P5", "P6"))
    again, _ = derive_request_ids(ev, pd.Timedelta(minutes=30))
    assert again["request_id"].tolist() == out["request_id"].tolist()  # stable ids
    assert derive_request_ids(ev, pd.Timedelta(minutes=5))[1] == 5  # a smaller gap splits more

    searches = logged_searches(out)
    first = searches[searches["request_id"] == u1["request_id"].iloc[0]].iloc[0]
    assert first["timestamp"] == pd.Timestamp("2024-05-01T09:59:59.999Z")  # just before the first click
    assert graded_labels(out)[(u1["request_id"].iloc[0], "P2")] == 1


def test_a_derived_search_uses_query_time_for_its_time_and_gap() -> None:
    from fuserec_os.learn.dataset import derive_request_ids

    rows = [
        {**_event("u1", "P1", "click", "2024-05-01T10:50:00Z", None), "query_time": "2024-05-01T10:00:00Z"},
        {**_event("u1", "P2", "click", "2024-05-01T11:30:00Z", None), "query_time": "2024-05-01T10:00:00Z"},
    ]
    out, derived = derive_request_ids(_frame(rows), pd.Timedelta(minutes=30))
    assert derived == 1  # the clicks are 40 min apart, but came from one search at 10:00
    [search] = logged_searches(out).to_dict("records")
    assert search["timestamp"] == pd.Timestamp("2024-05-01T10:00:00Z")


def test_a_log_without_request_ids_builds_a_dataset() -> None:
    rows = []
    for day in range(1, 21):
        user = f"u{day % 4}"
        ts = f"2024-05-{day:02d}T10:00:00Z"
        rows.append(_event(user, f"P{1 + day % 6}", "click", ts, None))
    ds = build_dataset(
        _frame(rows),
        ProductCatalog.from_frame(PRODUCTS),
        FeatureSet.from_config(None),
        ProfilesConfig(),
        FakeEngine(),
        split=SplitSpec(test_fraction=0.25, valid_fraction=0.2),
    )
    assert len(ds.searches) == 20 and ds.labels.sum() == 20
    with pytest.raises(ConfigError, match="no logged searches with engagement"):
        build_dataset(
            _frame(rows),
            ProductCatalog.from_frame(PRODUCTS),
            FeatureSet.from_config(None),
            ProfilesConfig(),
            FakeEngine(),
            derived_search_gap=None,
        )


def _log_with_a_label(label: str) -> pd.DataFrame:
    """Four users over 12 days; on day 6 user u2 clicks ``label`` after 'trail shoes' (a training search)."""
    rows = []
    for day in range(1, 13):
        user = f"u{day % 4}"
        pid = label if day == 6 else f"P{1 + (day * 7 + day // 3) % 6}"
        rows.append(_event(user, pid, "click", f"2024-04-{day:02d}T12:00:00Z", f"r{day}"))
        rows.append(_event(user, f"P{1 + day % 6}", "view", f"2024-04-{day:02d}T09:00:00Z", None, None))
    return _frame(rows)


def test_a_training_searchs_own_engagement_never_shapes_its_latent_features() -> None:
    """Product vectors fitted on events that include a search's own click would make latent_dot encode its label
    (the leak that made heavy users gain least); point-in-time vectors make its features independent of it."""
    built = {}
    for label in ("P3", "P5"):
        built[label] = build_dataset(
            _log_with_a_label(label),
            ProductCatalog.from_frame(PRODUCTS),
            FeatureSet.from_config(None),
            ProfilesConfig(),
            FakeEngine(),
            products=PRODUCTS,
            split=SplitSpec(test_fraction=0.25, valid_fraction=0.2),
        )
    a, b = built["P3"], built["P5"]
    sid = a.searches.loc[a.searches["request_id"] == "r6", "search_id"].iloc[0]
    assert a.searches.loc[sid, "split"] == "train"
    rows = a.groups == sid
    cols = [a.names.index("latent_dot"), a.names.index("latent_dot__missing")]
    assert (a.X[rows, cols[1]] == 0).any()  # the user has a latent vector by then: the check means something
    np.testing.assert_array_equal(a.X[rows][:, cols], b.X[rows][:, cols])
    # a later search does read vectors fitted on the day-6 click, so the two logs differ there
    later = a.groups == a.searches.loc[a.searches["request_id"] == "r8", "search_id"].iloc[0]
    assert not np.array_equal(a.X[later][:, cols], b.X[later][:, cols])


def _impressions(rows: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    from fuserec_os.behaviour.search_log import impressions_frame

    docs = [
        {"request_id": rid, "user_id": user, "timestamp": ts, "query": "trail shoes", "product_ids": shown}
        for rid, user, ts, shown in rows
    ]
    return impressions_frame(docs)


def test_searches_that_showed_nothing_add_no_candidates_and_change_nothing() -> None:
    """Issue 12: the search log holds the searches that found nothing (an empty page). Training takes no
    candidate from them (even one an event names by request id) and its features are those of the log without
    them: they add no examination to the query statistics or the item signals."""
    ev = _searches_over_days()
    ev = pd.concat([ev, _frame([_event("u1", "P1", "click", "2024-04-05T11:30:00Z", "e5")])], ignore_index=True)
    shown = [(f"r{d}", f"u{d % 4}", f"2024-04-{d:02d}T11:59:00Z", [f"P{i}" for i in range(1, 7)]) for d in range(1, 21)]
    empty = [(f"e{d}", f"u{d % 4}", f"2024-04-{d:02d}T11:00:00Z", []) for d in range(1, 21)]
    built = {}
    for label, imps in (("with", _impressions(shown + empty)), ("without", _impressions(shown))):
        built[label] = build_dataset(
            ev,
            ProductCatalog.from_frame(PRODUCTS),
            FeatureSet.from_config(None),
            ProfilesConfig(),
            FakeEngine(),
            impressions=imps,
            products=PRODUCTS,
            split=SplitSpec(test_fraction=0.25, valid_fraction=0.2),
        )
    a, b = built["with"], built["without"]
    assert list(a.searches["request_id"]) == list(b.searches["request_id"]) == [f"r{d}" for d in range(1, 21)]
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.groups, b.groups)
    assert (a.names, a.cuts) == (b.names, b.cuts)
    logged = logged_searches(ev, _impressions(shown + empty))
    assert len(logged) == 40 and sum(len(s) == 0 for s in logged["shown"]) == 20  # logged, with nothing shown
