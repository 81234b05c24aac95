"""Item signals learned from behaviour: what every shopper did with each product (pure, in memory).

Why: a catalog's ``popularity``, ``rating`` and ``review_count`` are often absent or stale on a real shop, so
"popular" must come from the log itself. :class:`ItemSignals` is the one implementation: training advances it
through the log point-in-time, the profile job writes it to the cluster (:mod:`~fuserec_os.profiles.item_store`),
live updates add to it, and serving reads a copy held in memory (:mod:`~fuserec_os.profiles.item_cache`).

What is kept per product
------------------------
* ``decayed``: views, clicks, add-to-carts and purchases, each event weighing ``0.5 ** (age / half_life)`` (the
  profiles' half-life, :class:`~fuserec_os.profiles.config.ProfilesConfig`), read at the request time;
* ``counts``: the same, raw; ``search``: clicks, carts and purchases of events that carry a query;
* ``exams``: position-weighted examinations from the search log (each time the product was shown at rank ``r``
  after a query it adds ``1 / log2(r + 1)``, the chance a shopper even looked at it: the same curve the query
  statistics use) and ``shown`` (raw impressions);
* ``rating_sum`` / ``rating_n``: explicit ratings carried by events (a rating log);
* ``last``: the newest event's time;
* ``daily``: engagement per UTC day for the last :data:`TREND_WINDOW_DAYS` days (each event weighs its type's
  profile weight), in a ring of day slots.

What it gives (:meth:`ItemSignals.values`, NaN where missing)
------------------------------------------------------------
* decayed counts at ``now`` (0 for a product without events: a real zero);
* ``ctr`` / ``conversion``: ``(search count + a * prior) / (max(exams, search count) + a)``, ``a`` = ``smoothing``
  pseudo-examinations, ``prior`` = search clicks (purchases) of every examined product over all examinations:
  rates debiased by position, and a product with one lucky click is not a 100 % product. Missing for a product
  never shown in a logged result list (and so for every product when there is no search log);
* ``rating_mean`` (missing without a rating) and ``rating_count``;
* ``days_since``: days from the newest event to ``now`` (missing without any);
* ``trend``: ``log((last 7 days + 1) / (the 3 weeks before, per week, + 1))`` of the daily engagement (days are
  UTC days; the current day counts to the last 7); missing without engagement in those 4 weeks.

Exactness
---------
Everything is a sum (or a maximum), so adding the events in any split and order gives the same state as one add
of all of them, up to float rounding in the decayed numbers (they are kept relative to a reference time and
rescaled by a power of two when it moves). The day ring keeps only the 28 days up to the newest event; an older
day can never be read again (a request is never older than the events before it), so dropping it is exact too.
An event must be added once: the state keeps no event ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.behaviour.events import normalize_query
from fuserec_os.profiles.config import DEFAULT_WEIGHTS, ProfilesConfig

__all__ = [
    "TREND_RECENT_DAYS",
    "TREND_WINDOW_DAYS",
    "ItemSignalValues",
    "ItemSignals",
    "PreparedEvents",
    "PreparedImpressions",
    "position_weight",
]

NS_PER_DAY = 86_400 * 1_000_000_000
TREND_RECENT_DAYS = 7
TREND_WINDOW_DAYS = 28
_WEEKS_BEFORE = (TREND_WINDOW_DAYS - TREND_RECENT_DAYS) / 7.0
_NO_TIME = np.iinfo(np.int64).min
_NO_DAY = np.iinfo(np.int64).min // 2
_N_TYPES = len(EVENT_TYPES)
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
_NUM_COLS = 10  # decayed views, clicks, carts, purchases; search clicks, carts, purchases; exams; rating sum, n
_REBASE_HALF_LIVES = 60.0  # decayed numbers are relative to a reference time; moved when it is this far behind
_DEFAULT_SMOOTHING = 10.0
GRADE_WEIGHTS = np.array([0.0, 1.0, 2.0, 3.0])
"""Engagement of :meth:`ItemSignals.engagement` per event type (view, click, cart, purchase): the label grades."""


def position_weight(rank: np.ndarray) -> np.ndarray:
    """``1 / log2(rank + 1)`` for 1-based ranks: the examination curve of the query statistics' default."""
    out: np.ndarray = 1.0 / np.log2(np.asarray(rank, dtype=np.float64) + 1.0)
    return out


def _is_blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# ------------------------------------------------------------------------------------------ prepared input


@dataclass(frozen=True)
class PreparedEvents:
    """Events as arrays, row for row in the frame's order: what :meth:`ItemSignals.add_prepared` reads.
    Training prepares the whole sorted log once and adds slices of it, search by search (rows without a
    product, a known type or a timestamp are kept, so slices align with the frame, and never added)."""

    product_ids: list[str]
    types: np.ndarray  # int64 index into EVENT_TYPES, -1 for a row that is never added
    ns: np.ndarray  # int64 UTC nanoseconds
    searched: np.ndarray  # bool: the event carries a query
    rating: np.ndarray  # float64, NaN without a rating

    def __len__(self) -> int:
        return len(self.product_ids)

    @classmethod
    def from_frame(cls, events: pd.DataFrame) -> PreparedEvents:
        """From an events frame (:func:`~fuserec_os.behaviour.events.events_frame` columns; ``query_norm`` or
        ``query``, ``rating`` optional). Rows without a product, a known type or a timestamp are left out."""
        n = len(events)
        if n == 0:
            return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0))
        pids = events["product_id"].tolist()
        types = np.fromiter(map(_TYPE_INDEX.get, events["type"].tolist(), repeat(-1)), dtype=np.int64, count=n)
        stamps = pd.DatetimeIndex(pd.to_datetime(events["timestamp"], utc=True)).as_unit("ns")
        ns = stamps.asi8
        has_pid = np.fromiter((not _is_blank(p) for p in pids), bool, count=n)
        ok = (types >= 0) & ~np.asarray(stamps.isna(), dtype=bool) & has_pid
        qcol = "query_norm" if "query_norm" in events.columns else "query" if "query" in events.columns else None
        if qcol is None:
            searched = np.zeros(n, dtype=bool)
        else:
            searched = np.fromiter(
                (isinstance(q, str) and bool(normalize_query(q)) for q in events[qcol].tolist()), bool, count=n
            )
        if "rating" in events.columns:
            rating = pd.to_numeric(events["rating"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            rating = np.full(n, np.nan)
        return cls(
            ["" if _is_blank(p) else str(p) for p in pids],
            np.where(ok, types, -1),
            np.where(ok, ns, 0),
            searched,
            np.where(np.isfinite(rating), rating, np.nan),
        )


@dataclass(frozen=True)
class PreparedImpressions:
    """Logged result lists as flat arrays (only searches with a query): product ids, examination weights and
    ``offsets`` (search ``i`` is ``offsets[i]:offsets[i+1]``), in the frame's order."""

    product_ids: list[str]
    weights: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_frame(cls, impressions: pd.DataFrame) -> PreparedImpressions:
        """From a search log frame (``query``, ``product_ids`` in shown order). A search without a query (browsing)
        adds nothing, as its clicks carry no query either; its slot stays so slices align with the frame."""
        n = len(impressions)
        if n == 0:
            return cls([], np.zeros(0), np.zeros(1, dtype=np.int64))
        queries = impressions["query"].tolist() if "query" in impressions.columns else [None] * n
        lists: list[list[str]] = []
        for q, shown in zip(queries, impressions["product_ids"].tolist(), strict=True):
            if not (isinstance(q, str) and normalize_query(q)) or _is_blank_list(shown):
                lists.append([])
            else:
                lists.append([str(p) for p in list(shown) if not _is_blank(p)])
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ranks = np.concatenate([np.arange(1, k + 1) for k in lengths.tolist()]) if offsets[-1] else np.zeros(0)
        return cls([p for x in lists for p in x], position_weight(ranks), offsets)


def _is_blank_list(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class ItemSignalValues:
    """The signals of some products at one time (NaN = missing); rows follow the product ids asked for."""

    decayed: np.ndarray  # [n, 4] views, clicks, carts, purchases, decayed to now
    ctr: np.ndarray
    conversion: np.ndarray
    rating_mean: np.ndarray
    rating_count: np.ndarray
    days_since: np.ndarray
    trend: np.ndarray

    @property
    def engagement(self) -> np.ndarray:
        """Decayed clicks + 2 carts + 3 purchases: the behaviour popularity baseline's score."""
        out: np.ndarray = self.decayed @ GRADE_WEIGHTS
        return out


# ------------------------------------------------------------------------------------------ the accumulator


class ItemSignals:
    """Per-product behaviour signals; see the module docstring. Not thread-safe for writes (copy, then write)."""

    def __init__(
        self,
        half_life_days: float = 14.0,
        weights: Mapping[str, float] | None = None,
        smoothing: float = _DEFAULT_SMOOTHING,
    ) -> None:
        if not half_life_days > 0:
            raise ValueError(f"half_life_days {half_life_days!r} must be > 0")
        if not smoothing > 0:
            raise ValueError(f"smoothing {smoothing!r} must be > 0 (pseudo-examinations)")
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.half_life_days = float(half_life_days)
        self.weights = np.array([float(w[t]) for t in EVENT_TYPES])
        self.smoothing = float(smoothing)
        self._hl_ns = self.half_life_days * NS_PER_DAY
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.ref_ns: int | None = None  # decayed numbers are sums of 2 ** ((t - ref) / half_life)
        self.as_of_ns: int | None = None  # the newest event added
        self.newest_day: int | None = None
        self.slot_day = np.full(TREND_WINDOW_DAYS, _NO_DAY, dtype=np.int64)
        self._alloc(8)
        self._tot = np.zeros(3)  # search clicks / carts / purchases of examined products
        self._tot_exams = 0.0
        self._table_rows: tuple[object, int, np.ndarray] | None = None

    @classmethod
    def from_config(cls, cfg: ProfilesConfig, smoothing: float = _DEFAULT_SMOOTHING) -> ItemSignals:
        return cls(cfg.half_life_days, cfg.weights, smoothing)

    def _alloc(self, cap: int) -> None:
        self._num = np.zeros((cap, _NUM_COLS))  # what a request reads, in one row: one gather per request
        self.counts = np.zeros((cap, _N_TYPES))
        self.shown = np.zeros(cap)
        self.last = np.full(cap, _NO_TIME, dtype=np.int64)
        self.daily = np.zeros((cap, TREND_WINDOW_DAYS))
        self._views()

    def _views(self) -> None:
        """Named views into ``_num`` (they write through)."""
        num = self._num
        self.decayed = num[:, 0:4]
        self.search = num[:, 4:7]
        self.exams = num[:, 7]
        self.rating_sum = num[:, 8]
        self.rating_n = num[:, 9]

    _ARRAYS = ("_num", "counts", "shown", "last", "daily")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_empty(self) -> bool:
        return not self.ids

    # --- rows ---------------------------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        """Room for ``need`` rows plus one: row ``len(self)`` always stays empty (what unknown products read)."""
        cap = len(self.exams)
        if need < cap:
            return
        while cap <= need:
            cap *= 2
        for name in self._ARRAYS:
            old = getattr(self, name)
            new = (
                np.full((cap, *old.shape[1:]), _NO_TIME, dtype=old.dtype)
                if name == "last"
                else np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            )
            new[: len(old)] = old
            setattr(self, name, new)
        self._views()

    def _rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Rows of ``product_ids``, new products appended."""
        index = self.index
        out = np.empty(len(product_ids), dtype=np.int64)
        for i, pid in enumerate(product_ids):
            row = index.get(pid)
            if row is None:
                row = index[pid] = len(self.ids)
                self.ids.append(pid)
            out[i] = row
        self._grow(len(self.ids))
        return out

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Row of each product, ``len(self)`` (an empty row) for a product without signals."""
        n = len(self.ids)
        return np.fromiter(map(self.index.get, product_ids, repeat(n)), dtype=np.int64, count=len(product_ids))

    def rows_for_table(self, key: object, product_ids: Sequence[str]) -> np.ndarray:
        """:meth:`rows` of a fixed product list (a model's catalog), cached while no product is added here.

        Serving and training gather candidates by their catalog row already; mapping catalog rows to signal
        rows through this array spares a second dict lookup per candidate. ``key`` names the list (its
        identity): a new list or a new product here computes the array again.
        """
        cached = self._table_rows
        if cached is not None and cached[0] is key and cached[1] == len(self.ids):
            return cached[2]
        out = self.rows(product_ids)
        self._table_rows = (key, len(self.ids), out)
        return out

    # --- time ---------------------------------------------------------------------------------------------
    def _factor(self, from_ns: float, to_ns: float) -> float:
        """What a decayed number at ``from_ns`` is worth at ``to_ns``."""
        return float(np.exp2((from_ns - to_ns) / self._hl_ns))

    def _rebase(self, newest_ns: int) -> None:
        if self.ref_ns is None:
            self.ref_ns = int(newest_ns)
        elif (newest_ns - self.ref_ns) / self._hl_ns > _REBASE_HALF_LIVES:
            self.decayed *= self._factor(self.ref_ns, newest_ns)
            self.ref_ns = int(newest_ns)

    def _advance_days(self, day: int) -> None:
        """Make ``day`` the newest day slot (the ring's older days beyond the window are cleared)."""
        if self.newest_day is not None and day <= self.newest_day:
            return
        oldest = day - TREND_WINDOW_DAYS + 1
        start = oldest if self.newest_day is None else max(self.newest_day + 1, oldest)
        for d in range(start, day + 1):
            slot = d % TREND_WINDOW_DAYS
            self.daily[:, slot] = 0.0
            self.slot_day[slot] = d
        self.newest_day = day

    # --- adding -------------------------------------------------------------------------------------------
    def add_events(self, events: pd.DataFrame) -> ItemSignals:
        """Add an events frame (see :meth:`PreparedEvents.from_frame`). Returns ``self``."""
        return self.add_prepared(PreparedEvents.from_frame(events))

    def add_prepared(self, ev: PreparedEvents, lo: int = 0, hi: int | None = None) -> ItemSignals:
        """Add events ``lo:hi`` of prepared events. Returns ``self``."""
        hi = len(ev) if hi is None else hi
        if hi <= lo:
            return self
        types = ev.types[lo:hi]
        if (types < 0).any():
            keep = np.flatnonzero(types >= 0)
            if not len(keep):
                return self
            pids = [ev.product_ids[lo + i] for i in keep.tolist()]
            types, ns, searched, rating = (
                types[keep],
                ev.ns[lo:hi][keep],
                ev.searched[lo:hi][keep],
                ev.rating[lo:hi][keep],
            )
        else:
            pids = ev.product_ids[lo:hi]
            ns, searched, rating = ev.ns[lo:hi], ev.searched[lo:hi], ev.rating[lo:hi]
        rows = self._rows(pids)
        newest = int(ns.max())
        self._rebase(newest)
        assert self.ref_ns is not None
        self.as_of_ns = newest if self.as_of_ns is None else max(self.as_of_ns, newest)
        np.add.at(self.decayed, (rows, types), np.exp2((ns - self.ref_ns) / self._hl_ns))
        np.add.at(self.counts, (rows, types), 1.0)
        s = searched & (types > 0)
        if s.any():
            cols = types[s] - 1
            np.add.at(self.search, (rows[s], cols), 1.0)
            examined = self.exams[rows[s]] > 0
            if examined.any():
                self._tot += np.bincount(cols[examined], minlength=3)
        r = ~np.isnan(rating)
        if r.any():
            np.add.at(self.rating_sum, rows[r], rating[r])
            np.add.at(self.rating_n, rows[r], 1.0)
        np.maximum.at(self.last, rows, ns)
        days = ns // NS_PER_DAY
        self._advance_days(int(days.max()))
        assert self.newest_day is not None
        recent = days > self.newest_day - TREND_WINDOW_DAYS
        if recent.any():
            np.add.at(self.daily, (rows[recent], days[recent] % TREND_WINDOW_DAYS), self.weights[types[recent]])
        return self

    def add_impressions(self, impressions: pd.DataFrame) -> ItemSignals:
        """Add a search log frame (see :meth:`PreparedImpressions.from_frame`). Returns ``self``."""
        return self.add_prepared_impressions(PreparedImpressions.from_frame(impressions))

    def add_prepared_impressions(self, imp: PreparedImpressions, lo: int = 0, hi: int | None = None) -> ItemSignals:
        """Add logged searches ``lo:hi`` of prepared impressions. Returns ``self``."""
        hi = len(imp) if hi is None else hi
        if hi <= lo:
            return self
        a, b = int(imp.offsets[lo]), int(imp.offsets[hi])
        if b <= a:
            return self
        rows = self._rows(imp.product_ids[a:b])
        touched = np.unique(rows)
        before = self.exams[touched] > 0
        np.add.at(self.exams, rows, imp.weights[a:b])
        np.add.at(self.shown, rows, 1.0)
        first = touched[~before]  # examined for the first time: their search counts join the prior's sums
        if len(first):
            self._tot += self.search[first].sum(axis=0)
        self._tot_exams += float(imp.weights[a:b].sum())
        return self

    # --- reading ------------------------------------------------------------------------------------------
    def priors(self) -> np.ndarray:
        """Search clicks, carts, purchases per examination over every examined product (0 without a search log)."""
        if self._tot_exams <= 0:
            return np.zeros(3)
        out: np.ndarray = np.minimum(self._tot / self._tot_exams, 1.0)
        return out

    def values(
        self, product_ids: Sequence[str] | None, now: Any, *, rows: np.ndarray | None = None
    ) -> ItemSignalValues:
        """The signals of ``product_ids`` (or of signal ``rows``) at ``now`` (a timestamp or UTC ns); see the
        module docstring.

        Per call: one gather of the products' numbers, one of their day slots, a few vector operations (the
        request path: ~120 candidates)."""
        now_ns = int(now) if isinstance(now, (int, np.integer)) else pd.Timestamp(now).value
        if rows is None:
            rows = self.rows(product_ids or [])
        g = self._num[rows]
        n = len(rows)
        decayed = g[:, 0:4] * (self._factor(self.ref_ns, now_ns) if self.ref_ns is not None else 0.0)
        exams = g[:, 7]
        a = self.smoothing
        prior = self.priors()
        unseen = exams <= 0
        ctr = (g[:, 4] + a * prior[0]) / (np.maximum(exams, g[:, 4]) + a)
        conversion = (g[:, 6] + a * prior[2]) / (np.maximum(exams, g[:, 6]) + a)
        ctr[unseen] = np.nan
        conversion[unseen] = np.nan
        n_rating = g[:, 9]
        rating_mean = np.divide(g[:, 8], n_rating, out=np.full(n, np.nan), where=n_rating > 0)
        last = self.last[rows]
        days_since = np.maximum((now_ns - last) / NS_PER_DAY, 0.0)
        days_since[last == _NO_TIME] = np.nan
        split = self.daily[rows] @ self._trend_masks(now_ns // NS_PER_DAY)
        recent, before = split[:, 0], split[:, 1]
        trend = np.log((recent + 1.0) / (before / _WEEKS_BEFORE + 1.0))
        trend[recent + before <= 0] = np.nan
        return ItemSignalValues(decayed, ctr, conversion, rating_mean, n_rating, days_since, trend)

    def _trend_masks(self, day: int) -> np.ndarray:
        """[28, 2]: which day slots are the last 7 days up to ``day`` and which the 3 weeks before."""
        key = (day, self.newest_day)
        if getattr(self, "_masks_key", None) != key:
            sd = self.slot_day
            recent = (sd > day - TREND_RECENT_DAYS) & (sd <= day)
            before = (sd > day - TREND_WINDOW_DAYS) & (sd <= day - TREND_RECENT_DAYS)
            self._masks = np.column_stack([recent, before]).astype(np.float64)
            self._masks_key = key
        return self._masks

    def engagement(self, product_ids: Sequence[str], now: Any) -> np.ndarray:
        """Decayed clicks + 2 carts + 3 purchases at ``now`` (see :attr:`ItemSignalValues.engagement`)."""
        if self.ref_ns is None:
            return np.zeros(len(product_ids))
        now_ns = int(now) if isinstance(now, (int, np.integer)) else pd.Timestamp(now).value
        out: np.ndarray = (self.decayed[self.rows(product_ids)] @ GRADE_WEIGHTS) * self._factor(self.ref_ns, now_ns)
        return out

    # --- copying and documents ----------------------------------------------------------------------------
    def copy(self) -> ItemSignals:
        """An independent copy (adding to one never changes the other)."""
        out = ItemSignals.__new__(ItemSignals)
        out.__dict__.update(self.__dict__)
        out.index = dict(self.index)
        out.ids = list(self.ids)
        for name in (*self._ARRAYS, "slot_day", "_tot", "weights"):
            setattr(out, name, getattr(self, name).copy())
        out._views()
        return out

    def config(self) -> dict[str, Any]:
        """What the numbers depend on (stored with them, so a reader decays and smooths the same way)."""
        return {
            "half_life_days": self.half_life_days,
            "weights": dict(zip(EVENT_TYPES, self.weights.tolist(), strict=True)),
            "smoothing": self.smoothing,
        }

    def _has_data(self, row: int) -> bool:
        return bool(self.counts[row].any() or self.shown[row] > 0)

    def doc(self, row: int) -> dict[str, Any]:
        """Product ``row``'s state as plain JSON values (decayed numbers as of :attr:`as_of_ns`)."""
        ref, as_of = self.ref_ns, self.as_of_ns
        scale = self._factor(ref, as_of) if ref is not None and as_of is not None else 0.0
        days = [int(d) for d in self.slot_day.tolist() if d != _NO_DAY]
        days.sort()
        daily = self.daily[row]
        kept = [(d, float(daily[d % TREND_WINDOW_DAYS])) for d in days if daily[d % TREND_WINDOW_DAYS] != 0.0]
        last = int(self.last[row])
        return {
            "product_id": self.ids[row],
            "as_of": self.as_of_ns,
            "decayed": [float(x) * scale for x in self.decayed[row]],
            "counts": [float(x) for x in self.counts[row]],
            "search": [float(x) for x in self.search[row]],
            "exams": float(self.exams[row]),
            "shown": float(self.shown[row]),
            "rating_sum": float(self.rating_sum[row]),
            "rating_n": float(self.rating_n[row]),
            "last": None if last == _NO_TIME else last,
            "days": [d for d, _ in kept],
            "day_weights": [w for _, w in kept],
        }

    def to_docs(self, product_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """One doc per product with any signal (or per product of ``product_ids`` that has a row), by id."""
        if product_ids is None:
            rows = [r for r in range(len(self.ids)) if self._has_data(r)]
        else:
            rows = [self.index[p] for p in dict.fromkeys(product_ids) if p in self.index]
        return [self.doc(r) for r in sorted(rows, key=self.ids.__getitem__)]

    @classmethod
    def from_docs(
        cls,
        docs: Iterable[Mapping[str, Any]],
        half_life_days: float = 14.0,
        weights: Mapping[str, float] | None = None,
        smoothing: float = _DEFAULT_SMOOTHING,
    ) -> ItemSignals:
        """Inverse of :meth:`to_docs` (docs of the same product: the last one wins)."""
        out = cls(half_life_days, weights, smoothing)
        out.replace_docs(docs)
        return out

    def replace_docs(self, docs: Iterable[Mapping[str, Any]]) -> ItemSignals:
        """Set the products of ``docs`` to their stored state (others unchanged): how the serving copy takes a
        refreshed or live-updated document. Returns ``self``."""
        docs = list(docs)
        if not docs:
            return self
        stamps = [int(d["as_of"]) for d in docs if d.get("as_of") is not None]
        if stamps:
            newest = max(stamps)
            self._rebase(newest)
            self.as_of_ns = newest if self.as_of_ns is None else max(self.as_of_ns, newest)
        all_days = [int(x) for d in docs for x in d.get("days") or []]
        if all_days:
            self._advance_days(max(all_days))
        rows = self._rows([str(d["product_id"]) for d in docs])
        for row, d in zip(rows.tolist(), docs, strict=True):
            as_of = d.get("as_of")
            scale = self._factor(int(as_of), self.ref_ns) if as_of is not None and self.ref_ns is not None else 0.0
            self.decayed[row] = np.asarray(d["decayed"], dtype=np.float64) * scale
            self.counts[row] = d["counts"]
            self.search[row] = d["search"]
            self.exams[row] = d["exams"]
            self.shown[row] = d["shown"]
            self.rating_sum[row] = d["rating_sum"]
            self.rating_n[row] = d["rating_n"]
            self.last[row] = _NO_TIME if d.get("last") is None else int(d["last"])
            self.daily[row] = 0.0
            assert self.newest_day is not None or not d.get("days")
            for day, w in zip(d.get("days") or [], d.get("day_weights") or [], strict=True):
                if self.newest_day is not None and int(day) > self.newest_day - TREND_WINDOW_DAYS:
                    self.daily[row, int(day) % TREND_WINDOW_DAYS] = float(w)
        self._recount()
        return self

    def _recount(self) -> None:
        """The priors' sums from the rows (after rows were replaced rather than added to)."""
        n = len(self.ids)
        examined = self.exams[:n] > 0
        self._tot = self.search[:n][examined].sum(axis=0)
        self._tot_exams = float(self.exams[:n].sum())
