"""Attribution of clicks, carts and purchases to the experiment's searches, and what each search led to."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from fuserec_os.behaviour.events import events_frame
from fuserec_os.behaviour.search_log import impressions_frame
from fuserec_os.experiments.attribution import attribute, search_outcomes, team_clicks
from fuserec_os.experiments.interleave import credit

T0 = pd.Timestamp("2024-05-01T10:00:00Z")
WINDOW = pd.Timedelta(hours=24)


def at(minutes: float) -> str:
    return (T0 + pd.Timedelta(minutes=minutes)).isoformat()


def search(rid: str, user: str, minutes: float, shown: list[str], variant: str = "treatment", **extra: Any) -> dict:
    return {"request_id": rid, "user_id": user, "timestamp": at(minutes), "product_ids": shown,
            "experiment": "e", "variant": variant, **extra}  # fmt: skip


def event(eid: str, user: str, kind: str, product: str, minutes: float, **extra: Any) -> dict:
    return {"event_id": eid, "user_id": user, "type": kind, "product_id": product, "timestamp": at(minutes), **extra}


def run(searches: list[dict], events: list[dict]) -> tuple[pd.DataFrame, dict[str, int]]:
    result = attribute(impressions_frame(searches), events_frame(events), WINDOW)
    return result.events.set_index("event_id"), result.unattributed


def test_a_purchase_after_a_click_on_a_shown_product_goes_to_that_search_and_its_variant() -> None:
    searches = [search("r1", "u1", 0, ["P1", "P2", "P3"], "treatment"), search("r2", "u2", 0, ["P1"], "control")]
    events = [
        event("c1", "u1", "click", "P2", 1, request_id="r1"),
        event("p1", "u1", "purchase", "P2", 30, price=20.0),  # no request id: the user, the product, the time
    ]
    got, _ = run(searches, events)
    assert got.loc["c1", "request_id"] == "r1" and got.loc["c1", "how"] == "request_id"
    assert got.loc["p1", "request_id"] == "r1" and got.loc["p1", "how"] == "window"
    assert got.loc["p1", "variant"] == "treatment"


def test_an_event_outside_the_window_is_not_attributed() -> None:
    searches = [search("r1", "u1", 0, ["P1"])]
    events = [
        event("late", "u1", "purchase", "P1", 24 * 60 + 1),  # a day and a minute later
        event("late-rid", "u1", "click", "P1", 25 * 60, request_id="r1"),  # the request id does not stretch it
        event("in", "u1", "purchase", "P1", 24 * 60),  # exactly at the edge: still in
    ]
    got, unattributed = run(searches, events)
    assert list(got.index) == ["in"]
    assert unattributed["outside_window"] == 2


def test_the_latest_search_that_showed_the_product_gets_it() -> None:
    searches = [
        search("early", "u1", 0, ["P1", "P2"], "control"),
        search("later", "u1", 60, ["P1"], "control"),
        search("after", "u1", 200, ["P1"], "control"),  # after the purchase: never credited with it
        search("other", "u1", 90, ["P9"], "control"),  # later but did not show P2
    ]
    events = [event("buy1", "u1", "purchase", "P1", 120), event("buy2", "u1", "purchase", "P2", 120)]
    got, _ = run(searches, events)
    assert got.loc["buy1", "request_id"] == "later" and got.loc["buy2", "request_id"] == "early"


def test_a_request_id_outside_the_experiment_is_not_reattributed_by_user() -> None:
    """It names a search, just another one (served outside the experiment): the fallback must not steal it."""
    searches = [search("r1", "u1", 0, ["P1"])]
    events = [event("c", "u1", "click", "P1", 5, request_id="not-logged")]
    got, unattributed = run(searches, events)
    assert got.empty and unattributed["request_id_not_in_experiment"] == 1


def test_reasons_for_the_rest_and_views_are_ignored() -> None:
    searches = [search("r1", "u1", 0, ["P1"])]
    events = [
        event("not-shown", "u1", "purchase", "P7", 10),
        event("stranger", "u9", "purchase", "P1", 10),
        event("before", "u1", "click", "P1", -5, request_id="r1"),  # 5 minutes before its own search
        event("skew", "u1", "click", "P1", -0.5, request_id="r1"),  # 30 s before: clock skew, tolerated
        event("before-fallback", "u1", "purchase", "P1", -10),  # before any search that showed it
        event("view", "u1", "view", "P1", 1),
    ]
    got, unattributed = run(searches, events)
    assert list(got.index) == ["skew"]
    assert unattributed == {
        "request_id_not_in_experiment": 0,
        "outside_window": 0,
        "before_search": 1,
        "not_shown": 2,
        "user_not_in_experiment": 1,
    }
    result = attribute(impressions_frame(searches), events_frame(events), WINDOW)
    assert result.ignored_types == {"view": 1}
    summary = result.as_dict()
    assert summary["attributed"] == 1 and summary["by_request_id"] == 1 and summary["ignored_types"] == {"view": 1}


def test_no_searches_or_no_events() -> None:
    got, unattributed = run([], [event("p", "u1", "purchase", "P1", 0)])
    assert got.empty and unattributed["user_not_in_experiment"] == 1
    got, _ = run([search("r1", "u1", 0, ["P1"])], [])
    assert got.empty


def test_search_outcomes_funnel_and_revenue() -> None:
    searches = [
        search("r1", "u1", 0, ["P1", "P2"]),
        search("r2", "u1", 100, ["P3"]),
        search("r3", "u2", 0, ["P1"]),
        search("r4", "u3", 0, ["P5"]),
    ]
    events = [
        event("c1", "u1", "click", "P1", 1, request_id="r1"),
        event("a1", "u1", "add_to_cart", "P1", 2, request_id="r1"),
        event("b1", "u1", "purchase", "P1", 3, request_id="r1", price=10.0, quantity=3),
        event("b2", "u1", "purchase", "P2", 4, price=5.0),  # no quantity: 1
        event("a3", "u2", "add_to_cart", "P1", 1),  # a cart without a logged click still counts as a click
        event("b4", "u3", "purchase", "P5", 1, request_id="r4"),  # no price
    ]
    imps = impressions_frame(searches)
    out = search_outcomes(imps, attribute(imps, events_frame(events), WINDOW)).set_index("request_id")
    assert out.loc["r1", ["clicked", "carted", "purchased"]].tolist() == [True, True, True]
    assert out.loc["r1", "purchases"] == 2 and out.loc["r1", "revenue"] == pytest.approx(35.0)
    assert out.loc["r2", ["clicked", "carted", "purchased", "purchases"]].tolist() == [False, False, False, 0]
    assert out.loc["r3", ["clicked", "carted", "purchased"]].tolist() == [True, True, False]
    assert out.loc["r4", "purchased"] and out.loc["r4", "revenue"] == 0.0 and out.loc["r4", "unpriced"] == 1


def test_team_clicks_agree_with_credit_on_hand_built_lists() -> None:
    shown = ["a1", "b1", "a2", "b2", "n1"]
    teams = ["control", "treatment", "control", "treatment", ""]
    searches = [
        {**search("r1", "u1", 0, shown), "variant": None, "teams": teams},
        {**search("r2", "u2", 0, shown), "variant": None, "teams": teams},
        {**search("r3", "u3", 0, shown), "variant": None, "teams": teams},
    ]
    clicks = {"r1": ["b1", "b2", "a1"], "r2": ["a1", "a1", "n1"], "r3": []}
    events = [
        event(f"{rid}-{i}", f"u{rid[1]}", "click", pid, 1 + i, request_id=rid)
        for rid, pids in clicks.items()
        for i, pid in enumerate(pids)
    ]
    imps = impressions_frame(searches)
    got = team_clicks(imps, attribute(imps, events_frame(events), WINDOW), "control", "treatment")
    got = got.set_index("request_id")
    for rid, pids in clicks.items():
        expected = credit(shown, [t or None for t in teams], pids)
        assert (got.loc[rid, "control_clicks"], got.loc[rid, "treatment_clicks"]) == (
            expected.control,
            expected.treatment,
        )
    assert (got.loc["r1", "control_clicks"], got.loc["r1", "treatment_clicks"]) == (1, 2)


def test_no_search_showed_any_of_the_products() -> None:
    got, unattributed = run([search("r1", "u1", 0, ["P1"])], [event("p", "u1", "purchase", "P2", 5)])
    assert got.empty and unattributed["not_shown"] == 1
