"""Which logged search each click, add to cart and purchase belongs to, and what each search led to.

The rule (also in docs/experiments.md), applied to the events of the funnel (click, add_to_cart, purchase;
views are not attributed and are counted as ignored):

1. **By request id.** An event carrying a ``request_id`` belongs to that search, if it is one of the
   experiment's searches and the event happened within the attribution window after it (a minute before it is
   tolerated: the shop's clock and the proxy's differ). An event whose request id is not one of the
   experiment's searches is *not* attributed by the fallback below: it names a search, just another one (one
   served outside the experiment, or by another system).
2. **Else by user, product and time.** An event without a request id belongs to the same user's latest search
   of the experiment, at or before the event and within the window, that *showed the product*. Only shown
   products count because only they can be credited to a ranking: a purchase of something the user found by
   browsing says nothing about the search ranking (it still counts nowhere, rather than somewhere arbitrary).
3. Anything else is not attributed, counted by reason: ``request_id_not_in_experiment``, ``outside_window``,
   ``before_search`` (request id matched but the event is older than the search), ``not_shown`` (the user
   searched under the experiment but no search before the event showed that product), ``user_not_in_experiment``.

Then :func:`search_outcomes` folds the attributed events into one row per search: whether it led to a click
(any click, add to cart or purchase: a funnel never has more carts than clicks), an add to cart, a purchase,
its revenue (price x quantity of its purchases; quantity 1 when absent), and in interleave mode each team's
distinct clicked products (the same credit as :func:`fuserec_os.experiments.interleave.credit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "CLOCK_SKEW",
    "FUNNEL",
    "REASONS",
    "Attribution",
    "attribute",
    "search_outcomes",
    "team_clicks",
]

FUNNEL: tuple[str, ...] = ("click", "add_to_cart", "purchase")
#: How much earlier than its search an event carrying the search's request id may be stamped (clock skew).
CLOCK_SKEW = pd.Timedelta(minutes=1)
REASONS: tuple[str, ...] = (
    "request_id_not_in_experiment",
    "outside_window",
    "before_search",
    "not_shown",
    "user_not_in_experiment",
)
ATTRIBUTED_COLUMNS = (
    "event_id",
    "request_id",
    "user_id",
    "variant",
    "type",
    "product_id",
    "timestamp",
    "price",
    "quantity",
    "how",
)


@dataclass
class Attribution:
    """Attributed events (``events``: :data:`ATTRIBUTED_COLUMNS`; ``request_id``/``user_id``/``variant`` are the
    search's, ``how`` is ``request_id`` or ``window``), and the rest counted by reason."""

    events: pd.DataFrame
    unattributed: dict[str, int] = field(default_factory=dict)
    ignored_types: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        how = self.events["how"].value_counts()
        return {
            "attributed": len(self.events),
            "by_request_id": int(how.get("request_id", 0)),
            "by_user_window": int(how.get("window", 0)),
            "attributed_by_type": {t: int((self.events["type"] == t).sum()) for t in FUNNEL},
            "unattributed": dict(self.unattributed),
            "ignored_types": dict(self.ignored_types),
        }


def attribute(impressions: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> Attribution:
    """Attribute ``events`` (an :func:`~fuserec_os.behaviour.events.events_frame`) to ``impressions`` (the
    experiment's searches: request_id, user_id, timestamp, product_ids, variant) by the rule in the module doc."""
    funnel = events["type"].isin(FUNNEL)
    ignored = events.loc[~funnel, "type"].value_counts()
    ev = events.loc[funnel, ["event_id", "user_id", "type", "product_id", "timestamp", "price", "quantity"]].copy()
    ev["request_id"] = events.loc[funnel, "request_id"].astype("object")
    searches = impressions[["request_id", "user_id", "timestamp", "variant"]].rename(
        columns={"timestamp": "search_time", "user_id": "search_user"}
    )
    reasons = dict.fromkeys(REASONS, 0)

    # 1. by request id
    has_rid = ev["request_id"].notna()
    by_rid = ev[has_rid].merge(searches, on="request_id", how="left")
    known = by_rid["search_time"].notna()
    reasons["request_id_not_in_experiment"] = int((~known).sum())
    by_rid = by_rid[known]
    delta = by_rid["timestamp"] - by_rid["search_time"]
    early = delta < -CLOCK_SKEW
    late = delta > window
    reasons["before_search"] += int(early.sum())
    reasons["outside_window"] += int(late.sum())
    by_rid = by_rid[~early & ~late].assign(user_id=lambda f: f["search_user"], how="request_id")

    # 2. by user, product and time: the latest search at or before the event that showed the product
    rest = ev[~has_rid].drop(columns=["request_id"])
    matched = _latest_showing(impressions, rest)
    found = matched["search_time"].notna()
    in_experiment = matched["user_id"].isin(set(impressions["user_id"]))
    reasons["not_shown"] = int((~found & in_experiment).sum())
    reasons["user_not_in_experiment"] = int((~found & ~in_experiment).sum())
    matched = matched[found]
    late = (matched["timestamp"] - matched["search_time"]) > window
    reasons["outside_window"] += int(late.sum())
    by_window = matched[~late].assign(how="window")

    out = pd.concat([by_rid[list(ATTRIBUTED_COLUMNS)], by_window[list(ATTRIBUTED_COLUMNS)]], ignore_index=True)
    out = out.sort_values(["timestamp", "event_id"], kind="mergesort").reset_index(drop=True)
    return Attribution(out, reasons, {str(k): int(v) for k, v in ignored.items()})


def _shown(impressions: pd.DataFrame, *, teams: bool = False) -> pd.DataFrame:
    """One row per (search, shown product): request_id, user_id, product_id, search_time, variant, and with
    ``teams`` the team that drafted it (None: no team; the search log stores that as empty text)."""
    columns = ["request_id", "user_id", "timestamp", "variant", "product_ids"]
    frame = impressions[columns + (["teams"] if teams else [])]
    frame = frame[frame["product_ids"].map(len) > 0]
    exploded = frame.explode(["product_ids", "teams"] if teams else "product_ids", ignore_index=True)
    out = exploded.rename(columns={"product_ids": "product_id", "timestamp": "search_time"})
    out["product_id"] = out["product_id"].astype("str")
    if teams:
        out["team"] = out.pop("teams").replace("", None)
    return out


def _latest_showing(impressions: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``events`` with the request_id, search_time and variant of the user's latest search at or before each
    event that showed its product (NaT/None when there is none)."""
    nat = pd.Series(pd.NaT, index=events.index, dtype="datetime64[ns, UTC]")
    nothing = events.assign(request_id=None, search_time=nat, variant=None)
    if events.empty or impressions.empty:
        return nothing
    keys = events[["user_id", "product_id"]].drop_duplicates()
    shown = _shown(impressions).merge(keys, on=["user_id", "product_id"], how="inner")
    if shown.empty:
        return nothing
    shown = shown.sort_values("search_time", kind="mergesort")
    left = events.sort_values("timestamp", kind="mergesort")
    merged = pd.merge_asof(
        left,
        shown,
        left_on="timestamp",
        right_on="search_time",
        by=["user_id", "product_id"],
        direction="backward",
        allow_exact_matches=True,
    )
    return merged


def search_outcomes(impressions: pd.DataFrame, attribution: Attribution) -> pd.DataFrame:
    """One row per search: request_id, user_id, variant, timestamp, and what it led to: ``clicked``,
    ``carted``, ``purchased`` (bools), ``purchases``, ``revenue`` (of priced purchases), ``unpriced`` (purchases
    without a price). Interleave credit per team is :func:`team_clicks`."""
    base = impressions[["request_id", "user_id", "variant", "timestamp"]].copy()
    ev = attribution.events
    flags = pd.DataFrame(
        {
            "request_id": ev["request_id"],
            "clicked": True,
            "carted": ev["type"].isin(("add_to_cart", "purchase")),
            "purchased": ev["type"] == "purchase",
            "purchases": (ev["type"] == "purchase").astype("int64"),
            "revenue": np.where(
                (ev["type"] == "purchase") & ev["price"].notna(),
                ev["price"].fillna(0.0) * ev["quantity"].astype("float64").fillna(1.0),
                0.0,
            ),
            "unpriced": ((ev["type"] == "purchase") & ev["price"].isna()).astype("int64"),
        }
    )
    per_search = flags.groupby("request_id", sort=False).agg(
        clicked=("clicked", "any"),
        carted=("carted", "any"),
        purchased=("purchased", "any"),
        purchases=("purchases", "sum"),
        revenue=("revenue", "sum"),
        unpriced=("unpriced", "sum"),
    )
    out = base.merge(per_search, left_on="request_id", right_index=True, how="left")
    for name in ("clicked", "carted", "purchased"):
        out[name] = out[name].astype("boolean").fillna(False).astype("bool")
    for name in ("purchases", "unpriced"):
        out[name] = out[name].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].astype("float64").fillna(0.0)
    return out.reset_index(drop=True)


def team_clicks(impressions: pd.DataFrame, attribution: Attribution, control: str, treatment: str) -> pd.DataFrame:
    """Interleave mode: per search (request_id, user_id), the distinct clicked products each team drafted
    (``control_clicks``, ``treatment_clicks``); clicks on products not shown or shown without a team credit
    nobody, as in :func:`fuserec_os.experiments.interleave.credit`."""
    base = impressions[["request_id", "user_id"]].copy()
    shown = _shown(impressions, teams=True)[["request_id", "product_id", "team"]]
    engaged = attribution.events[["request_id", "product_id"]].drop_duplicates()
    credited = shown.merge(engaged, on=["request_id", "product_id"], how="inner")
    counts = pd.crosstab(credited["request_id"], credited["team"]) if len(credited) else pd.DataFrame()
    for team, column in ((control, "control_clicks"), (treatment, "treatment_clicks")):
        per = counts[team] if team in counts else pd.Series(dtype="int64")
        base[column] = base["request_id"].map(per).fillna(0).astype("int64")
    return base
