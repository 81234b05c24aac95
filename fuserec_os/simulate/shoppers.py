"""A seeded shopper simulator whose behaviour log carries the signals a personalised reranker must learn.

Real click logs are private, so tests, the demo and the benchmarks use this. Each user has hidden tastes
(:class:`UserLatent`): sparse affinities over categories and brands, a preferred style, a price band and
price sensitivity, quality sensitivity, a heavy-tailed activity level, and for a share of users a late
arrival with no history. :func:`utility` is the true value of a product to a user for a query intent;
clicks, carts and purchases are drawn from it, and later evaluations use it as the oracle ranking.

A session: the user arrives (Poisson by activity, evening-heavy hours), types 1-4 queries
(:mod:`fuserec_os.simulate.queries`: canonical, informal, broad, specific, misspelt), sees the shop's page
(:class:`~fuserec_os.simulate.retrieval.ShopRanker`: BM25 blended with merchandising), examines it under a
position-based model (examination probability ``0.98 * rank ** -0.7``), clicks what looks relevant to query
and taste, sometimes adds to cart, and buys at checkout; some sessions are browsing only (product views in
preferred categories, no query, no position).

Event conventions (decided here, relied upon downstream):

- a result click *is* the visit to the product page: no separate ``view`` is logged for it. ``view`` events
  are product pages reached without a search (browsing), with ``query``/``position``/``request_id`` None;
- ``add_to_cart`` follows a click or view of the same product in the same session; a ``purchase`` follows its
  ``add_to_cart`` at checkout (end of session). Cart and purchase events of a search-driven product carry the
  ``query`` and ``request_id`` of that search (attribution), never a ``position``;
- every event row has all of :data:`EVENT_FIELDS` (None where not applicable); ``quantity`` is set on
  purchases only; ``timestamp`` is ISO 8601 UTC with milliseconds and strictly increasing within a session;
- ``impressions`` record, for every search request, the products shown and their order (rank = index + 1).

Everything is driven by ``random.Random`` instances derived from ``seed`` (never the global RNG): the same
seed and the same engine results give identical output.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.behaviour.events import CLICK_LOG_FIELDS as EVENT_FIELDS
from fuserec_os.simulate.catalog import (
    BRANDS,
    CATEGORY_TREE,
    DOC_KEYS,
    PRICE_BANDS,
    STYLES,
    GeneratedProduct,
    ProductLatent,
)
from fuserec_os.simulate.queries import QueryIntent, QueryVocabulary
from fuserec_os.simulate.retrieval import Retriever, ShopRanker

__all__ = [
    "ACTIVITY_TIERS",
    "DEFAULT_START",
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "SimulationResult",
    "UserLatent",
    "load_catalog",
    "preference_lift",
    "simulate",
    "utility",
    "write_simulation",
]

DEFAULT_START = datetime(2024, 4, 1, tzinfo=timezone.utc)
ACTIVITY_TIERS: tuple[tuple[str, float], ...] = (("light", 0.0), ("medium", 0.25), ("heavy", 1.0))
"""Tier by expected sessions per day: light below 0.25, medium below 1, heavy from 1."""

# --- behaviour constants (the knobs; documented in one place) ------------------------------------------
_EXAM_ALPHA = 0.7  # examination probability 0.98 * rank ** -alpha
_CLICK_SLOPE, _CLICK_AT = 1.4, 4.6  # P(click | examined) = sigmoid(slope * (u - at))
_CART_SLOPE, _CART_AT = 1.3, 6.3
_BUY_SLOPE, _BUY_AT = 1.2, 4.4
_VIEW_CART_AT = 6.8  # browsing converts less than searching
_STOP_AFTER_CLICK = 0.45
_BROWSE_SESSION_SHARE = 0.25
_HOUR_WEIGHTS = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.4, 2.0, 2.2, 2.2, 2.3,
    2.6, 2.5, 2.3, 2.3, 2.5, 2.8, 3.3, 3.8, 4.0, 3.6, 2.7, 1.7,
)  # fmt: skip
_BAND_INDEX = {b: i for i, b in enumerate(PRICE_BANDS)}
_EXAM = [0.0] + [0.98 * r**-_EXAM_ALPHA for r in range(1, 1001)]


@dataclass(frozen=True)
class UserLatent:
    """A simulated user's hidden tastes; written only to the truth file, never into events.

    Affinities are sparse (only the categories and brands the user cares about) and scaled so the strongest
    is 1.0; a negative brand affinity is a brand the user avoids. ``activity`` is the expected number of
    sessions per day (log-normal: many light users, a few heavy ones); ``arrival`` is the period start for
    existing users and the first visit of a new user (``is_new``), who has no history before it.
    """

    user_id: str
    top_affinity: dict[str, float]
    leaf_affinity: dict[str, float]
    brand_affinity: dict[str, float]
    style: str
    price_band: str
    price_sensitivity: float
    quality_sensitivity: float
    activity: float
    tier: str
    is_new: bool
    arrival: str

    def favourite_brands(self) -> list[str]:
        return [b for b, a in sorted(self.brand_affinity.items(), key=lambda kv: -kv[1]) if a > 0]


@dataclass(frozen=True, slots=True)
class _Item:
    """The per-product fields utility needs, extracted once."""

    pid: str
    leaf: str
    top: str
    brand: str
    style: str
    tier: int
    band: int
    appeal: float
    rating: float
    price: float
    facets: frozenset[str]


def _item(p: GeneratedProduct) -> _Item:
    d = p.doc
    category = str(d.get("category") or "")
    attrs = d.get("attributes") or {}
    facets = {str(t).lower() for t in d.get("tags") or ()} | {str(v).lower() for v in attrs.values()}
    rating = d.get("rating")
    return _Item(
        pid=str(d["product_id"]),
        leaf=category,
        top=category.split(" > ", 1)[0],
        brand=str(d.get("brand") or ""),
        style=p.latent.style,
        tier=int(p.latent.quality_tier),
        band=_BAND_INDEX.get(p.latent.price_band, 1),
        appeal=float(p.latent.appeal),
        rating=float(rating) if rating is not None else 4.0,
        price=float(d.get("price") or 0.0),
        facets=frozenset(facets),
    )


def _utility(user: UserLatent, it: _Item, intent: QueryIntent | None) -> float:
    if intent is None:
        u = 3.0
    else:
        if it.leaf == intent.leaf:
            u = 3.0
        elif it.top == intent.top:
            u = 0.6
        else:
            u = 0.0
        if intent.brand is not None:
            u += 0.6 if it.brand == intent.brand else -0.5
        if intent.modifier is not None:
            u += 0.5 if intent.modifier in it.facets else -0.3
    u += user.leaf_affinity.get(it.leaf, 0.0) + 0.5 * user.top_affinity.get(it.top, 0.0)
    u += user.brand_affinity.get(it.brand, 0.0)
    if it.style == user.style:
        u += 0.6
    u -= 0.8 * user.price_sensitivity * abs(it.band - _BAND_INDEX[user.price_band])
    u += user.quality_sensitivity * (0.4 * (it.tier - 2) + 0.5 * (it.rating - 4.0))
    u += 1.2 * (it.appeal - 0.5)
    return u


def utility(user: UserLatent, product: GeneratedProduct, query_intent: QueryIntent | None = None) -> float:
    """The true value of ``product`` to ``user`` for ``query_intent`` (None: a page reached by browsing).

    Query relevance dominates (3 for the intent's product type, 0.6 for another type in the same department,
    0 otherwise; +/- for the brand or modifier the query names), then taste: leaf and department affinity,
    brand affinity (negative for avoided brands), style match (+0.6), price-band distance scaled by price
    sensitivity, quality tier and rating scaled by quality sensitivity, and the product's hidden appeal.
    Clicks are ``sigmoid(1.4 * (u - 4.6))`` once examined; an oracle ranks by this value.
    """
    return _utility(user, _item(product), query_intent)


def _sigmoid(x: float) -> float:
    if x < -30.0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------ users


def _tier(activity: float) -> str:
    name = ACTIVITY_TIERS[0][0]
    for tier, lower in ACTIVITY_TIERS:
        if activity >= lower:
            name = tier
    return name


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class _Catalog:
    """Lookup tables over the catalog: items by id, leaves present, popularity-weighted sampling per leaf."""

    def __init__(self, catalog: Sequence[GeneratedProduct]) -> None:
        if not catalog:
            raise ValueError("the catalog is empty: simulate needs products to show")
        self.items: dict[str, _Item] = {}
        by_leaf: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for p in catalog:
            it = _item(p)
            self.items[it.pid] = it
            by_leaf[it.leaf].append((it.pid, float(p.doc.get("popularity") or 0.0) + 0.05))
        self.leaf_pids: dict[str, list[str]] = {}
        self.leaf_cum: dict[str, list[float]] = {}
        for leaf, rows in by_leaf.items():
            self.leaf_pids[leaf] = [pid for pid, _ in rows]
            cum, total = [], 0.0
            for _, w in rows:
                total += w
                cum.append(total)
            self.leaf_cum[leaf] = cum
        # leaves of the generator's tree that have products, with their catalog share as weight
        self.tree_leaves = [f"{t} > {leaf}" for t, leaves in CATEGORY_TREE.items() for leaf in leaves]
        self.leaves = [leaf for leaf in self.tree_leaves if leaf in self.leaf_pids]
        if not self.leaves:
            raise ValueError("no product has a category of the generator's tree (CATEGORY_TREE)")
        self.leaf_weights = [len(self.leaf_pids[leaf]) for leaf in self.leaves]
        self.tops = list(dict.fromkeys(leaf.split(" > ", 1)[0] for leaf in self.leaves))
        self.top_leaves = {t: [leaf for leaf in self.leaves if leaf.startswith(t + " > ")] for t in self.tops}
        self.top_weights = [sum(len(self.leaf_pids[leaf]) for leaf in self.top_leaves[t]) for t in self.tops]

    def popular_product(self, rng: random.Random, leaf: str) -> str:
        cum = self.leaf_cum[leaf]
        return self.leaf_pids[leaf][bisect.bisect_right(cum, rng.random() * cum[-1]) if len(cum) > 1 else 0]


def _make_user(
    rng: random.Random, n: int, cat: _Catalog, start: datetime, days: float, new_user_share: float
) -> UserLatent:
    n_tops = min(len(cat.tops), rng.choices((1, 2, 3), weights=(0.45, 0.4, 0.15))[0])
    tops: list[str] = []
    while len(tops) < n_tops:
        t = rng.choices(cat.tops, weights=cat.top_weights)[0]
        if t not in tops:
            tops.append(t)
    top_aff = {t: rng.uniform(0.4, 1.0) for t in tops}
    leaf_aff: dict[str, float] = {}
    for t in tops:
        leaves = cat.top_leaves[t]
        weights = [len(cat.leaf_pids[leaf]) for leaf in leaves]
        for _ in range(rng.choice((1, 1, 2))):
            leaf_aff.setdefault(rng.choices(leaves, weights=weights)[0], rng.uniform(0.4, 1.0))
    if rng.random() < 0.3:
        leaf_aff.setdefault(rng.choices(cat.leaves, weights=cat.leaf_weights)[0], rng.uniform(0.3, 0.7))
    brand_aff: dict[str, float] = {}
    brand_pool = [b for t in tops for b in BRANDS.get(t, ())]
    for _ in range(rng.choice((1, 1, 2, 3))):
        if brand_pool:
            b = rng.choices(brand_pool, weights=[x.share for x in brand_pool])[0]
            brand_aff.setdefault(b.name, rng.uniform(0.5, 1.0))
    if brand_pool and rng.random() < 0.3:
        b = rng.choice(brand_pool)
        brand_aff.setdefault(b.name, -rng.uniform(0.6, 1.0))
    fav = [b for b in brand_pool if brand_aff.get(b.name, 0.0) > 0]
    style = rng.choice(fav[0].styles) if fav and rng.random() < 0.6 else rng.choice(STYLES)
    activity = min(8.0, math.exp(rng.gauss(math.log(0.12), 1.1)))
    is_new = rng.random() < new_user_share
    arrival = start
    if is_new:
        arrival = start + timedelta(days=rng.uniform(0.5 * days, 0.95 * days))
        arrival = arrival.replace(microsecond=(arrival.microsecond // 1000) * 1000)

    def scaled(d: dict[str, float]) -> dict[str, float]:
        top = max((abs(v) for v in d.values()), default=1.0)
        return {k: round(v / top, 4) for k, v in d.items()}

    return UserLatent(
        user_id=f"U{n:07d}",
        top_affinity=scaled(top_aff),
        leaf_affinity=scaled(leaf_aff),
        brand_affinity={k: round(v, 4) for k, v in brand_aff.items()},
        style=style,
        price_band=rng.choices(PRICE_BANDS, weights=(0.35, 0.45, 0.2))[0],
        price_sensitivity=round(rng.betavariate(2.0, 2.0), 4),
        quality_sensitivity=round(rng.betavariate(2.0, 2.0), 4),
        activity=round(activity, 5),
        tier=_tier(activity),
        is_new=is_new,
        arrival=_iso(arrival),
    )


# ------------------------------------------------------------------------------------------ result


@dataclass
class SimulationResult:
    """The log (``events`` in time order, ``impressions``), the hidden truth (``users``) and ``stats``."""

    events: list[dict[str, Any]]
    impressions: list[dict[str, Any]]
    users: list[UserLatent]
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines: counts, tiers, query mix and the BM25 recall report."""
        s = self.stats
        lines = [
            f"period {s['start']} .. {s['end']} ({s['days']} days), seed {s['seed']}, {s['seconds']:.1f} s",
            f"users {s['users']} (new {s['new_users']}; tiers "
            + ", ".join(f"{k} {v}" for k, v in s["users_by_tier"].items())
            + f"), active {s['active_users']}, sessions {s['sessions']}",
            f"events {s['events']}: " + ", ".join(f"{k} {v}" for k, v in s["events_by_type"].items()),
            f"searches {s['searches']}, distinct queries {s['distinct_queries']}; by kind: "
            + ", ".join(f"{k} {v}" for k, v in s["searches_by_kind"].items()),
        ]
        r = s["bm25_recall"]
        lines.append(
            f"BM25 recall@{r['k']}: clicks {r['clicks']:.3f} (of {r['clicked']}), "
            f"purchases {r['purchases']:.3f} (of {r['purchased']})"
        )
        lines.append(
            "  clicks by query kind: "
            + ", ".join(f"{k} {v['recall']:.2f} (n={v['n']})" for k, v in r["clicks_by_kind"].items())
        )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ simulation


@dataclass
class _Plan:
    start_ms: int
    user: int
    number: int
    intents: list[QueryIntent]
    browse: int  # product views without a query


def _pick_leaf(rng: random.Random, user: UserLatent, cat: _Catalog) -> str:
    r = rng.random()
    if r < 0.65 and user.leaf_affinity:
        leaves = [leaf for leaf in user.leaf_affinity if leaf in cat.leaf_pids]
        if leaves:
            return rng.choices(leaves, weights=[user.leaf_affinity[leaf] for leaf in leaves])[0]
    if r < 0.85 and user.top_affinity:
        tops = list(user.top_affinity)
        t = rng.choices(tops, weights=[user.top_affinity[x] for x in tops])[0]
        leaves = cat.top_leaves.get(t, [])
        if leaves:
            return rng.choices(leaves, weights=[len(cat.leaf_pids[leaf]) for leaf in leaves])[0]
    return rng.choices(cat.leaves, weights=cat.leaf_weights)[0]


_FOLLOW_UP = {"typo": "canonical", "broad": "specific", "informal": "canonical"}


def _plan_sessions(
    rng: random.Random,
    users: Sequence[UserLatent],
    cat: _Catalog,
    vocab: QueryVocabulary,
    start_ms: int,
    end_ms: int,
) -> list[_Plan]:
    plans: list[_Plan] = []
    day_ms = 86_400_000
    hour_cum = []
    acc = 0.0
    for w in _HOUR_WEIGHTS:
        acc += w
        hour_cum.append(acc)
    latest = end_ms - 3 * 3_600_000  # sessions start early enough to finish inside the period
    for ui, user in enumerate(users):
        arrival = _parse_ms(user.arrival)
        span_days = max(0.0, (latest - arrival) / day_ms)
        lam = user.activity * span_days
        n = _poisson(rng, lam) + (1 if user.is_new else 0)
        times: list[int] = []
        if user.is_new:
            times.append(arrival)
        for _ in range(n - len(times)):
            day = arrival + int(rng.random() * span_days) * day_ms
            day -= (day - start_ms) % day_ms
            hour = bisect.bisect_right(hour_cum, rng.random() * hour_cum[-1])
            t = day + hour * 3_600_000 + rng.randrange(3_600_000)
            if t < arrival or t > latest:
                t = arrival + int(rng.random() * (latest - arrival))
            times.append(t)
        times.sort()
        fav = user.favourite_brands()
        for number, t in enumerate(times, 1):
            intents: list[QueryIntent] = []
            browse = 0
            if rng.random() < _BROWSE_SESSION_SHARE:
                browse = 1 + min(7, int(rng.expovariate(0.6)))
            else:
                n_q = rng.choices((1, 2, 3, 4), weights=(0.5, 0.28, 0.14, 0.08))[0]
                leaf = _pick_leaf(rng, user, cat)
                intent = vocab.intent(rng, leaf, fav)
                intents.append(intent)
                for _ in range(n_q - 1):
                    if rng.random() < 0.65:
                        kind = _FOLLOW_UP.get(intent.kind)
                        intent = vocab.intent(rng, intent.leaf, fav, kind)
                    else:
                        intent = vocab.intent(rng, _pick_leaf(rng, user, cat), fav)
                    intents.append(intent)
                if rng.random() < 0.25:
                    browse = rng.randint(1, 3)
            plans.append(_Plan(t, ui, number, intents, browse))
    return plans


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def _parse_ms(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(dt.timestamp() * 1000)


class _Clock:
    """Fast ISO 8601 formatting of epoch milliseconds (the date/hour prefix is cached per hour)."""

    def __init__(self) -> None:
        self._prefix: dict[int, str] = {}

    def iso(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        hour, rest = divmod(sec, 3600)
        prefix = self._prefix.get(hour)
        if prefix is None:
            prefix = datetime.fromtimestamp(hour * 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H:")
            self._prefix[hour] = prefix
        minute, second = divmod(rest, 60)
        return f"{prefix}{minute:02d}:{second:02d}.{milli:03d}Z"


_CartLine = tuple[str, float, str | None, str | None, float]  # product, price, query, request id, utility


class _Player:
    """Plays planned sessions: shows pages, draws examinations, clicks, carts and purchases; collects rows."""

    def __init__(self, cat: _Catalog, shop: ShopRanker, rng: random.Random, end_ms: int) -> None:
        self.cat = cat
        self.items = cat.items
        self.shop = shop
        self.rng = rng
        self.end_ms = end_ms
        self.clock = _Clock()
        self.rows: list[tuple[int, int, dict[str, Any]]] = []
        self.impressions: list[tuple[int, int, dict[str, Any]]] = []
        self.searches_by_kind: Counter[str] = Counter()
        self.seq = 0
        self.k = 0
        self.uid = ""
        self.sid = ""
        self.session_tag = ""  # keeps session (and event) ids of a later run apart from the history's

    def emit(
        self,
        etype: str,
        pid: str,
        ts: int,
        query: str | None = None,
        position: int | None = None,
        request_id: str | None = None,
        quantity: int | None = None,
    ) -> None:
        self.k += 1
        self.seq += 1
        row = {
            "event_id": f"{self.sid}-E{self.k:03d}",
            "user_id": self.uid,
            "session_id": self.sid,
            "type": etype,
            "product_id": pid,
            "timestamp": self.clock.iso(ts),
            "query": query,
            "position": position,
            "price": self.items[pid].price,
            "quantity": quantity,
            "request_id": request_id,
        }
        self.rows.append((ts, self.seq, row))

    def play(self, plan: _Plan, user: UserLatent) -> None:
        rng, items, end_ms = self.rng, self.items, self.end_ms
        self.uid = user.user_id
        self.sid = sid = f"{user.user_id}-{self.session_tag}S{plan.number:04d}"
        self.k = 0
        t = plan.start_ms
        cart: list[_CartLine] = []
        for j, intent in enumerate(plan.intents, 1):
            t += rng.randint(2_000, 20_000)
            if t >= end_ms:
                break
            request_id = f"{sid}-R{j:02d}"
            show = getattr(self.shop, "show", None)
            if show is not None:  # a live shop (the closed loop through the proxy) names the request itself
                shown, request_id = show(user, intent, rng, session_id=sid, request_id=request_id, at_ms=t)
            else:
                shown = self.shop.shown_list(user, intent, rng)
            self.seq += 1
            self.searches_by_kind[intent.kind] += 1
            imp = {
                "request_id": request_id,
                "user_id": user.user_id,
                "session_id": sid,
                "timestamp": self.clock.iso(t),
                "query": intent.text,
                "product_ids": shown,
            }
            self.impressions.append((t, self.seq, imp))
            carted = False
            for r, pid in enumerate(shown, 1):
                if rng.random() >= _EXAM[r]:
                    continue
                it = items.get(pid)
                if it is None:
                    continue
                u = _utility(user, it, intent)
                if rng.random() >= _sigmoid(_CLICK_SLOPE * (u - _CLICK_AT)):
                    continue
                t += rng.randint(1_500, 6_000) + 300 * r
                if t >= end_ms:
                    break
                self.emit("click", pid, t, intent.text, r, request_id)
                t += rng.randint(8_000, 90_000)
                if rng.random() < _sigmoid(_CART_SLOPE * (u - _CART_AT)) and t + 1 < end_ms:
                    t += rng.randint(1_000, 20_000)
                    self.emit("add_to_cart", pid, t, intent.text, None, request_id)
                    cart.append((pid, it.price, intent.text, request_id, u))
                    carted = True
                if rng.random() < (0.75 if carted else _STOP_AFTER_CLICK):
                    break
            if carted and rng.random() < 0.5:
                break
        for _ in range(plan.browse):
            leaf = _pick_leaf(rng, user, self.cat)
            pid = self.cat.popular_product(rng, leaf)
            t += rng.randint(5_000, 60_000)
            if t >= end_ms:
                break
            self.emit("view", pid, t)
            it = items[pid]
            u = _utility(user, it, None)
            t += rng.randint(5_000, 60_000)
            if rng.random() < _sigmoid(_CART_SLOPE * (u - _VIEW_CART_AT)) and t < end_ms:
                self.emit("add_to_cart", pid, t)
                cart.append((pid, it.price, None, None, u))
        if cart:
            t += rng.randint(30_000, 240_000)
            for pid, price, via_query, via_request, u in cart:
                t += rng.randint(500, 5_000)
                if t >= end_ms:
                    break
                p_buy = _sigmoid(_BUY_SLOPE * (u - _BUY_AT)) - 0.15 * user.price_sensitivity * (price > 100)
                if rng.random() < p_buy:
                    qty = 1 if price >= 20 or rng.random() < 0.6 else rng.randint(2, 3)
                    self.emit("purchase", pid, t, via_query, None, via_request, qty)


def simulate(
    catalog: Sequence[GeneratedProduct],
    retriever: Retriever,
    *,
    users: int = 5000,
    days: float = 30,
    seed: int = 7,
    start: datetime | str = DEFAULT_START,
    new_user_share: float = 0.1,
    ranker: ShopRanker | None = None,
    recall_retriever: Retriever | None = None,
    recall_k: int = 100,
    vocabulary: QueryVocabulary | None = None,
) -> SimulationResult:
    """Simulate ``users`` shoppers over ``days`` from ``start`` (UTC) against ``catalog``.

    ``retriever`` gives BM25 results (:class:`~fuserec_os.simulate.retrieval.EngineRetriever`, or a fake in
    unit tests); the shown pages come from ``ranker`` (default: a :class:`ShopRanker` over ``retriever``).
    The BM25 recall report uses ``recall_retriever`` (default ``retriever``) at depth ``recall_k``.
    """
    started = time.monotonic()
    if users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}")
    if not 0.0 <= new_user_share <= 1.0:
        raise ValueError(f"new_user_share must be within 0..1, got {new_user_share}")
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start = start.astimezone(timezone.utc)
    end = start + timedelta(days=days)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    cat = _Catalog(catalog)
    vocab = vocabulary or QueryVocabulary()
    shop = ranker or ShopRanker(catalog, retriever, k=recall_k)
    rng_users = random.Random(f"fuserec-users-{seed}")
    rng_plan = random.Random(f"fuserec-plan-{seed}")

    people = [_make_user(rng_users, i + 1, cat, start, days, new_user_share) for i in range(users)]
    plans = _plan_sessions(rng_plan, people, cat, vocab, start_ms, end_ms)
    shop.prepare(list(dict.fromkeys(i.text for p in plans for i in p.intents)))

    player = _Player(cat, shop, random.Random(f"fuserec-play-{seed}"), end_ms)
    for plan in plans:
        player.play(plan, people[plan.user])
    rows, impressions, searches_by_kind = player.rows, player.impressions, player.searches_by_kind
    rows.sort(key=lambda x: (x[0], x[1]))
    impressions.sort(key=lambda x: (x[0], x[1]))
    events = [row for _, _, row in rows]
    imps = [row for _, _, row in impressions]

    recall_src = recall_retriever or retriever
    stats = _stats(events, imps, people, plans, searches_by_kind, vocab, recall_src, recall_k)
    stats.update(
        start=_iso(start),
        end=_iso(end),
        days=days,
        seed=seed,
        seconds=round(time.monotonic() - started, 3),
    )
    return SimulationResult(events=events, impressions=imps, users=people, stats=stats)


def _share(hit: int, n: int) -> float:
    return hit / n if n else 0.0


def _stats(
    events: Sequence[Mapping[str, Any]],
    impressions: Sequence[Mapping[str, Any]],
    users: Sequence[UserLatent],
    plans: Sequence[_Plan],
    searches_by_kind: Mapping[str, int],
    vocab: QueryVocabulary,
    recall_retriever: Retriever,
    k: int,
) -> dict[str, Any]:
    by_type = Counter(e["type"] for e in events)
    tiers = Counter(u.tier for u in users)
    led = [e for e in events if e["query"] is not None and e["type"] in ("click", "purchase")]
    queries = list(dict.fromkeys(e["query"] for e in led))
    top = {q: set(ids) for q, ids in zip(queries, recall_retriever.search(queries, k), strict=True)}
    clicks = [e for e in led if e["type"] == "click"]
    buys = [e for e in led if e["type"] == "purchase"]
    click_hits = sum(e["product_id"] in top[e["query"]] for e in clicks)
    buy_hits = sum(e["product_id"] in top[e["query"]] for e in buys)
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in clicks:
        kind = vocab.kind_of(e["query"]) or "other"
        by_kind[kind][0] += 1
        by_kind[kind][1] += e["product_id"] in top[e["query"]]
    return {
        "users": len(users),
        "new_users": sum(u.is_new for u in users),
        "users_by_tier": {name: tiers.get(name, 0) for name, _ in ACTIVITY_TIERS},
        "active_users": len({e["user_id"] for e in events}),
        "sessions": len(plans),
        "events": len(events),
        "events_by_type": {t: by_type.get(t, 0) for t in EVENT_TYPES},
        "searches": len(impressions),
        "distinct_queries": len({i["query"] for i in impressions}),
        "searches_by_kind": dict(sorted(searches_by_kind.items())),
        "bm25_recall": {
            "k": k,
            "clicks": round(_share(click_hits, len(clicks)), 4),
            "purchases": round(_share(buy_hits, len(buys)), 4),
            "clicked": len(clicks),
            "purchased": len(buys),
            "clicks_by_kind": {
                kind: {"n": n, "recall": round(_share(hit, n), 4)} for kind, (n, hit) in sorted(by_kind.items())
            },
        },
    }


def preference_lift(result: SimulationResult, catalog: Sequence[GeneratedProduct]) -> dict[str, float]:
    """How much more users click and buy what they secretly like than users in general (1.0 = no signal).

    For each event type (click, purchase) and each taste (preferred leaves, favourite brands, preferred
    style): the number of a user's events that match their own taste, divided by the number expected if
    they behaved like everyone else (their event count times everyone's share of events matching that
    same taste), summed over users.
    """
    products = {str(p.doc["product_id"]): p for p in catalog}
    users = {u.user_id: u for u in result.users}

    def tastes(u: UserLatent, p: GeneratedProduct) -> tuple[bool, bool, bool]:
        return (
            p.doc.get("category") in u.leaf_affinity,
            u.brand_affinity.get(str(p.doc.get("brand")), 0.0) > 0,
            p.latent.style == u.style,
        )

    out: dict[str, float] = {}
    for etype in ("click", "purchase"):
        evs = [(users[e["user_id"]], products[e["product_id"]]) for e in result.events if e["type"] == etype]
        if not evs:
            continue
        leaf_n = Counter(str(p.doc.get("category")) for _, p in evs)
        brand_n = Counter(str(p.doc.get("brand")) for _, p in evs)
        style_n = Counter(p.latent.style for _, p in evs)
        per_user: Counter[str] = Counter(u.user_id for u, _ in evs)
        own = [0, 0, 0]
        for u, p in evs:
            for i, hit in enumerate(tastes(u, p)):
                own[i] += hit
        expected = [0.0, 0.0, 0.0]
        total = len(evs)
        for uid, n in per_user.items():
            u = users[uid]
            expected[0] += n * sum(leaf_n[leaf] for leaf in u.leaf_affinity) / total
            expected[1] += n * sum(brand_n[b] for b, a in u.brand_affinity.items() if a > 0) / total
            expected[2] += n * style_n[u.style] / total
        for i, name in enumerate(("leaf", "brand", "style")):
            out[f"{etype}_{name}_lift"] = round(own[i] / expected[i], 3) if expected[i] else 0.0
    return out


# ------------------------------------------------------------------------------------------ files


def _write_rows(rows: Iterable[Mapping[str, Any]], path: Path, schema: Any = None) -> None:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".jsonl", ".ndjson"):
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows], schema=schema), path)
    else:
        raise ValueError(f"unsupported file extension {path.suffix or '(none)'!r} for {path}; use .jsonl or .parquet")


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    return {
        "events": pa.schema(
            [
                ("event_id", pa.string()),
                ("user_id", pa.string()),
                ("session_id", pa.string()),
                ("type", pa.string()),
                ("product_id", pa.string()),
                ("timestamp", pa.string()),
                ("query", pa.string()),
                ("position", pa.int32()),
                ("price", pa.float64()),
                ("quantity", pa.int32()),
                ("request_id", pa.string()),
            ]
        ),
        "impressions": pa.schema(
            [
                ("request_id", pa.string()),
                ("user_id", pa.string()),
                ("session_id", pa.string()),
                ("timestamp", pa.string()),
                ("query", pa.string()),
                ("product_ids", pa.list_(pa.string())),
            ]
        ),
        "truth": pa.schema(
            [
                ("user_id", pa.string()),
                ("top_affinity", pa.map_(pa.string(), pa.float64())),
                ("leaf_affinity", pa.map_(pa.string(), pa.float64())),
                ("brand_affinity", pa.map_(pa.string(), pa.float64())),
                ("style", pa.string()),
                ("price_band", pa.string()),
                ("price_sensitivity", pa.float64()),
                ("quality_sensitivity", pa.float64()),
                ("activity", pa.float64()),
                ("tier", pa.string()),
                ("is_new", pa.bool_()),
                ("arrival", pa.string()),
            ]
        ),
    }


def write_simulation(
    result: SimulationResult,
    events_path: str | Path,
    impressions_path: str | Path | None = None,
    truth_path: str | Path | None = None,
) -> None:
    """Write events (and optionally impressions and the users' true tastes) as ``.jsonl`` or ``.parquet``.

    The latent preferences go to ``truth_path`` only; they are never part of the events, so a ranker trained
    on the events can only learn them from behaviour.
    """
    paths = [Path(p) for p in (events_path, impressions_path, truth_path) if p is not None]
    if len({p.resolve() for p in paths}) != len(paths):
        raise ValueError("events, impressions and truth must go to different files")
    for p in paths:
        if p.suffix.lower() not in (".jsonl", ".ndjson", ".parquet"):
            raise ValueError(f"unsupported file extension {p.suffix or '(none)'!r} for {p}; use .jsonl or .parquet")
    parquet = any(p.suffix.lower() == ".parquet" for p in paths)
    schemas = _schemas() if parquet else {}
    _write_rows(result.events, Path(events_path), schemas.get("events"))
    if impressions_path is not None:
        _write_rows(result.impressions, Path(impressions_path), schemas.get("impressions"))
    if truth_path is not None:
        truth = []
        for u in result.users:
            row = asdict(u)
            if Path(truth_path).suffix.lower() == ".parquet":
                for key in ("top_affinity", "leaf_affinity", "brand_affinity"):
                    row[key] = list(row[key].items())
            truth.append(row)
        _write_rows(truth, Path(truth_path), schemas.get("truth"))


def click_probability(
    user: UserLatent, product: GeneratedProduct, query_intent: QueryIntent | None, shown_rank: int | None
) -> float:
    """The simulator's own chance that ``user`` clicks ``product`` shown at ``shown_rank`` (None: examined).

    Examination ``0.98 * rank ** -0.7`` times ``sigmoid(1.4 * (u - 4.6))``: the best possible predictor of the
    logged clicks, so it is the oracle an offline evaluation on logged labels should be measured against
    (ranking by utility alone ignores that unexamined products were never clicked, whatever their value).
    """
    exam = 1.0 if shown_rank is None else (_EXAM[shown_rank] if shown_rank < len(_EXAM) else _EXAM[-1])
    return exam * _sigmoid(_CLICK_SLOPE * (utility(user, product, query_intent) - _CLICK_AT))


def load_truth(path: str | Path) -> dict[str, UserLatent]:
    """The hidden tastes written by :func:`write_simulation` (JSON Lines or Parquet), by user id."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import pandas as pd

        rows = pd.read_parquet(p).to_dict("records")
    else:
        with open(p, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    out: dict[str, UserLatent] = {}
    for row in rows:
        for key in ("top_affinity", "leaf_affinity", "brand_affinity"):
            value = row[key]
            row[key] = dict(value) if not isinstance(value, dict) else value
        user = UserLatent(**{k: row[k] for k in UserLatent.__dataclass_fields__})
        out[user.user_id] = user
    return out


def load_catalog(docs_path: str | Path, latent_path: str | Path) -> list[GeneratedProduct]:
    """Rebuild generated products from the files ``fuserec generate catalog -o DOCS --latent LATENT`` wrote.

    Docs may be any format the ingest reads (JSON Lines, CSV, Parquet); each row is normalised as the ingest
    would (so CSV's flattened tags and attributes come back as lists and maps). Raises ValueError when a
    document has no latent row or a row is invalid.
    """
    from fuserec_os.index.readers import read_rows
    from fuserec_os.index.validate import normalize_product

    latents: dict[str, ProductLatent] = {}
    with Path(latent_path).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                latents[str(row["product_id"])] = ProductLatent(
                    style=str(row["style"]),
                    quality_tier=int(row["quality_tier"]),
                    price_band=str(row["price_band"]),
                    appeal=float(row["appeal"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{latent_path}: line {line_no} is not a product latent row: {exc}") from exc
    products: list[GeneratedProduct] = []
    for row_number, row in read_rows(docs_path):
        doc, reasons = normalize_product(row)
        if doc is None:
            raise ValueError(f"{docs_path}: row {row_number} is invalid: {'; '.join(reasons)}")
        pid = str(doc["product_id"])
        if pid not in latents:
            raise ValueError(f"{docs_path}: product {pid} has no latent row in {latent_path}")
        public = {key: doc.get(key) for key in DOC_KEYS}
        attrs = public.get("attributes")
        if isinstance(attrs, list):  # the index form "key:value" back to the generator's mapping
            public["attributes"] = dict(str(a).split(":", 1) for a in attrs if ":" in str(a))
        products.append(GeneratedProduct(doc=public, latent=latents[pid]))
    return products
