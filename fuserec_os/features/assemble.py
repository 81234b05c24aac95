"""Feature assembly for one search: the same function builds training rows offline and scoring rows online.

Why one function: a model is only as good as the agreement between the features it was trained on and the
features it is served. The dataset builder calls :func:`assemble` per logged search with a profile built as of
the search's day and a :class:`~fuserec_os.profiles.query_stats.QueryStatsView` of that day's snapshot (and
the :class:`~fuserec_os.profiles.item_signals.ItemSignals` advanced to the search); the proxy calls it per
request with the profile document read from the cluster (and its in-memory copy of the stored item signals).
Nothing here reads a clock, a file or the engine: ``now`` comes in with the request.

Speed: everything per candidate is a NumPy gather from the precomputed
:class:`~fuserec_os.features.items.ItemTable` (unknown products go to its sentinel row); everything per user
(category/brand shares, the user's latent and interest vectors) is computed once per call. The only Python
work per candidate is the id -> row dict lookups.

Missing values: each base feature has a value column (0.0 where missing) and, when it can be missing, a
``<name>__missing`` column (1.0 = missing); non-finite values are treated as missing, never passed on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from fuserec_os.behaviour.events import normalize_query
from fuserec_os.features.items import ItemTable
from fuserec_os.features.spec import FEATURES, FeatureSet
from fuserec_os.profiles.compute import UserProfile, to_utc
from fuserec_os.profiles.item_signals import ItemSignals
from fuserec_os.profiles.query_stats import QueryStatsView
from fuserec_os.text import terms

__all__ = ["Candidates", "Features", "RequestContext", "assemble"]

_SECONDS_PER_DAY = 86_400.0
_NS_PER_DAY = 86_400 * 1_000_000_000
_RAGGED_MAX = 8_000  # stored tf-idf entries up to which a NumPy gather beats scipy's row indexing


@dataclass(frozen=True)
class Candidates:
    """One result list: product ids with engine score and rank (float, NaN where the engine had none).

    ``score_range``: (lowest, highest) engine score of the engine's top window the list was taken from, what
    ``bm25_norm`` scales by. Training passes the range of the engine's top ``engine_k`` and serving the range
    of its window, so a product gets the same ``bm25_norm`` whether the list is a logged page of 10 or a window
    of 100 (without it, the list's own scored candidates are used: a page of 10 would stretch to [0, 1]).
    """

    product_ids: Sequence[str]
    engine_scores: np.ndarray
    engine_ranks: np.ndarray
    score_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        n = len(self.product_ids)
        scores = np.asarray(self.engine_scores, dtype=np.float64).reshape(-1)
        ranks = np.asarray(self.engine_ranks, dtype=np.float64).reshape(-1)
        if len(scores) != n or len(ranks) != n:
            raise ValueError(f"{n} product ids but {len(scores)} engine scores and {len(ranks)} engine ranks")
        object.__setattr__(self, "engine_scores", scores)
        object.__setattr__(self, "engine_ranks", ranks)
        if self.score_range is not None:
            lo, hi = (float(x) for x in self.score_range)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"score_range {self.score_range!r} must be two finite numbers, lowest first")
            object.__setattr__(self, "score_range", (lo, hi))

    def __len__(self) -> int:
        return len(self.product_ids)


@dataclass(frozen=True)
class RequestContext:
    """Everything about the request that is not the candidates. ``user`` None: new or anonymous shopper.

    ``item_signals``: every product's behaviour signals holding the events (and logged searches) before ``now``
    (training: the accumulator advanced to the search; serving: the in-memory copy of the stored ones); None
    makes the ``item_*`` behaviour features missing.
    """

    query: str
    user: UserProfile | None
    now: pd.Timestamp
    stats: QueryStatsView | None = None
    item_signals: ItemSignals | None = None


@dataclass(frozen=True)
class Features:
    """``X`` float32 [n, len(names)]: values then missing indicators; ``missing`` bool [n, n_base]."""

    X: np.ndarray
    names: tuple[str, ...]
    missing: np.ndarray

    @property
    def n_base(self) -> int:
        return int(self.missing.shape[1])

    def column(self, name: str) -> np.ndarray:
        """One column by name (for tests and explanations)."""
        out: np.ndarray = self.X[:, self.names.index(name)]
        return out


_Values = dict[str, tuple[Any, Any]]  # name -> (values [n] or scalar, missing [n] or scalar)


class _Req:
    """Per-call state shared by the feature groups."""

    __slots__ = ("cands", "ctx", "items", "n", "now_ns", "rows")

    def __init__(self, items: ItemTable, ctx: RequestContext, cands: Candidates) -> None:
        self.items, self.ctx, self.cands = items, ctx, cands
        self.n = len(cands)
        self.rows = items.safe_rows(items.rows(cands.product_ids))
        self.now_ns = to_utc(ctx.now).value


def _ragged(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR rows ``rows``: (owner candidate of each stored entry, entry index into the CSR arrays)."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.cumsum(lengths) - lengths
    entry = np.arange(total) + np.repeat(starts - offsets, lengths)
    return owner, entry


# ------------------------------------------------------------------------------------------ groups


def _engine(r: _Req) -> _Values:
    s, ranks = r.cands.engine_scores, r.cands.engine_ranks
    no_s = np.isnan(s)
    norm = np.zeros(r.n)
    if not no_s.all():
        if r.cands.score_range is not None:
            lo, hi = r.cands.score_range
        else:
            scored = s[~no_s]
            lo, hi = float(scored.min()), float(scored.max())
        norm = (s - lo) / (hi - lo) if hi > lo else np.ones(r.n)  # all tie: all at the top
    with np.errstate(invalid="ignore"):
        rank = np.log1p(ranks)
    return {"bm25": (s, no_s), "bm25_norm": (norm, no_s), "engine_rank": (rank, np.isnan(ranks))}


def _title(r: _Req) -> _Values:
    items = r.items
    q_terms = terms(normalize_query(r.ctx.query or ""))
    if not q_terms:
        return {"title_term_share": (0.0, True)}
    vocab = items.title_vocab
    ids = [vocab[t] for t in q_terms if t in vocab]
    share = np.zeros(r.n)
    if ids:
        qmask = np.zeros(len(vocab), dtype=bool)
        qmask[ids] = True
        owner, entry = _ragged(items.title_indptr, r.rows)
        share = np.bincount(owner, weights=qmask[items.title_indices[entry]], minlength=r.n) / len(q_terms)
    return {"title_term_share": (share, ~items.has_title[r.rows])}


def _engagement(r: _Req) -> _Values:
    view = r.ctx.stats
    pids = r.cands.product_ids
    out: _Values = {}
    exact = view.exact_rates(pids) if view is not None else None
    if exact is None:
        for name in ("q_click_rate", "q_cart_rate", "q_purchase_rate", "q_log_clicks"):
            out[name] = (0.0, True)
    else:
        rates, clicks = exact
        out["q_click_rate"] = (rates[:, 0], False)
        out["q_cart_rate"] = (rates[:, 1], False)
        out["q_purchase_rate"] = (rates[:, 2], False)
        out["q_log_clicks"] = (np.log1p(clicks), False)
    term = view.term_rates(pids) if view is not None else None
    for j, name in enumerate(("qt_click_rate", "qt_cart_rate", "qt_purchase_rate")):
        out[name] = (0.0, True) if term is None else (term[:, j], False)
    return out


def _item(r: _Req) -> _Values:
    it, rows = r.items, r.rows
    now_s = r.now_ns / 1e9
    age = np.maximum((now_s - it.created_s[rows]) / _SECONDS_PER_DAY, 0.0)
    out: _Values = {
        "log_price": it.log_price[rows],
        "rating": it.rating[rows],
        "log_review_count": it.log_review_count[rows],
        "log_popularity": it.log_popularity[rows],
        "in_stock": it.in_stock[rows],
        "age_days": age,
    }
    return {k: (v, np.isnan(v)) for k, v in out.items()}


_SIGNALS = (
    "item_views",
    "item_clicks",
    "item_carts",
    "item_purchases",
    "item_ctr",
    "item_conversion",
    "item_rating_mean",
    "item_rating_count",
    "item_days_since",
    "item_trend",
)


def _behaviour(r: _Req) -> _Values:
    """The item signals (NaN values are missing: the assembly turns non-finite values into indicators)."""
    signals = r.ctx.item_signals
    if signals is None:
        return {n: (0.0, True) for n in _SIGNALS}
    items = r.items
    table_rows = signals.rows_for_table(items, items.product_ids_with_sentinel)
    v = signals.values(None, r.now_ns, rows=table_rows[r.rows])  # candidates by catalog row: no second lookup
    unknown = r.rows >= len(items)  # outside the catalog: missing, like every item feature
    counts = np.log1p(v.decayed)
    values = (
        *(counts[:, j] for j in range(4)),
        v.ctr,
        v.conversion,
        v.rating_mean,
        np.log1p(v.rating_count),
        v.days_since,
        v.trend,
    )
    return {n: (x, unknown) for n, x in zip(_SIGNALS, values, strict=True)}


def _user(r: _Req) -> _Values:
    u = r.ctx.user
    names = ("user_history", "user_views", "user_clicks", "user_carts", "user_purchases", "days_since_last_seen")
    if u is None:
        return {n: (0.0, True) for n in names}
    days = max((r.now_ns - u.last_seen.value) / _NS_PER_DAY, 0.0)
    return {
        "user_history": (float(np.log1p(u.n_events)), False),
        "user_views": (float(np.log1p(u.counts.get("view", 0))), False),
        "user_clicks": (float(np.log1p(u.counts.get("click", 0))), False),
        "user_carts": (float(np.log1p(u.counts.get("add_to_cart", 0))), False),
        "user_purchases": (float(np.log1p(u.counts.get("purchase", 0))), False),
        "days_since_last_seen": (days, False),
    }


def _affinity(r: _Req) -> _Values:
    u, it, rows = r.ctx.user, r.items, r.rows
    names = ("cat_affinity", "parent_cat_affinity", "brand_affinity", "price_vs_user")
    if u is None:
        return {n: (0.0, True) for n in names}
    out: _Values = {}
    # category shares as in UserProfile.top_categories: relative to the top-level total; slot -1 = no category
    shares = np.zeros(len(it.category_index) + 1)
    total = sum(w for c, w in u.categories.items() if " > " not in c)
    if total > 0:
        index = it.category_index
        for c, w in u.categories.items():
            code = index.get(c)
            if code is not None:
                shares[code] = w / total
    leaf = it.leaf[rows]
    anc = it.ancestors[rows]
    out["cat_affinity"] = (shares[leaf], (leaf < 0) | (total <= 0))
    out["parent_cat_affinity"] = (shares[anc].max(axis=1), (anc[:, 0] < 0) | (total <= 0))
    bshares = np.zeros(len(it.brand_index) + 1)
    btotal = sum(u.brands.values())
    if btotal > 0:
        bindex = it.brand_index
        for b, w in u.brands.items():
            code = bindex.get(b)
            if code is not None:
                bshares[code] = w / btotal
    brand = it.brand[rows]
    out["brand_affinity"] = (bshares[brand], (brand < 0) | (btotal <= 0))
    median = u.price.median if u.price is not None else np.nan
    price = it.price[rows]
    ok = (price > 0) & (median > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["price_vs_user"] = (np.log(price / median), ~ok)
    return out


def _latent(r: _Req) -> _Values:
    u, it = r.ctx.user, r.items
    if u is None or not u.items or len(it.vector_index) == 0:
        return {"latent_dot": (0.0, True)}
    vrows = np.fromiter(map(it.vector_index.get, u.items, repeat(-1)), dtype=np.int64, count=len(u.items))
    sel = vrows >= 0
    if not sel.any():
        return {"latent_dot": (0.0, True)}
    w = np.fromiter((s.w for s in u.items.values()), dtype=np.float64, count=len(u.items))
    vec = w[sel] @ it.vectors[vrows[sel]]  # u = sum_i w_i V_i over the engaged products with a vector
    norm = math.sqrt(float(vec @ vec))
    if not norm > 0:
        return {"latent_dot": (0.0, True)}
    iv = it.item_vector[r.rows]
    return {"latent_dot": (it.vectors[iv] @ (vec / norm), iv < 0)}


def _text(r: _Req) -> _Values:
    u, it = r.ctx.user, r.items
    if u is None or not u.interests:
        return {"text_similarity": (0.0, True)}
    index = it.term_index
    cols = [(index[t], w) for t, w in u.interests.items() if t in index]
    if not cols:
        return {"text_similarity": (0.0, True)}
    uvec = np.zeros(len(index))
    idx = np.array([c for c, _ in cols], dtype=np.int64)
    vals = np.array([w for _, w in cols], dtype=np.float64)
    uvec[idx] = vals
    norm = math.sqrt(float(vals @ vals))
    if not norm > 0:
        return {"text_similarity": (0.0, True)}
    m = it.tfidf
    if int(m.indptr[r.rows + 1].sum() - m.indptr[r.rows].sum()) <= _RAGGED_MAX:  # small: NumPy gather
        owner, entry = _ragged(m.indptr, r.rows)
        sim = np.bincount(owner, weights=m.data[entry] * uvec[m.indices[entry]], minlength=r.n) / norm
    else:  # large: scipy's row gather and mat-vec (C loops, but a fixed overhead of ~50 us)
        sim = np.asarray(m[r.rows] @ uvec).ravel() / norm
    return {"text_similarity": (sim, ~it.has_terms[r.rows])}


_HISTORY = (
    ("seen_before", None),
    ("clicked_before", "click"),
    ("carted_before", "add_to_cart"),
    ("bought_before", "purchase"),
)


def _history(r: _Req) -> _Values:
    u = r.ctx.user
    if u is None:
        return {n: (0.0, True) for n, _ in _HISTORY}
    get = u.items.get
    states = [get(p) for p in r.cands.product_ids]
    flags = np.zeros((r.n, len(_HISTORY)))
    for i, s in enumerate(states):
        if s is not None:
            counts = s.counts
            flags[i] = [1.0] + [1.0 if counts.get(t, 0) > 0 else 0.0 for _, t in _HISTORY[1:] if t is not None]
    return {n: (flags[:, j], False) for j, (n, _) in enumerate(_HISTORY)}


_GROUPS: tuple[tuple[Callable[[_Req], _Values], tuple[str, ...]], ...] = (
    (_engine, ("bm25", "bm25_norm", "engine_rank")),
    (_title, ("title_term_share",)),
    (
        _engagement,
        (
            "q_click_rate",
            "q_cart_rate",
            "q_purchase_rate",
            "qt_click_rate",
            "qt_cart_rate",
            "qt_purchase_rate",
            "q_log_clicks",
        ),
    ),
    (_item, ("log_price", "rating", "log_review_count", "log_popularity", "in_stock", "age_days")),
    (_behaviour, _SIGNALS),
    (
        _user,
        ("user_history", "user_views", "user_clicks", "user_carts", "user_purchases", "days_since_last_seen"),
    ),
    (_affinity, ("cat_affinity", "parent_cat_affinity", "brand_affinity", "price_vs_user")),
    (_latent, ("latent_dot",)),
    (_text, ("text_similarity",)),
    (_history, tuple(n for n, _ in _HISTORY)),
)
_GROUP_OF: dict[str, Callable[[_Req], _Values]] = {n: g for g, names in _GROUPS for n in names}
assert set(_GROUP_OF) == set(FEATURES), "every registered feature needs exactly one group"


def assemble(feature_set: FeatureSet, items: ItemTable, ctx: RequestContext, cands: Candidates) -> Features:
    """The feature matrix of one result list (see the module docstring for the contract)."""
    names = feature_set.names
    n, nb = len(cands), len(names)
    req = _Req(items, ctx, cands)
    got: _Values = {}
    for name in names:
        if name not in got:
            got.update(_GROUP_OF[name](req))
    values = np.empty((nb, n))  # feature-major while filling: contiguous row writes
    missing = np.empty((nb, n), dtype=bool)
    for j, name in enumerate(names):
        values[j], missing[j] = got[name]
    missing |= ~np.isfinite(values)
    values[missing] = 0.0
    X = np.empty((n, len(feature_set.columns)), dtype=np.float32)
    X[:, :nb] = values.T
    X[:, nb:] = missing[feature_set.missing_index].T
    return Features(X=X, names=feature_set.columns, missing=np.ascontiguousarray(missing.T))
