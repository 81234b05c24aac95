"""QueryStats: counting, additivity (full build == incremental halves == merge), documents, views, position bias."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fuserec_os.profiles.query_stats import (
    QueryStats,
    default_position_weights,
    estimate_position_weights,
    mark_counted_requests,
)

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
HOUR = pd.Timedelta(hours=1)


def events(rows: Sequence[tuple[Any, str, str, Any, Any]]) -> pd.DataFrame:
    """An events frame from (query, type, product_id, request_id, position), one hour apart from T0."""
    n = len(rows)
    ts = pd.Series([T0 + i * HOUR for i in range(n)], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "event_id": pd.Series([f"e{i}" for i in range(n)], dtype="str"),
            "user_id": pd.Series(["u1"] * n, dtype="str"),
            "session_id": pd.Series([None] * n, dtype="object"),
            "type": pd.Series([r[1] for r in rows], dtype="str"),
            "product_id": pd.Series([r[2] for r in rows], dtype="str"),
            "timestamp": ts,
            "query": pd.Series([r[0] for r in rows], dtype="object"),
            "query_norm": pd.Series([None if r[0] is None else " ".join(r[0].lower().split()) for r in rows]),
            "position": pd.Series([r[4] for r in rows], dtype="object").astype("Int64"),
            "price": pd.Series([np.nan] * n, dtype="float64"),
            "quantity": pd.Series([None] * n, dtype="object").astype("Int64"),
            "request_id": pd.Series([r[3] for r in rows], dtype="object"),
            "ingested_at": ts,
        }
    )


def impressions(rows: Sequence[tuple[str, str, list[str]]]) -> pd.DataFrame:
    n = len(rows)
    return pd.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "user_id": ["u1"] * n,
            "timestamp": [T0 + i * HOUR for i in range(n)],
            "query": [r[1] for r in rows],
            "product_ids": [r[2] for r in rows],
        }
    )


EVENTS = events(
    [
        ("Red Shoes", "click", "P1", "r1", 1),
        ("red shoes", "add_to_cart", "P1", "r1", None),
        ("red  shoes", "purchase", "P1", "r1", None),
        ("red shoes", "click", "P2", "r2", 2),
        (None, "view", "P3", None, None),  # no query: ignored
        ("blue shoe", "click", "P2", "r3", 1),
        ("blue shoe", "view", "P3", "r3", None),  # a view counts the request, not an engagement
        ("red shoes", "click", "P1", "r4", 1),
        ("red dress", "click", "P4", None, 3),  # no request id: one search of its own
    ]
)
IMPRESSIONS = impressions(
    [
        ("r1", "red shoes", ["P1", "P2", "P3"]),
        ("r2", "red shoes", ["P3", "P2"]),
        ("r3", "blue shoe", ["P2"]),
        ("r4", "red shoes", ["P1"]),
        ("r5", "red dress", ["P9", "P8", "P4"]),
    ]
)


def docs_of(stats: QueryStats) -> list[dict[str, Any]]:
    return list(stats.to_docs())


def assert_same_docs(a: QueryStats, b: QueryStats) -> None:
    """Equal documents; examinations compared with a float tolerance (sums in a different order)."""
    da, db = docs_of(a), docs_of(b)
    assert [d["id"] for d in da] == [d["id"] for d in db]
    for x, y in zip(da, db, strict=True):
        assert {k: v for k, v in x.items() if k != "examinations"} == {
            k: v for k, v in y.items() if k != "examinations"
        }
        np.testing.assert_allclose(x["examinations"], y["examinations"], rtol=1e-12, atol=1e-12)


def test_counts_per_query_and_term() -> None:
    stats = QueryStats().add_events(EVENTS)
    assert stats.queries == ["blue shoe", "red dress", "red shoes"]
    assert stats.counts("red shoes", "P1") == {"clicks": 2, "carts": 1, "purchases": 1, "examinations": 0}
    assert stats.counts("Red  Shoes", "P2")["clicks"] == 1
    docs = {d["id"]: d for d in stats.to_docs()}
    assert set(docs) == {"q:blue shoe", "q:red dress", "q:red shoes", "t:blu", "t:red", "t:sho", "t:dress"}  # stems
    sho = docs["t:sho"]  # "red shoes" and "blue shoe" meet on the stem
    assert sho["product_ids"] == ["P1", "P2"] and sho["clicks"] == [2, 2] and sho["purchases"] == [1, 0]
    assert docs["q:red shoes"]["requests"] == 3  # r1, r2, r4
    assert docs["q:blue shoe"]["requests"] == 1 and docs["q:blue shoe"]["product_ids"] == ["P2"]
    assert docs["q:red dress"]["requests"] == 1  # the event without a request id
    assert docs["t:red"]["requests"] == 4 and docs["t:sho"]["requests"] == 4


def test_impressions_add_position_weighted_examinations() -> None:
    stats = QueryStats().add_impressions(IMPRESSIONS)
    w = default_position_weights(3)
    assert w[0] == 1.0 and w[1] == pytest.approx(1 / math.log2(3))
    got = {p: stats.counts("red shoes", p)["examinations"] for p in ("P1", "P2", "P3")}
    assert got == pytest.approx({"P1": 2.0, "P2": 2 * w[1], "P3": w[2] + 1.0})
    docs = {d["id"]: d for d in stats.to_docs()}
    assert docs["q:red shoes"]["searches"] == 3 and docs["t:red"]["searches"] == 4
    custom = QueryStats().add_impressions(IMPRESSIONS, position_weights=np.array([1.0, 0.5]))
    assert custom.counts("red dress", "P4")["examinations"] == 0.5  # rank 3 beyond the array: last weight


def test_full_build_equals_incremental_halves_and_merge() -> None:
    full = QueryStats().add_events(EVENTS).add_impressions(IMPRESSIONS)
    inc = QueryStats()
    inc.add_events(EVENTS.iloc[:4]).add_impressions(IMPRESSIONS.iloc[:2])
    inc.add_events(EVENTS.iloc[4:]).add_impressions(IMPRESSIONS.iloc[2:])
    assert_same_docs(full, inc)
    a = QueryStats().add_events(EVENTS.iloc[:4]).add_impressions(IMPRESSIONS.iloc[:2])
    b = QueryStats().add_events(EVENTS.iloc[4:]).add_impressions(IMPRESSIONS.iloc[2:])
    assert_same_docs(full, a.merge(b))
    for q in ("red shoes", "shoes blue"):
        va, vb = full.view(q), inc.view(q)
        for pids in (["P1", "P2", "P3", "P9"],):
            np.testing.assert_allclose(va.term_rates(pids), vb.term_rates(pids), rtol=1e-12)  # type: ignore[arg-type]


def test_docs_round_trip_through_json() -> None:
    stats = QueryStats().add_events(EVENTS).add_impressions(IMPRESSIONS)
    docs = json.loads(json.dumps(docs_of(stats)))
    back = QueryStats.from_docs(docs)
    assert docs_of(back) == docs_of(stats)
    pids = ["P1", "P2", "P3", "P4"]
    for q in ("red shoes", "red dress", "blue shoes"):
        x, y = stats.view(q), back.view(q)
        assert (x.exact is None) == (y.exact is None)
        if x.exact is not None:
            np.testing.assert_array_equal(x.exact_rates(pids)[0], y.exact_rates(pids)[0])  # type: ignore[index]
        np.testing.assert_array_equal(x.term_rates(pids), y.term_rates(pids))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must start with"):
        QueryStats.from_docs([{"id": "x:red"}])


def test_view_of_unknown_query_is_empty() -> None:
    stats = QueryStats().add_events(EVENTS)
    view = stats.view("garden hose")
    assert view.is_empty and view.exact is None and view.terms == ()
    assert view.exact_rates(["P1"]) is None and view.term_rates(["P1"]) is None
    assert QueryStats().view("red shoes").is_empty
    assert QueryStats().view("").is_empty
    partial = stats.view("red hose")  # only the term "red" was seen
    assert partial.exact is None and [t.key for t in partial.terms] == ["red"]


def test_view_is_a_snapshot_and_copy_is_independent() -> None:
    stats = QueryStats().add_events(EVENTS.iloc[:4])
    view = stats.view("red shoes")
    before = view.exact_rates(["P1", "P2"])
    clone = stats.copy()
    stats.add_events(EVENTS.iloc[4:])
    stats.add_events(events([("red shoes", "click", "P7", "r9", 1)]))
    after = view.exact_rates(["P1", "P2", "P7"])
    assert before is not None and after is not None
    np.testing.assert_array_equal(before[1], after[1][:2])  # the clicks the view saw, unchanged
    assert after[1][2] == 0  # P7 arrived after the snapshot
    assert stats.counts("red shoes", "P1")["clicks"] == 2 and clone.counts("red shoes", "P1")["clicks"] == 1
    assert clone.counts("red shoes", "P7")["clicks"] == 0


def test_smoothed_rate_formula() -> None:
    stats = QueryStats(smoothing=4.0).add_events(EVENTS)
    # query table: red shoes 3 requests x 2 products, blue shoe 1 x 1, red dress 1 x 1 -> exposure 8; clicks 5
    prior = np.array([5, 1, 1]) / 8
    rates, clicks = stats.view("red shoes").exact_rates(["P1", "P2", "P3"])  # type: ignore[misc]
    expected = (np.array([[2, 1, 1], [1, 0, 0], [0, 0, 0]]) + 4.0 * prior) / (3 + 4.0)
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert clicks.tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="smoothing"):
        QueryStats(smoothing=0)


def test_estimate_position_weights() -> None:
    n = 100
    imps = impressions([(f"r{i}", "q", ["A", "B", "C"]) for i in range(n)])
    rows: list[tuple[Any, str, str, Any, Any]] = []
    for rank, clicks in ((1, 50), (2, 20), (3, 25)):  # rank 3 above rank 2: noise the fit must smooth away
        rows += [("q", "click", "X", f"r{i}", rank) for i in range(clicks)]
    rows.append(("q", "click", "X", "not-logged", 2))  # a request without an impression is not counted
    w = estimate_position_weights(events(rows), imps)
    np.testing.assert_allclose(w, [1.0, 0.45, 0.45])  # ranks 2-3 pooled: (20 + 25) / 200 / 0.5
    none_at_top = events([("q", "click", "X", "r1", 2)])
    np.testing.assert_allclose(estimate_position_weights(none_at_top, imps), default_position_weights(3))


def test_point_in_time_adds_with_counted_requests_equal_one_add() -> None:
    """Training adds a few events per search: the plain-Python small path equals the pandas path, and with
    ``mark_counted_requests`` a request whose events fall into several adds still counts once."""
    rng = np.random.default_rng(3)
    queries = ["Running Shoes", "coffee maker", "shoes", None]
    rows = [
        (
            queries[int(rng.integers(len(queries)))],
            str(rng.choice(["view", "click", "add_to_cart", "purchase"])),
            f"P{int(rng.integers(30))}",
            None if rng.random() < 0.2 else f"r{int(rng.integers(60))}",
            None,
        )
        for _ in range(600)
    ]
    ev = mark_counted_requests(events(rows))
    whole = QueryStats().add_events(events(rows))  # one add (> the small-batch size: the pandas path)
    pieces = QueryStats()
    i = 0
    while i < len(ev):
        step = int(rng.integers(1, 8))
        pieces.add_events(ev.iloc[i : i + step])
        i += step
    assert_same_docs(whole, pieces)
    assert whole.prior_sums()["q"][1] == pieces.prior_sums()["q"][1]
    naive = QueryStats()  # without the column, a request straddling adds counts once per add
    for i in range(0, len(ev), 3):
        naive.add_events(events(rows).iloc[i : i + 3])
    assert sum(d["requests"] for d in docs_of(naive)) > sum(d["requests"] for d in docs_of(whole))


def test_small_batches_of_impressions_and_running_sums_equal_one_add() -> None:
    """The small-batch impressions path and the running prior sums (training adds a little per search) agree
    with one pandas add and a full sum, examinations up to float rounding."""
    rng = np.random.default_rng(5)
    queries = ["Running Shoes", "coffee maker", "shoes", "red running shoes"]
    imp = impressions(
        [
            (f"r{i}", queries[int(rng.integers(len(queries)))], [f"P{int(x)}" for x in rng.integers(0, 40, 10)])
            for i in range(400)
        ]
    )
    ev = mark_counted_requests(events([(q, "click", f"P{i % 40}", f"r{i}", 1) for i, q in enumerate(queries * 80)]))
    whole = QueryStats().add_events(ev).add_impressions(imp)
    running = QueryStats().track_sums()
    for i in range(0, 400, 3):
        running.add_impressions(imp.iloc[i : i + 3])
        running.add_events(ev.iloc[i * 320 // 400 : (i + 3) * 320 // 400])
        running.priors()
    a, b = docs_of(whole), docs_of(running)
    assert [d["id"] for d in a] == [d["id"] for d in b]
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k != "examinations"} == {
            k: v for k, v in y.items() if k != "examinations"
        }
        assert x["examinations"] == pytest.approx(y["examinations"], rel=1e-12)
    for kind in ("q", "t"):
        assert running.prior_sums()[kind][0] == pytest.approx(whole.prior_sums()[kind][0], rel=1e-12)
        assert running.prior_sums()[kind][1] == pytest.approx(whole.prior_sums()[kind][1], rel=1e-12)


def test_searches_that_showed_nothing_add_nothing() -> None:
    """Issue 12: an empty page is in the search log; it examines no product and is not a search with
    examinations (so a key whose logged searches all found nothing keeps its exposure on requests)."""
    empty = impressions([("e1", "red shoes", []), ("e2", "garden hose", []), ("e3", "red shoes", [])])
    mixed = pd.concat([IMPRESSIONS, empty], ignore_index=True)
    assert_same_docs(
        QueryStats().add_events(EVENTS).add_impressions(mixed),
        QueryStats().add_events(EVENTS).add_impressions(IMPRESSIONS),
    )
    big = pd.concat([IMPRESSIONS] * 60 + [empty] * 60, ignore_index=True)  # past the small batch: the pandas path
    assert_same_docs(QueryStats().add_impressions(big), QueryStats().add_impressions(pd.concat([IMPRESSIONS] * 60)))
    only_empty = QueryStats().add_events(EVENTS).add_impressions(empty)
    assert_same_docs(only_empty, QueryStats().add_events(EVENTS))
    assert "garden hose" not in only_empty.queries
    assert len(list(QueryStats().add_impressions(empty).to_docs())) == 0
    n = 100
    imps = impressions([(f"r{i}", "q", ["A", "B", "C"]) for i in range(n)] + [(f"x{i}", "q", []) for i in range(50)])
    clicks = events(
        [("q", "click", "X", f"r{i}", 1) for i in range(40)] + [("q", "click", "X", f"r{i}", 2) for i in range(20)]
    )
    np.testing.assert_allclose(
        estimate_position_weights(clicks, imps), estimate_position_weights(clicks, imps.iloc[:n])
    )
    np.testing.assert_allclose(estimate_position_weights(clicks, imps.iloc[n:]), default_position_weights(1))
