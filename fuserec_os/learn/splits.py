"""Which logged searches train, validate and test a model, and which events the test period holds out.

Three ways to choose the test searches:

* ``time`` (default): the searches from a cut on (``--test-from TIME``, or the latest ``--test-fraction``); what a
  model trained today meets tomorrow, with new users and unseen queries included.
* ``user``: each user's last ``holdout`` searches with engagement (``--split user --holdout N``); a user with at
  most N such searches is tested on all of them (a shopper who came once is tested as a new shopper, as in a
  time split). It asks "how well does the model rank a returning shopper's next searches", with as much
  history per test search as the log has, and tests every user rather than the latest days' ones.
* a test file (``model evaluate --test-file FILE``): the searches of events that were never ingested (a search
  that began in the stored log stays there, with the file's later events of it as its labels).

Validation is always the latest ``valid_fraction`` (by time) of the searches that are not tested.

**Held-out events.** The events a test search is about must not teach anything that the model or the features
read as "known at training time". :func:`held_out_events` marks them: in a time split every event from the cut
on; in a user split every event of a tested user from their first tested search on; with a test file the file's
events and everything from its first test search on. Product vectors never see them.

**Frozen statistics** (``freeze_stats``, the default; ``--live-stats`` turns it off): the query statistics and the
behavioural candidates never count held-out events either, so in a time split every test search reads the
statistics as they were at the cut: what a model deployed at the cut meets when the statistics are rebuilt by
the profile job, and a lower bound for serving with live updates. Live statistics keep counting the test
period's earlier engagement, as serving with live updates does, but then the test period's own clicks rank the
test period, which flatters every method that reads the statistics (the demo shop: engine order stays 0.433,
the MLP 0.513 live vs 0.503 frozen, MRR 0.504 vs 0.491; docs/personalization.md). Profiles are never frozen: a
user's earlier events are their history, online and offline.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fuserec_os.errors import ConfigError

__all__ = ["SPLIT_KINDS", "SplitSpec", "assign_splits", "held_out_events"]

SPLIT_KINDS: tuple[str, ...] = ("time", "user")


@dataclass(frozen=True)
class SplitSpec:
    """Where train ends and test begins (see the module docstring).

    ``kind`` ``time``: a time (``test_from``) or the last ``test_fraction`` of searches; ``user``: each user's
    last ``holdout`` searches. Validation is the last ``valid_fraction`` of the searches not tested (by time),
    so the model is tuned on data later than it trained on. ``test_until`` drops the searches after it (to
    rebuild a version's test searches exactly, however many were logged since). ``freeze_stats``: the query
    statistics never count held-out events (see :func:`held_out_events`).
    """

    test_from: pd.Timestamp | None = None
    test_fraction: float = 0.25
    valid_fraction: float = 0.15
    test_until: pd.Timestamp | None = None
    kind: str = "time"
    holdout: int = 1
    freeze_stats: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise ConfigError(f"split {self.kind!r} is not a split (expected one of {', '.join(SPLIT_KINDS)})")
        if self.kind == "user" and self.test_from is not None:
            raise ConfigError("--test-from is a time split's cut; a user split tests each user's last searches")
        if isinstance(self.holdout, bool) or not isinstance(self.holdout, int) or self.holdout < 1:
            raise ConfigError(f"--holdout {self.holdout!r} must be a whole number >= 1 (searches per user)")
        if self.test_from is not None and self.test_until is not None and self.test_until < self.test_from:
            raise ConfigError(
                f"test until {self.test_until.isoformat()} is before test from {self.test_from.isoformat()}"
            )
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test fraction {self.test_fraction} must be between 0 and 1 (e.g. 0.25)")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"validation fraction {self.valid_fraction} must be between 0 and 1 (e.g. 0.15)")

    def cuts(self, timestamps: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(valid_from, test_from) of a time split for searches at ``timestamps``."""
        ordered = _ordered(timestamps)
        if self.test_from is not None:
            test_from = pd.Timestamp(self.test_from)
            if test_from <= ordered.iloc[0] or test_from > ordered.iloc[-1]:
                raise ConfigError(
                    f"--test-from {test_from.isoformat()} leaves no training or no test searches (searches run "
                    f"from {ordered.iloc[0].isoformat()} to {ordered.iloc[-1].isoformat()})"
                )
        else:
            test_from = ordered.iloc[min(len(ordered) - 1, int(len(ordered) * (1 - self.test_fraction)))]
        before = ordered[ordered < test_from]
        if before.empty:
            raise ConfigError("no searches before the test period: move the cut later")
        return self._valid_from(before), test_from

    def _valid_from(self, kept: pd.Series) -> pd.Timestamp:
        """The first validation time: the latest ``valid_fraction`` of the (sorted) searches not tested."""
        return pd.Timestamp(kept.iloc[min(len(kept) - 1, int(len(kept) * (1 - self.valid_fraction)))])

    def describe(self) -> dict[str, object]:
        """What a version records about its split, so its test searches can be rebuilt the same way."""
        out: dict[str, object] = {"kind": self.kind, "freeze_stats": self.freeze_stats}
        if self.kind == "user":
            out["holdout"] = self.holdout
        out["valid_fraction"] = self.valid_fraction
        return out


def _ordered(timestamps: pd.Series) -> pd.Series:
    ordered = timestamps.sort_values(ignore_index=True)
    if ordered.empty:
        raise ConfigError(
            "no logged searches with engagement: no click, add_to_cart or purchase after a query (ingest "
            "events with a query, and a request_id or the search log; without them, searches are derived "
            "from each user's events after the same query)"
        )
    return ordered


def assign_splits(
    searches: pd.DataFrame, spec: SplitSpec, test_requests: Collection[str] | None = None
) -> tuple[np.ndarray, tuple[pd.Timestamp, pd.Timestamp]]:
    """``train`` / ``valid`` / ``test`` per search (rows of ``searches``: request_id, user_id, timestamp) and
    (valid_from, test_from): the first validation time and the cut (the first test search for a user split
    or a test file).

    ``test_requests``: the request ids of a test file's searches; they, and only they, are tested.
    """
    ts = pd.to_datetime(searches["timestamp"], utc=True)
    _ordered(ts)
    if test_requests is not None:
        test = searches["request_id"].astype(str).isin(set(test_requests)).to_numpy()
        if not test.any():
            raise ConfigError(
                "--test-file: none of its searches has engagement (a click, add_to_cart or purchase after a "
                "query), so there is nothing to test"
            )
    elif spec.kind == "user":
        order = pd.DataFrame({"user": searches["user_id"].astype(str), "ts": ts, "rid": searches["request_id"]})
        order = order.sort_values(["user", "ts", "rid"], kind="stable")
        from_last = order.groupby("user", sort=False).cumcount(ascending=False)
        test = np.zeros(len(searches), dtype=bool)
        test[order.index.to_numpy()[(from_last < spec.holdout).to_numpy()]] = True
    else:
        valid_from, test_from = spec.cuts(ts)
        split = np.where(ts >= test_from, "test", np.where(ts >= valid_from, "valid", "train"))
        return split, (valid_from, test_from)
    kept = ts[~test].sort_values(ignore_index=True)
    if kept.empty:
        raise ConfigError(
            f"every search is a test search (each user's last {spec.holdout}): lower --holdout or log more searches"
            if test_requests is None
            else "--test-file: the stored events hold no search with engagement to train or validate on"
        )
    valid_from = spec._valid_from(kept)
    split = np.where(test, "test", np.where(ts >= valid_from, "valid", "train"))
    return split, (valid_from, pd.Timestamp(ts[test].min()))


def held_out_events(
    users: pd.Series,
    timestamps: pd.Series,
    searches: pd.DataFrame,
    spec: SplitSpec,
    cut: pd.Timestamp,
    in_test_file: np.ndarray | None = None,
) -> np.ndarray:
    """Per event (or impression: ``users`` and ``timestamps`` of each), whether the test period holds it out.

    ``searches`` carries ``user_id``, ``timestamp`` and ``split``; ``in_test_file`` marks the rows that belong to
    a test file's searches. Time split: every row from ``cut`` (the test period's start) on; test file: its rows,
    and every row from ``cut`` (its first test search) on; user split: a tested user's rows from their first
    tested search on.
    """
    ts = pd.to_datetime(timestamps, utc=True)
    if in_test_file is not None:
        return np.asarray(in_test_file, dtype=bool) | np.asarray(ts >= pd.Timestamp(cut))
    test = searches[searches["split"] == "test"]
    if test.empty:
        return np.zeros(len(ts), dtype=bool)
    if spec.kind == "time":
        return np.asarray(ts >= pd.Timestamp(cut))
    first = pd.to_datetime(test["timestamp"], utc=True).groupby(test["user_id"].astype(str)).min()
    since = users.astype(str).map(first)
    return np.asarray(since.notna() & (ts >= since))
