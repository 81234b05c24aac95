"""Query-product engagement counts: what shoppers did with a product after typing a query (pure, in memory).

What is counted
---------------
Per *key* (an exact normalised query ``q:<query>``, or one stemmed query term ``t:<term>``, see
:func:`~fuserec_os.text.terms`) and product: clicks, add-to-carts and purchases from events that
carry a query, and *examinations* from logged impressions: each time the product was shown at rank ``r`` it
adds ``position_weights[r-1]`` (default ``1 / log2(r + 1)``), the chance that a shopper even looked at it.
Per key also ``searches`` (impressions logged that showed something: a search that found nothing examines no
product, so it is not counted and leaves the key's exposure on ``requests`` below) and ``requests`` (searches
seen in events: distinct request ids in one :meth:`QueryStats.add_events` call; an event without a request id
counts as one). Term keys aggregate every query containing the term, so "red running shoes" and "running shoe"
share evidence.

All of it is sums, so a full build equals incremental adds of any split of the log, and an as-of snapshot is
just the events (and impressions) before that time; ``requests`` is the one exception, when one request's
events straddle two adds (they then count once per add).

Rates and their smoothing
-------------------------
``rate = (count + a * prior) / (exposure + a)`` with ``a`` = ``smoothing`` (default 10 pseudo-examinations).
``exposure`` is the pair's position-weighted examinations when impressions were logged for the key
(``searches > 0``), else the key's ``requests`` (how often the query was searched, as far as events tell);
it is raised to at least ``count`` so that a rate never exceeds 1 when impressions were logged only in part.
``prior`` is the exposure-weighted mean rate over every (key, product) pair of the same table (queries or
terms): a product nobody has seen under a query gets the typical rate, and ten examinations move it halfway
to the observed one. A product never engaged after many searches of the query drifts towards 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from fuserec_os.behaviour.events import normalize_query
from fuserec_os.text import terms

__all__ = [
    "REQUEST_COUNTED",
    "QueryStats",
    "QueryStatsView",
    "default_position_weights",
    "estimate_position_weights",
    "mark_counted_requests",
]

_EVENT_COL = {"click": 0, "add_to_cart": 1, "purchase": 2}
_REQUEST_TYPES = ("view", "click", "add_to_cart", "purchase")
_N_COLS = 4  # clicks, carts, purchases, examinations
_EXAM = 3
_VALUE_COLS = ["c0", "c1", "c2", "c3"]
_KINDS = {"q": "query", "t": "term"}
_MIN_WEIGHT = 1e-3
#: Optional events column: True when the event's (query, request) was already counted (see
#: :func:`mark_counted_requests`).
REQUEST_COUNTED = "request_counted"
_SMALL_BATCH = 256  # add_events takes a plain-Python path up to this many events


def default_position_weights(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..n: the usual examination curve when none was estimated."""
    w: np.ndarray = 1.0 / np.log2(np.arange(1, n + 1) + 1.0)
    return w


# ------------------------------------------------------------------------------------------ storage


class _Key:
    """One key's counts: product -> row of ``counts`` ([clicks, carts, purchases, examinations]).

    Arrays grow by doubling and always keep at least one zero row after the ``n`` used ones. ``shared`` is set
    when a view holds the arrays; the next add copies them first, so a view stays a snapshot while the stats
    keep growing (copy on write).
    """

    __slots__ = ("counts", "n", "pos", "requests", "searches", "shared", "tot")

    def __init__(self) -> None:
        self.pos: dict[str, int] = {}
        self.counts = np.zeros((4, _N_COLS))
        self.n = 0
        self.searches = 0.0
        self.requests = 0.0
        self.tot = np.zeros(_N_COLS)
        self.shared = False

    def add(self, pids: Sequence[str], values: np.ndarray) -> None:
        pos = self.pos
        idx = np.fromiter((pos.setdefault(p, len(pos)) for p in pids), dtype=np.int64, count=len(pids))
        n_new = len(pos)
        if n_new >= len(self.counts) or self.shared:  # keep row n zero: views read it for absent products
            cap = max(len(self.counts), 4)
            while cap <= n_new:
                cap *= 2
            grown = np.zeros((cap, _N_COLS))
            grown[: self.n] = self.counts[: self.n]
            self.counts = grown
            self.shared = False
        self.n = n_new
        np.add.at(self.counts, idx, values)
        self.tot = self.tot + values.sum(axis=0)

    def exposure_total(self) -> float:
        return float(self.tot[_EXAM]) if self.searches > 0 else self.requests * self.n

    def copy(self) -> _Key:
        k = _Key()
        k.pos = dict(self.pos)
        k.counts = self.counts[: self.n + 1].copy()
        k.n, k.searches, k.requests, k.tot = self.n, self.searches, self.requests, self.tot.copy()
        return k


@dataclass(frozen=True)
class _KeyView:
    """A snapshot of one key: rows ``0..n-1`` of ``counts`` are its products, row ``n`` is zeros (absent
    products and those added after the snapshot read it)."""

    key: str
    pos: Mapping[str, int]
    counts: np.ndarray
    n: int
    searches: float
    requests: float

    def lookup(self, product_ids: Sequence[str]) -> np.ndarray:
        """Counts [n_candidates, 4] for the candidates (zeros for products without any)."""
        n = self.n
        idx = np.fromiter(map(self.pos.get, product_ids, repeat(n)), dtype=np.int64, count=len(product_ids))
        out: np.ndarray = self.counts[np.minimum(idx, n)]
        return out

    def rates(self, counts: np.ndarray, prior: np.ndarray, a: float) -> np.ndarray:
        """Smoothed click / cart / purchase rates [n, 3] from :meth:`lookup` counts (module docstring)."""
        events = counts[:, :3]
        exposure = counts[:, _EXAM : _EXAM + 1] if self.searches > 0 else np.full((len(counts), 1), self.requests)
        exposure = np.maximum(exposure, events)
        out: np.ndarray = (events + a * prior) / (exposure + a)
        return out


@dataclass(frozen=True)
class QueryStatsView:
    """What one request needs from :class:`QueryStats`: its exact query's and its terms' counts, and priors.

    ``exact`` is None when the query was never seen; ``terms`` holds only the query's terms that were seen.
    """

    query: str
    exact: _KeyView | None = None
    terms: tuple[_KeyView, ...] = ()
    prior_query: np.ndarray = field(default_factory=lambda: np.zeros(3))
    prior_term: np.ndarray = field(default_factory=lambda: np.zeros(3))
    smoothing: float = 10.0

    @property
    def is_empty(self) -> bool:
        return self.exact is None and not self.terms

    def exact_rates(self, product_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(rates [n, 3], raw clicks [n]) for the exact query, or None when it was never seen."""
        if self.exact is None:
            return None
        counts = self.exact.lookup(product_ids)
        return self.exact.rates(counts, self.prior_query, self.smoothing), counts[:, 0]

    def engaged(self, k: int, exclude: Iterable[str] = ()) -> list[str]:
        """Up to ``k`` products engaged after this query, best first: the behavioural candidates of a search.

        Engagement is clicks + carts + purchases (each event once, as training's candidate lists count them).
        Products engaged after the exact query come first, by engagement; then those engaged after its terms,
        by engagement summed over the terms (a product seen under "trail runner" helps "trail shoes"). Ties
        break by product id, so the list is deterministic. ``exclude`` (e.g. the engine's window) is skipped.
        """
        if k <= 0:
            return []
        skip = set(exclude)
        out: list[str] = []

        def ranked(views: Sequence[_KeyView]) -> list[str]:
            total: dict[str, float] = {}
            for kv in views:
                events = kv.counts[: kv.n, :3].sum(axis=1)
                for pid, row in kv.pos.items():
                    if row < kv.n and events[row] > 0:
                        total[pid] = total.get(pid, 0.0) + float(events[row])
            return [p for p, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))]

        for group in ((self.exact,) if self.exact is not None else (), self.terms):
            for pid in ranked(group):
                if pid not in skip:
                    skip.add(pid)
                    out.append(pid)
                    if len(out) >= k:
                        return out
        return out

    def term_rates(self, product_ids: Sequence[str]) -> np.ndarray | None:
        """Rates [n, 3] averaged over the query's seen terms, or None when no term was seen."""
        if not self.terms:
            return None
        total = np.zeros((len(product_ids), 3))
        for kv in self.terms:
            total += kv.rates(kv.lookup(product_ids), self.prior_term, self.smoothing)
        out: np.ndarray = total / len(self.terms)
        return out


# ------------------------------------------------------------------------------------------ the stats


class QueryStats:
    """Engagement counts per (query, product) and (term, product); see the module docstring."""

    def __init__(self, smoothing: float = 10.0) -> None:
        if not smoothing > 0:
            raise ValueError(f"smoothing {smoothing!r} must be > 0 (pseudo-examinations)")
        self.smoothing = float(smoothing)
        self._tables: dict[str, dict[str, _Key]] = {"q": {}, "t": {}}
        self._priors: dict[str, np.ndarray] | None = None
        # running prior sums (see track_sums): per table the sums and each key's part in them, and the keys
        # changed since they were last brought up to date
        self._running: dict[str, tuple[np.ndarray, float, dict[str, tuple[np.ndarray, float]]]] | None = None
        self._dirty: dict[str, set[str]] = {"q": set(), "t": set()}

    def track_sums(self) -> QueryStats:
        """Keep the priors' sums up to date by the keys each add touches, instead of summing every key again on
        the next :meth:`priors` (point-in-time training reads priors after every search's few events). Equal to
        the full sums up to float rounding. Returns ``self``."""
        self._running = {}
        for kind, table in self._tables.items():
            parts = {key: (k.tot[:3].copy(), k.exposure_total()) for key, k in table.items()}
            num = np.zeros(3)
            den = 0.0
            for a, b in parts.values():
                num += a
                den += b
            self._running[kind] = (num, den, parts)
        self._dirty = {"q": set(), "t": set()}
        return self

    # --- reading --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of keys (queries + terms)."""
        return sum(len(t) for t in self._tables.values())

    @property
    def queries(self) -> list[str]:
        return sorted(self._tables["q"])

    def doc_ids(self) -> list[str]:
        """The ids of :meth:`to_docs` (``q:<query>``, ``t:<term>``) in the same order, without building docs."""
        return [f"{kind}:{key}" for kind in ("q", "t") for key in sorted(self._tables[kind])]

    def prior_sums(self) -> dict[str, tuple[np.ndarray, float]]:
        """Per table (``q``, ``t``) the two sums behind :meth:`priors`: summed click / cart / purchase counts
        [3] and summed exposure. Both are sums over keys, so a store can keep them up to date by subtracting
        the old contribution of the keys it rewrites and adding their new one."""
        out: dict[str, tuple[np.ndarray, float]] = {}
        if self._running is not None:
            for kind, table in self._tables.items():
                num, den, parts = self._running[kind]
                num = num.copy()
                for key in self._dirty[kind]:
                    old = parts.get(key)
                    if old is not None:
                        num -= old[0]
                        den -= old[1]
                    k = table[key]
                    new = (k.tot[:3].copy(), k.exposure_total())
                    num += new[0]
                    den += new[1]
                    parts[key] = new
                self._running[kind] = (num, den, parts)
                self._dirty[kind] = set()
                out[kind] = (num.copy(), den)
            return out
        for kind, table in self._tables.items():
            num = np.zeros(3)
            den = 0.0
            for k in table.values():
                num += k.tot[:3]
                den += k.exposure_total()
            out[kind] = (num, den)
        return out

    @staticmethod
    def priors_from_sums(sums: Mapping[str, tuple[Any, float]]) -> dict[str, np.ndarray]:
        """:meth:`priors` from :meth:`prior_sums` (kept in a store instead of recomputed from every key)."""
        out: dict[str, np.ndarray] = {}
        for kind in ("q", "t"):
            num_raw, den = sums.get(kind, (np.zeros(3), 0.0))
            num = np.asarray(num_raw, dtype=np.float64)
            out[kind] = np.minimum(num / den, 1.0) if den > 0 else np.zeros(3)
        return out

    def priors(self) -> dict[str, np.ndarray]:
        """Per table (``q``, ``t``) the exposure-weighted mean click / cart / purchase rate (cached)."""
        if self._priors is None:
            self._priors = self.priors_from_sums(self.prior_sums())
        return self._priors

    def view(self, query_norm: str, *, priors: Mapping[str, np.ndarray] | None = None) -> QueryStatsView:
        """The counts one request needs (empty for an unseen query with unseen terms).

        ``priors`` (``{"q": [3], "t": [3]}``) replaces this object's own :meth:`priors`: a store that loads
        only one request's keys passes the priors of the whole table.
        """
        query = normalize_query(query_norm or "")
        if priors is None:
            priors = self.priors()
        else:
            priors = {kind: np.asarray(priors[kind], dtype=np.float64) for kind in ("q", "t")}
        exact = self._key_view("q", query) if query else None
        seen = tuple(kv for kv in (self._key_view("t", t) for t in terms(query)) if kv is not None)
        return QueryStatsView(query, exact, seen, priors["q"], priors["t"], self.smoothing)

    def _key_view(self, kind: str, key: str) -> _KeyView | None:
        k = self._tables[kind].get(key)
        if k is None:
            return None
        k.shared = True
        return _KeyView(key, k.pos, k.counts, k.n, k.searches, k.requests)

    def counts(self, query_norm: str, product_id: str) -> dict[str, float]:
        """Raw counts of one (query, product) pair (zeros when unseen): for reports and tests."""
        k = self._tables["q"].get(normalize_query(query_norm))
        row = k.counts[k.pos[product_id]] if k is not None and product_id in k.pos else np.zeros(_N_COLS)
        return dict(zip(("clicks", "carts", "purchases", "examinations"), row.tolist(), strict=True))

    # --- adding ---------------------------------------------------------------------------------------
    def add_events(self, events: pd.DataFrame) -> QueryStats:
        """Count clicks / carts / purchases of events with a query (an events_frame; other events are ignored).

        Returns ``self`` (so ``QueryStats().add_events(ev)`` reads naturally).
        """
        if len(events) == 0:
            return self
        if len(events) <= _SMALL_BATCH:
            self._add_event_rows(events)
            return self
        frame = _request_frame(events)
        if frame is None or frame.empty:
            return self
        # searches seen in events: distinct request ids, plus one per event without an id; an event whose
        # (query, request) an earlier add already counted (column ``request_counted``) adds no request
        no_rid = frame["rid"].isna()
        new_rid = ~no_rid & ~frame["counted"]
        requests = frame[new_rid].groupby("key")["rid"].nunique().add(frame[no_rid].groupby("key").size(), fill_value=0)
        col = frame["type"].map(_EVENT_COL)
        engaged = frame[col.notna()]
        values = np.zeros((len(engaged), _N_COLS))
        values[np.arange(len(engaged)), col[col.notna()].astype(int).to_numpy()] = 1.0
        pairs = pd.DataFrame({"key": engaged["key"].to_numpy(), "pid": engaged["pid"].astype(str).to_numpy()})
        pairs[_VALUE_COLS] = values
        self._add(pairs, searches=None, requests=requests)
        return self

    def _add_event_rows(self, events: pd.DataFrame) -> None:
        """:meth:`add_events` for a few events in plain Python (the pandas path costs milliseconds per call,
        which point-in-time training pays once per search). Same counts exactly: they are whole numbers."""
        if "query_norm" in events.columns:
            qn = events["query_norm"].tolist()
        elif "query" in events.columns:
            qn = events["query"].tolist()
        else:
            return
        n = len(qn)
        rids = events["request_id"].tolist() if "request_id" in events.columns else [None] * n
        counted = events[REQUEST_COUNTED].tolist() if REQUEST_COUNTED in events.columns else [False] * n
        values: dict[str, dict[str, np.ndarray]] = {}
        seen_rids: dict[str, set[Any]] = {}
        loose: dict[str, int] = {}
        for q, pid, typ, rid, done in zip(
            qn, events["product_id"].tolist(), events["type"].tolist(), rids, counted, strict=True
        ):
            key = normalize_query(q) if isinstance(q, str) else ""
            if key == "" or pid is None or pid is pd.NA or (isinstance(pid, float) and np.isnan(pid)):
                continue
            if typ not in _REQUEST_TYPES:
                continue
            if rid is None or rid is pd.NA or (isinstance(rid, float) and np.isnan(rid)):
                loose[key] = loose.get(key, 0) + 1
            elif not (done is True or (isinstance(done, (bool, np.bool_)) and bool(done))):
                seen_rids.setdefault(key, set()).add(rid)
            col = _EVENT_COL.get(typ)
            if col is not None:
                row = values.setdefault(key, {}).setdefault(str(pid), np.zeros(_N_COLS))
                row[col] += 1.0
        requests: dict[str, float] = {}
        for key, ids in seen_rids.items():
            requests[key] = requests.get(key, 0.0) + len(ids)
        for key, count in loose.items():
            requests[key] = requests.get(key, 0.0) + count
        keys = sorted(set(values) | set(requests))
        if not keys:
            return
        t_values: dict[str, dict[str, np.ndarray]] = {}
        t_requests: dict[str, float] = {}
        for key in keys:
            for t in terms(key):
                if key in values:
                    per = t_values.setdefault(t, {})
                    for pid, row in values[key].items():
                        if pid in per:
                            per[pid] = per[pid] + row
                        else:
                            per[pid] = row.copy()
                if key in requests:
                    t_requests[t] = t_requests.get(t, 0.0) + requests[key]
        for kind, vals, reqs in (("q", values, requests), ("t", t_values, t_requests)):
            table = self._tables[kind]
            if self._running is not None:
                self._dirty[kind].update(vals, reqs)
            for key in sorted(set(vals) | set(reqs)):
                k = table.get(key)
                if k is None:
                    k = table[key] = _Key()
                rows_of = vals.get(key)
                if rows_of:
                    pids = sorted(rows_of)
                    k.add(pids, np.vstack([rows_of[p] for p in pids]))
                if key in reqs:
                    k.requests += reqs[key]
        self._priors = None

    def add_impressions(self, impressions: pd.DataFrame, position_weights: np.ndarray | None = None) -> QueryStats:
        """Add position-weighted examinations and search counts from logged result lists.

        ``impressions``: columns ``query`` and ``product_ids`` (the list shown, rank = index + 1); other
        columns (request_id, user_id, timestamp) are not needed here: the caller selects the time window.
        Ranks beyond ``position_weights`` use its last weight. A search that showed nothing (an empty list) adds
        nothing, not even to ``searches`` (module doc). Returns ``self``.
        """
        if len(impressions) == 0:
            return self
        queries = [normalize_query(q) if isinstance(q, str) else "" for q in impressions["query"].tolist()]
        lists = [_as_list(v) for v in impressions["product_ids"].tolist()]
        keep = [i for i, q in enumerate(queries) if q and lists[i]]
        if not keep:
            return self
        queries = [queries[i] for i in keep]
        lists = [lists[i] for i in keep]
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        longest = int(lengths.max()) if len(lengths) else 0
        weights = (
            default_position_weights(max(longest, 1))
            if position_weights is None
            else np.asarray(position_weights, dtype=np.float64)
        )
        if len(weights) == 0:
            raise ValueError("position_weights is empty")
        if len(queries) <= _SMALL_BATCH:
            self._add_impression_rows(queries, lists, weights)
            return self
        ranks = np.concatenate([np.arange(n) for n in lengths]) if longest else np.zeros(0, dtype=np.int64)
        w = weights[np.minimum(ranks, len(weights) - 1)]
        pairs = pd.DataFrame(
            {
                "key": np.repeat(np.asarray(queries, dtype=object), lengths),
                "pid": np.asarray([str(p) for x in lists for p in x], dtype=object),
            }
        )
        pairs[_VALUE_COLS] = np.zeros((len(pairs), _N_COLS))
        pairs["c3"] = w
        searches = pd.Series(queries, dtype=object).value_counts()
        self._add(pairs, searches=searches, requests=None)
        return self

    def _add_impression_rows(self, queries: list[str], lists: list[list[Any]], weights: np.ndarray) -> None:
        """:meth:`add_impressions` for a few logged searches in plain Python (see :meth:`_add_event_rows`);
        examinations equal the pandas path's up to float rounding."""
        last = len(weights) - 1
        exams: dict[str, dict[str, float]] = {}
        searches: dict[str, float] = {}
        for key, shown in zip(queries, lists, strict=True):
            per = exams.setdefault(key, {})
            for rank, pid in enumerate(shown):
                p = str(pid)
                per[p] = per.get(p, 0.0) + float(weights[min(rank, last)])
            searches[key] = searches.get(key, 0.0) + 1.0
        t_exams: dict[str, dict[str, float]] = {}
        t_searches: dict[str, float] = {}
        for key in sorted(searches):
            for t in terms(key):
                per = t_exams.setdefault(t, {})
                for p, w in exams[key].items():
                    per[p] = per.get(p, 0.0) + w
                t_searches[t] = t_searches.get(t, 0.0) + searches[key]
        for kind, vals, counts in (("q", exams, searches), ("t", t_exams, t_searches)):
            table = self._tables[kind]
            if self._running is not None:
                self._dirty[kind].update(counts)
            for key in sorted(counts):
                k = table.get(key)
                if k is None:
                    k = table[key] = _Key()
                rows_of = vals.get(key)
                if rows_of:
                    pids = sorted(rows_of)
                    values = np.zeros((len(pids), _N_COLS))
                    values[:, _EXAM] = [rows_of[p] for p in pids]
                    k.add(pids, values)
                k.searches += counts[key]
        self._priors = None

    def _add(self, pairs: pd.DataFrame, searches: pd.Series | None, requests: pd.Series | None) -> None:
        """Add per-query pair values and per-query search/request counts, then the same expanded to terms."""
        agg = pairs.groupby(["key", "pid"], sort=True)[_VALUE_COLS].sum() if len(pairs) else None
        self._apply("q", agg, searches, requests)
        # terms: every (query, product) sum goes to each distinct term of the query
        keys = set(agg.index.get_level_values(0)) if agg is not None else set()
        for s in (searches, requests):
            if s is not None:
                keys.update(s.index)
        qmap = pd.DataFrame(
            [(q, t) for q in sorted(keys) for t in terms(q)], columns=["key", "term"], dtype=object
        ).set_index("key")
        t_agg = None
        if agg is not None and len(qmap):
            flat = agg.reset_index().join(qmap, on="key", how="inner")
            t_agg = flat.groupby(["term", "pid"], sort=True)[_VALUE_COLS].sum()
        t_s = _expand_counts(searches, qmap)
        t_r = _expand_counts(requests, qmap)
        self._apply("t", t_agg, t_s, t_r)
        self._priors = None

    def _apply(
        self, kind: str, agg: pd.DataFrame | None, searches: pd.Series | None, requests: pd.Series | None
    ) -> None:
        table = self._tables[kind]
        if self._running is not None:
            dirty = self._dirty[kind]
            if agg is not None and len(agg):
                dirty.update(str(x) for x in agg.index.get_level_values(0).unique())
            for series in (searches, requests):
                if series is not None:
                    dirty.update(str(x) for x in series.index)
        if agg is not None and len(agg):
            keys = agg.index.get_level_values(0).to_numpy()
            pids = agg.index.get_level_values(1).to_numpy()
            vals = agg.to_numpy(dtype=np.float64)
            bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
                key = str(keys[a])
                k = table.get(key)
                if k is None:
                    k = table[key] = _Key()
                k.add(pids[a:b].tolist(), vals[a:b])
        for series, attr in ((searches, "searches"), (requests, "requests")):
            if series is None:
                continue
            for raw_key, value in series.items():
                key = str(raw_key)
                k = table.get(key)
                if k is None:
                    k = table[key] = _Key()
                setattr(k, attr, getattr(k, attr) + float(value))

    # --- combining and storing ------------------------------------------------------------------------
    def merge(self, other: QueryStats) -> QueryStats:
        """Add ``other``'s counts to these (in place; returns ``self``). Smoothing stays this object's."""
        for kind, table in other._tables.items():
            mine = self._tables[kind]
            for key, src in table.items():
                k = mine.get(key)
                if k is None:
                    k = mine[key] = _Key()
                if src.n:
                    k.add(list(src.pos), src.counts[: src.n])
                k.searches += src.searches
                k.requests += src.requests
                if self._running is not None:
                    self._dirty[kind].add(key)
        self._priors = None
        return self

    def copy(self) -> QueryStats:
        """An independent copy (adding to one never changes the other)."""
        out = QueryStats(self.smoothing)
        out._tables = {kind: {key: k.copy() for key, k in t.items()} for kind, t in self._tables.items()}
        return out

    def to_docs(self) -> Iterable[dict[str, Any]]:
        """One JSON-serialisable doc per key, sorted by id; products sorted, counts as parallel arrays.

        Ids are ``q:<query>`` and ``t:<term>``: the document id in the stats index, so re-writing a key
        replaces it.
        """
        for kind in ("q", "t"):
            table = self._tables[kind]
            for key in sorted(table):
                k = table[key]
                order = sorted(range(k.n), key=list(k.pos).__getitem__)
                pids = list(k.pos)
                c = k.counts[: k.n]
                yield {
                    "id": f"{kind}:{key}",
                    "kind": _KINDS[kind],
                    "key": key,
                    "searches": float(k.searches),
                    "requests": float(k.requests),
                    "product_ids": [pids[i] for i in order],
                    "clicks": [round(c[i, 0]) for i in order],
                    "carts": [round(c[i, 1]) for i in order],
                    "purchases": [round(c[i, 2]) for i in order],
                    "examinations": [float(c[i, 3]) for i in order],
                }

    @classmethod
    def from_docs(cls, docs: Iterable[Mapping[str, Any]], smoothing: float = 10.0) -> QueryStats:
        """Inverse of :meth:`to_docs` (docs of the same key are added together)."""
        out = cls(smoothing)
        for doc in docs:
            kind, _, key = str(doc["id"]).partition(":")
            if kind not in out._tables:
                raise ValueError(f"query stats doc id {doc['id']!r} must start with 'q:' or 't:'")
            table = out._tables[kind]
            k = table.get(key)
            if k is None:
                k = table[key] = _Key()
            pids = [str(p) for p in doc.get("product_ids") or []]
            if pids:
                vals = np.column_stack(
                    [
                        np.asarray(doc[name], dtype=np.float64)
                        for name in ("clicks", "carts", "purchases", "examinations")
                    ]
                )
                k.add(pids, vals)
            k.searches += float(doc.get("searches") or 0.0)
            k.requests += float(doc.get("requests") or 0.0)
        return out


def _request_frame(events: pd.DataFrame) -> pd.DataFrame | None:
    """The events :meth:`QueryStats.add_events` counts (key, pid, type, rid, counted), indexed like ``events``;
    None when the frame has no query column."""
    if "query_norm" in events.columns:
        qn = events["query_norm"]
    elif "query" in events.columns:
        qn = events["query"]
    else:
        return None
    queries = [normalize_query(q) if isinstance(q, str) else "" for q in qn.tolist()]
    frame = pd.DataFrame(
        {
            "key": pd.Series(queries, dtype=object, index=events.index),
            "pid": events["product_id"].astype(object),
            "type": events["type"].astype(object),
            "rid": events["request_id"].astype(object)
            if "request_id" in events.columns
            else pd.Series(None, index=events.index, dtype=object),
            "counted": events[REQUEST_COUNTED].fillna(False).astype(bool)
            if REQUEST_COUNTED in events.columns
            else pd.Series(False, index=events.index, dtype=bool),
        }
    )
    return frame[(frame["key"] != "") & frame["pid"].notna() & frame["type"].isin(_REQUEST_TYPES)]


def mark_counted_requests(events: pd.DataFrame) -> pd.DataFrame:
    """``events`` (sorted by time) with the column ``request_counted``: True where an earlier event of the
    frame has the same normalised query and request id, so that request is already counted.

    ``requests`` (distinct request ids per query) is the one count that is not a plain sum: a request whose
    events straddle two :meth:`QueryStats.add_events` calls would count once per call. Adding the events of
    this frame in any split by time (training's point-in-time snapshots) with this column counts each
    request once, at its first event: the same ``requests`` as one add of everything (a rebuild).
    """
    out = events.copy()
    out[REQUEST_COUNTED] = False
    frame = _request_frame(events)
    if frame is not None and not frame.empty:
        with_rid = frame[frame["rid"].notna()]
        dup = with_rid.duplicated(["key", "rid"], keep="first")
        out.loc[dup[dup].index, REQUEST_COUNTED] = True
    return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, float) and np.isnan(value):
        return []
    return [p for p in list(value) if p is not None]


def _expand_counts(series: pd.Series | None, qmap: pd.DataFrame) -> pd.Series | None:
    """Per-query counts summed onto each term of the query."""
    if series is None or len(series) == 0 or len(qmap) == 0:
        return None
    frame = qmap.join(series.rename("n"), how="inner")
    grouped: pd.Series = frame.groupby("term")["n"].sum()
    return grouped


# ------------------------------------------------------------------------------------------ position bias


def estimate_position_weights(events: pd.DataFrame, impressions: pd.DataFrame) -> np.ndarray:
    """Relative examination by rank: click-through at rank ``r`` over rank 1, made non-increasing.

    Clicks carry their ``position``; the denominator at rank ``r`` is the number of logged lists at least
    ``r`` long (only clicks of logged requests count when both frames have ``request_id``). The raw curve
    is fitted with a decreasing isotonic regression weighted by those list counts, so sparse deep ranks
    cannot make it rise. Top results are also more relevant, so this over-states the drop a little: a
    conservative debiasing. Falls back to :func:`default_position_weights` without clicks at rank 1.
    """
    lists = [_as_list(v) for v in impressions["product_ids"].tolist()] if len(impressions) else []
    longest = max((len(x) for x in lists), default=0)
    if longest == 0:
        return default_position_weights(1)
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    shown = np.bincount(lengths, minlength=longest + 1)[::-1].cumsum()[::-1][1:].astype(np.float64)
    clicks_ev = events[events["type"] == "click"] if len(events) else events
    if "request_id" in clicks_ev.columns and "request_id" in impressions.columns:
        logged = set(impressions["request_id"].dropna().tolist())
        clicks_ev = clicks_ev[clicks_ev["request_id"].isin(logged)]
    pos = pd.to_numeric(clicks_ev["position"], errors="coerce").dropna().to_numpy(dtype=np.int64)
    pos = pos[(pos >= 1) & (pos <= longest)]
    clicks = np.bincount(pos - 1, minlength=longest).astype(np.float64)
    if clicks[0] <= 0:
        return default_position_weights(longest)
    ctr = clicks / shown
    ranks = np.arange(1, longest + 1, dtype=np.float64)
    fitted = IsotonicRegression(increasing=False).fit(ranks, ctr, sample_weight=shown).predict(ranks)
    if fitted[0] <= 0:
        return default_position_weights(longest)
    out: np.ndarray = np.clip(fitted / fitted[0], _MIN_WEIGHT, 1.0)
    return out
