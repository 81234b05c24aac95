"""The retrieval tuner's arithmetic: per-search recall@100, reciprocal rank and NDCG@10, their means, the grid and
the winner rule. The engine runs are tests/integration/test_search_tune.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fuserec_os.learn.retrieval_tune import (
    BOOST_SETS,
    Candidate,
    ConfigResult,
    JudgedSearch,
    candidate_configs,
    evaluate_ranked,
    judged_searches,
    pick_winner,
    search_metrics,
)
from fuserec_os.search.request import MULTI_MATCH_TYPES, SearchConfig


def test_one_engaged_product() -> None:
    m = search_metrics(["a", "b", "c"], {"b": 1})
    assert m["recall@100"] == 1.0
    assert m["mrr"] == 0.5
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_several_engaged_products_count_from_the_first_and_all_for_recall() -> None:
    ranked = [f"p{i}" for i in range(150)]
    grades = {"p3": 1, "p5": 3, "p120": 2, "zz": 1}  # p120 is past the top 100, zz never retrieved
    m = search_metrics(ranked, grades)
    assert m["recall@100"] == 2 / 4
    assert m["mrr"] == 1 / 4  # p3 at rank 4 is the first engaged product
    dcg = (2**1 - 1) / math.log2(5) + (2**3 - 1) / math.log2(7)
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate([3, 2, 1, 1]))  # missed products count
    assert m["ndcg@10"] == pytest.approx(dcg / idcg)


def test_nothing_retrieved_scores_zero_and_a_repeated_id_counts_once() -> None:
    assert search_metrics([], {"a": 2}) == {"recall@100": 0.0, "mrr": 0.0, "ndcg@10": 0.0}
    assert search_metrics(["x", "y"], {"a": 1}) == {"recall@100": 0.0, "mrr": 0.0, "ndcg@10": 0.0}
    assert search_metrics(["x", "x", "a"], {"a": 1})["mrr"] == 0.5
    perfect = search_metrics(["a", "b"], {"a": 3, "b": 1})
    assert perfect == {"recall@100": 1.0, "mrr": 1.0, "ndcg@10": pytest.approx(1.0)}


def test_the_cut_offs_hold() -> None:
    ranked = [f"p{i}" for i in range(120)]
    assert search_metrics(ranked, {"p100": 1}) == {"recall@100": 0.0, "mrr": 0.0, "ndcg@10": 0.0}
    at_100 = search_metrics(ranked, {"p99": 1})
    assert at_100["recall@100"] == 1.0 and at_100["mrr"] == 1 / 100 and at_100["ndcg@10"] == 0.0


def test_a_search_without_engagement_is_refused() -> None:
    with pytest.raises(ValueError, match="engaged"):
        search_metrics(["a"], {})
    with pytest.raises(ValueError, match="engaged"):
        search_metrics(["a"], {"a": 0})


def test_the_mean_is_per_search_and_counts_the_missed() -> None:
    searches = [
        JudgedSearch("r1", "red shoes", {"a": 1}),
        JudgedSearch("r2", "red shoes", {"b": 1}),
        JudgedSearch("r3", "socks", {"s": 1}),
        JudgedSearch("r4", "never run", {"s": 1}),  # a query with no results
    ]
    m = evaluate_ranked(searches, {"red shoes": ["a", "b"], "socks": ["x", "y"]})
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert m["recall@100"] == pytest.approx(2 / 4)
    assert m["missed"] == 2
    with pytest.raises(ValueError):
        evaluate_ranked([], {})


def test_judged_searches_read_the_log_as_training_does() -> None:
    t = pd.Timestamp("2026-03-01T10:00:00Z")
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e6"],
            "user_id": ["u1", "u1", "u1", "u2", "u2", "u3"],
            "product_id": ["a", "b", "b", "c", "d", "e"],
            "type": ["click", "purchase", "click", "view", "click", "view"],
            "timestamp": [t, t + pd.Timedelta(minutes=1), t, t, t + pd.Timedelta(minutes=5), t],
            "request_id": ["r1", "r1", None, None, None, "r9"],
            "query": ["red shoes", "red shoes", "socks", "hats", "hats", "boots"],
        }
    )
    events["query_norm"] = events["query"]
    found = judged_searches(events, None, pd.Timedelta(minutes=30))
    by_query = {s.query: dict(s.grades) for s in found}
    # r1 from its request id; u2's 'hats' derived from events without one; views and r9 (only a view) judge nothing
    assert by_query == {"red shoes": {"a": 1, "b": 3}, "socks": {"b": 1}, "hats": {"d": 1}}
    assert len(judged_searches(events, None, None)) == 1  # no derived searches without a gap


def test_the_grid_starts_with_the_config_in_force_and_never_repeats_it() -> None:
    current = SearchConfig(tie_breaker=0.1, max_size=20)
    grid = candidate_configs(current)
    assert grid[0].boosts == "current" and grid[0].config == current and grid[0].in_force
    assert not any(c.in_force for c in grid[1:])
    assert len(grid) == len(BOOST_SETS) * len(MULTI_MATCH_TYPES)  # the default boosts are the current ones
    assert {c.name for c in grid if c.boosts == "current"} == {
        "current best_fields",
        "current most_fields",
        "current cross_fields",
    }
    assert len({(c.config.fields, c.config.multi_match_type) for c in grid}) == len(grid)
    assert all(c.config.tie_breaker == 0.1 and c.config.max_size == 20 for c in grid)  # only fields and type vary
    other = candidate_configs(SearchConfig(fields=(("title", 9.0),)))
    assert len(other) == (1 + len(BOOST_SETS)) * len(MULTI_MATCH_TYPES)


def result(boosts: str, kind: str, mrr: float, recall: float, ndcg: float = 0.5) -> ConfigResult:
    cand = Candidate(boosts, SearchConfig(multi_match_type=kind), in_force=boosts == "current")
    return ConfigResult(cand, {"mrr": mrr, "recall@100": recall, "ndcg@10": ndcg, "missed": 0.0}, 0.1)


def test_the_winner_has_the_best_mrr_then_recall_and_a_tie_keeps_the_config_in_force() -> None:
    rs = [result("current", "best_fields", 0.30, 0.8), result("equal", "most_fields", 0.40, 0.7)]
    assert pick_winner(rs, 100, 50)[0] == 1
    rs = [result("current", "best_fields", 0.40, 0.8), result("equal", "most_fields", 0.40, 0.9)]
    assert pick_winner(rs, 100, 50)[0] == 1  # recall breaks the MRR tie
    rs = [result("equal", "most_fields", 0.40, 0.9), result("current", "best_fields", 0.40, 0.9)]
    winner, why = pick_winner(rs, 100, 50)
    assert winner == 1 and "nothing to change" in why
    winner, why = pick_winner(rs, 49, 50)
    assert winner is None and "49" in why and "--min-searches" in why
