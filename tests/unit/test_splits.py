"""Choosing test searches (time, per user, a test file) and holding their events out of the statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from fuserec_os.errors import ConfigError
from fuserec_os.features.spec import FeatureSet
from fuserec_os.learn.dataset import Dataset, build_dataset
from fuserec_os.learn.splits import SplitSpec, assign_splits, held_out_events
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.profiles.config import ProfilesConfig

from .test_dataset import PRODUCTS, FakeEngine, _event, _frame


def _searches(rows: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """request_id, user_id, timestamp per search, sorted by time as logged_searches sorts them."""
    frame = pd.DataFrame(rows, columns=["request_id", "user_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.sort_values("timestamp", ignore_index=True)


USERS = _searches(
    [(f"a{i}", "a", f"2024-04-0{i + 1}T10:00:00Z") for i in range(4)]
    + [(f"b{i}", "b", f"2024-04-0{i + 1}T11:00:00Z") for i in range(3)]
    + [("c0", "c", "2024-04-02T12:00:00Z")]
)


def _split_of(searches: pd.DataFrame, split: np.ndarray) -> dict[str, str]:
    return dict(zip(searches["request_id"], split, strict=True))


def test_user_split_tests_each_users_last_searches() -> None:
    split, (valid_from, first_test) = assign_splits(USERS, SplitSpec(kind="user", holdout=1, valid_fraction=0.2))
    got = _split_of(USERS, split)
    assert {r for r, s in got.items() if s == "test"} == {"a3", "b2", "c0"}  # c has one search: tested on it
    assert first_test == pd.Timestamp("2024-04-02T12:00:00Z")
    # validation is the latest share of the searches not tested: the latest of the five left
    assert {r for r, s in got.items() if s == "valid"} == {"a2"} and valid_from == pd.Timestamp("2024-04-03T10:00Z")
    two = _split_of(USERS, assign_splits(USERS, SplitSpec(kind="user", holdout=2))[0])
    assert {r for r, s in two.items() if s == "test"} == {"a2", "a3", "b1", "b2", "c0"}


def test_user_split_that_tests_everything_says_so() -> None:
    with pytest.raises(ConfigError, match=r"every search is a test search.*lower --holdout"):
        assign_splits(USERS, SplitSpec(kind="user", holdout=4))


def test_split_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--holdout 0 must be a whole number >= 1"):
        SplitSpec(kind="user", holdout=0)
    with pytest.raises(ConfigError, match=r"'users' is not a split.*time, user"):
        SplitSpec(kind="users")
    with pytest.raises(ConfigError, match="--test-from is a time split's cut"):
        SplitSpec(kind="user", test_from=pd.Timestamp("2024-04-02T00:00:00Z"))


def test_test_file_searches_are_the_test_searches() -> None:
    split, (_, first_test) = assign_splits(USERS, SplitSpec(), test_requests={"b1", "a0"})
    got = _split_of(USERS, split)
    assert {r for r, s in got.items() if s == "test"} == {"a0", "b1"}
    assert first_test == pd.Timestamp("2024-04-01T10:00:00Z")
    with pytest.raises(ConfigError, match="--test-file: none of its searches has engagement"):
        assign_splits(USERS, SplitSpec(), test_requests={"zz"})


def test_held_out_events_time_user_and_file() -> None:
    events = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c", "c"],
            "timestamp": pd.to_datetime(
                ["2024-04-03T09:00", "2024-04-04T10:30", "2024-04-03T12:00", "2024-04-01T00:00", "2024-04-02T13:00"],
                utc=True,
            ),
        }
    )
    cut = pd.Timestamp("2024-04-03T10:00:00Z")
    time_split = USERS.assign(split=np.where(USERS["timestamp"] >= cut, "test", "train"))
    held = held_out_events(events["user_id"], events["timestamp"], time_split, SplitSpec(), cut)
    assert held.tolist() == [False, True, True, False, False]
    user_split = USERS.assign(split=assign_splits(USERS, SplitSpec(kind="user"))[0])
    held = held_out_events(events["user_id"], events["timestamp"], user_split, SplitSpec(kind="user"), cut)
    # a from their last search (04-04 10:00) on; b from 04-03 11:00 on; c from 04-02 12:00 on
    assert held.tolist() == [False, True, True, False, True]
    # a test file: its own events, and everything from its first test search (the cut) on
    in_file = np.array([False, False, False, False, True])
    held = held_out_events(events["user_id"], events["timestamp"], time_split, SplitSpec(), cut, in_file)
    assert held.tolist() == [False, True, True, False, True]


# --------------------------------------------------------------------------------------------------------------
# the statistics a test search reads


def _q_clicks(ds: Dataset, request_id: str, product: str) -> float:
    """The (exact query, product) click count a search's row saw (q_log_clicks = log1p(clicks))."""
    sid = ds.searches.loc[ds.searches["request_id"] == request_id, "search_id"].iloc[0]
    rows = np.flatnonzero(ds.groups == sid)
    pids = ds.candidates["product_id"].to_numpy()[rows]
    row = rows[list(pids).index(product)]
    if ds.X[row, ds.names.index("q_log_clicks__missing")] > 0.5:
        return float("nan")
    return round(float(np.expm1(ds.X[row, ds.names.index("q_log_clicks")])), 3)


def _build(events: pd.DataFrame, split: SplitSpec, test_events: pd.DataFrame | None = None) -> Dataset:
    return build_dataset(
        events,
        ProductCatalog.from_frame(PRODUCTS),
        FeatureSet.from_config(None),
        ProfilesConfig(),
        FakeEngine(),
        products=PRODUCTS,
        split=split,
        test_events=test_events,
    )


def _daily_clicks_on_p2(days: int = 10) -> pd.DataFrame:
    """One search a day by a different user, each clicking P2 after 'trail shoes'."""
    return _frame([_event(f"u{d}", "P2", "click", f"2024-04-{d:02d}T12:00:00Z", f"r{d}") for d in range(1, days + 1)])


def test_frozen_statistics_stop_counting_at_the_cut() -> None:
    cut = pd.Timestamp("2024-04-07T00:00:00Z")  # searches r7..r10 are tested
    frozen = _build(_daily_clicks_on_p2(), SplitSpec(test_from=cut, valid_fraction=0.2))
    live = _build(_daily_clicks_on_p2(), SplitSpec(test_from=cut, valid_fraction=0.2, freeze_stats=False))
    split = dict(zip(frozen.searches["request_id"], frozen.searches["split"], strict=True))
    assert [split[f"r{d}"] for d in (4, 5, 6, 7)] == ["train", "valid", "valid", "test"]
    # a training search sees every earlier click either way
    assert _q_clicks(frozen, "r4", "P2") == _q_clicks(live, "r4", "P2") == 3
    # validation rehearses the test: its searches read the statistics as of the validation start (r5)
    assert [_q_clicks(frozen, f"r{d}", "P2") for d in (5, 6)] == [4, 4]
    assert [_q_clicks(live, f"r{d}", "P2") for d in (5, 6)] == [4, 5]
    # a test search sees the clicks before the cut only (6), never the test period's earlier ones
    assert [_q_clicks(frozen, f"r{d}", "P2") for d in (7, 8, 10)] == [6, 6, 6]
    assert [_q_clicks(live, f"r{d}", "P2") for d in (7, 8, 10)] == [6, 7, 9]


def test_user_split_freezes_the_statistics_of_held_out_events_only() -> None:
    # u1 searches on days 1-3 and comes back on day 11; seven other users search once each (days 4-10)
    rows = [_event("u1", "P2", "click", f"2024-04-{d:02d}T12:00:00Z", f"r{d}") for d in (1, 2, 3, 11)]
    rows += [_event(f"u{d}", "P2", "click", f"2024-04-{d:02d}T12:00:00Z", f"r{d}") for d in range(4, 11)]
    ds = _build(_frame(rows), SplitSpec(kind="user", holdout=1, valid_fraction=0.3))
    split = dict(zip(ds.searches["request_id"], ds.searches["split"], strict=True))
    assert split["r11"] == "test" and {split[f"r{d}"] for d in range(4, 11)} == {"test"}
    assert (split["r1"], split["r2"], split["r3"]) == ("train", "train", "valid")
    # the returning user's test search counts u1's own history, none of the other users' held-out clicks
    assert _q_clicks(ds, "r11", "P2") == 3
    live = _build(_frame(rows), SplitSpec(kind="user", holdout=1, valid_fraction=0.3, freeze_stats=False))
    assert _q_clicks(live, "r11", "P2") == 10
    assert (ds.searches.loc[ds.searches["request_id"] == "r11", "user_segment"] == "light").all()


def test_test_file_events_are_tested_and_never_counted_in_frozen_statistics() -> None:
    stored = _daily_clicks_on_p2(8)
    held = _frame(
        [
            _event("u1", "P3", "click", "2024-04-09T12:00:00Z", "t1"),  # a returning user
            _event("new", "P2", "click", "2024-04-10T12:00:00Z", "t2"),
        ]
    )
    ds = _build(stored, SplitSpec(valid_fraction=0.25), test_events=held)
    split = dict(zip(ds.searches["request_id"], ds.searches["split"], strict=True))
    assert {r for r, s in split.items() if s == "test"} == {"t1", "t2"}
    assert {split[f"r{d}"] for d in range(1, 9)} == {"train", "valid"}
    assert _q_clicks(ds, "t2", "P2") == 8 and _q_clicks(ds, "t2", "P3") == 0  # t1's click on P3 is held out
    live = _build(stored, SplitSpec(valid_fraction=0.25, freeze_stats=False), test_events=held)
    assert _q_clicks(live, "t2", "P3") == 1
    # the returning user's profile holds their stored history (profiles are never frozen)
    segments = dict(zip(ds.searches["request_id"], ds.searches["user_segment"], strict=True))
    assert segments["t1"] == "light" and segments["t2"] == "none"


def test_a_search_that_began_in_the_stored_log_is_not_a_test_search() -> None:
    stored = _daily_clicks_on_p2(8)
    held = _frame(
        [
            _event("u8", "P2", "purchase", "2024-04-08T12:30:00Z", "r8"),  # the purchase after a stored click
            _event("new", "P2", "click", "2024-04-10T12:00:00Z", "t2"),
        ]
    )
    ds = _build(stored, SplitSpec(valid_fraction=0.25), test_events=held)
    split = dict(zip(ds.searches["request_id"], ds.searches["split"], strict=True))
    assert split["t2"] == "test" and split["r8"] == "valid"
    r8 = ds.groups == ds.searches.loc[ds.searches["request_id"] == "r8", "search_id"].iloc[0]
    assert ds.labels[r8].max() == 3  # its label is the purchase the file holds
