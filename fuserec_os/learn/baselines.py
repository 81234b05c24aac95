"""Honest baselines for the reranker: what it has to beat before it is worth a network hop.

Each function returns a float64 score array over the same candidate rows as the evaluation (higher = ranked
higher; :mod:`fuserec_os.learn.evaluate` breaks remaining ties by row order, i.e. the logged shown order).
Rows are never grouped here: orderings that need several keys are encoded as *dense ranks* over all rows
(equal keys -> equal score), which orders every search exactly as the keys do because a search's rows keep
their relative order in any global sort. Pooled AUC over such scores is then the AUC of the keys' order.

* :func:`engine_scores`: what the engine (BM25) returned: the "do nothing" baseline every delta is against;
* :func:`popularity_scores`: global bestsellers, the classic strong non-personal baseline (fed the catalog's
  ``popularity``, which a real shop often lacks: then it is the shown order);
* :func:`behaviour_popularity_scores`: bestsellers learned from behaviour, every shopper's decayed clicks, carts and
  purchases before the search (:class:`~fuserec_os.profiles.item_signals.ItemSignals`), a real popularity baseline
  on any log;
* :func:`query_popularity_scores`: past engagement after the same normalised query ("people who searched this
  bought that"), what a click-model / query-stats boost gives without any learning;
* :func:`latent_scores`: the user's matrix-factorisation affinity alone (personal, no text relevance);
* :func:`hgb_reranker`: a gradient-boosted tree model on the same features, the kind the OpenSearch LTR plugin
  runs, so the MLP has to beat the off-the-shelf alternative and not only heuristics;
* :func:`oracle_scores`: the true utility, the upper bound for captured-gain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "behaviour_popularity_scores",
    "dense_rank_scores",
    "engine_scores",
    "hgb_reranker",
    "latent_scores",
    "oracle_scores",
    "popularity_scores",
    "query_popularity_scores",
]


def _float_array(values: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array over candidate rows, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} must have {n} entries (one per row), got {arr.size}")
    return arr


def dense_rank_scores(*keys: np.ndarray) -> np.ndarray:
    """Scores whose order is lexicographic over ``keys`` (first key primary, each higher = better).

    Equal key tuples get equal scores (so the evaluator's row-order tie-break applies, and AUC sees the tie);
    the values are ``0 .. n_distinct - 1``. ``-inf`` is the lowest value of a key; NaN is not allowed (callers map
    "missing" to an explicit place first, which is the point of each baseline's docstring).
    """
    if not keys:
        raise ValueError("dense_rank_scores needs at least one key")
    n = keys[0].size
    for key in keys:
        if key.shape != (n,):
            raise ValueError("every key must be a 1-d array of the same length")
        if np.isnan(key).any():
            raise ValueError("keys must not contain NaN; map missing values to -inf first")
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    order = np.lexsort(tuple(reversed(keys)))  # ascending; lexsort's last key is primary
    changed = np.zeros(n, dtype=bool)
    for key in keys:
        ks = key[order]
        changed[1:] |= ks[1:] != ks[:-1]
    rank_sorted = np.cumsum(changed).astype(np.float64)
    out = np.empty(n, dtype=np.float64)
    out[order] = rank_sorted
    return out


def _desc(values: np.ndarray) -> np.ndarray:
    """Higher is better; missing (NaN) goes to the bottom."""
    return np.where(np.isnan(values), -np.inf, values)


def _asc(ranks: np.ndarray) -> np.ndarray:
    """Lower rank is better; missing (NaN) goes to the bottom."""
    return np.where(np.isnan(ranks), -np.inf, -ranks)


def engine_scores(engine_score: Any, engine_rank: Any, shown_rank: Any) -> np.ndarray:
    """The engine's (BM25) order: by engine score; candidates without one after all that have one.

    Keys, in order: has an engine score, the engine score, the engine rank (the engine's own tie-break for equal
    scores), then the shown rank. Behavioural candidates (no engine score) therefore follow the text hits in the
    order they were shown; rows missing everything come last, in row order.
    """
    s = _float_array(engine_score, "engine_score")
    er = _float_array(engine_rank, "engine_rank", s.size)
    sr = _float_array(shown_rank, "shown_rank", s.size)
    has = (~np.isnan(s)).astype(np.float64)
    return dense_rank_scores(has, _desc(s), _asc(er), _asc(sr))


def popularity_scores(item_popularity: Any) -> np.ndarray:
    """Global popularity of the item (any monotone measure, e.g. past purchases); missing counts as none (0).

    Ties (e.g. items never bought) keep the shown order through the evaluator's tie-break.
    """
    p = _float_array(item_popularity, "item_popularity")
    return np.where(np.isnan(p), 0.0, p)


def behaviour_popularity_scores(engagement: Any, engine: Any) -> np.ndarray:
    """The item's engagement by every shopper before the search, ties broken by the engine order.

    ``engagement``: decayed clicks + 2 add-to-carts + 3 purchases (the label grades) at the search's time, the
    dataset's ``item_engagement`` column; missing (NaN) counts as none. ``engine`` (:func:`engine_scores`) only
    breaks ties, so products nobody engaged with keep the engine's order, and a log without engagement gives
    exactly the engine baseline.
    """
    g = _float_array(engagement, "engagement")
    e = _float_array(engine, "engine", g.size)
    return dense_rank_scores(np.nan_to_num(g, nan=0.0), _desc(e))


def query_popularity_scores(
    query_clicks: Any, query_purchases: Any, engine: Any, *, purchase_weight: float = 3.0
) -> np.ndarray:
    """Past engagement with the item after the same normalised query, ties broken by the engine order.

    Engagement is ``clicks + purchase_weight * purchases`` (3 = the purchase label grade against a click's 1,
    so the heuristic values outcomes as the metric does). Missing counts are 0: the pair was never engaged.
    ``engine`` is the engine baseline's scores (:func:`engine_scores`), used only to break ties, so with no
    history at all this baseline *is* the engine order rather than a random one.
    """
    c = _float_array(query_clicks, "query_clicks")
    p = _float_array(query_purchases, "query_purchases", c.size)
    e = _float_array(engine, "engine", c.size)
    engagement = np.nan_to_num(c, nan=0.0) + purchase_weight * np.nan_to_num(p, nan=0.0)
    return dense_rank_scores(engagement, _desc(e))


def latent_scores(latent_dot: Any, engine: Any | None = None) -> np.ndarray:
    """The user-item latent affinity ``u . v``; rows without one (no profile vector, unseen item) at the bottom.

    Missing goes below every real affinity (an equivalent of ``-inf``) rather than to 0, because a dot product of
    0 is a real, average-ish value; ties (including all missing rows) follow ``engine`` when given.
    """
    d = _float_array(latent_dot, "latent_dot")
    keys = [(~np.isnan(d)).astype(np.float64), _desc(d)]
    if engine is not None:
        keys.append(_desc(_float_array(engine, "engine", d.size)))
    return dense_rank_scores(*keys)


def hgb_reranker(X_train: Any, y_train: Any, X_eval: Any, seed: int = 0, *, max_iter: int = 200) -> np.ndarray:
    """Fit a histogram gradient-boosted *regressor* on the graded labels and score ``X_eval``.

    Why a regressor on the grades rather than a classifier on ``y > 0``: squared loss on 0..3 estimates the
    expected grade, which keeps what NDCG rewards (a purchase is worth more than a click); a click/no-click
    classifier would rank a likely click above a likely purchase. It is also how pointwise LTR models for the
    OpenSearch LTR plugin are commonly trained. Early stopping is off (its validation split is random) and
    ``random_state`` is fixed, so the same data gives the same scores. NaN features are fine (HGB routes
    missing values itself). ``max_iter`` (boosting rounds) is exposed only so tests can stay fast.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    X_tr = np.asarray(X_train, dtype=np.float64)
    y_tr = np.asarray(y_train, dtype=np.float64)
    X_ev = np.asarray(X_eval, dtype=np.float64)
    if X_tr.ndim != 2 or X_ev.ndim != 2 or X_tr.shape[1] != X_ev.shape[1]:
        raise ValueError(f"X_train and X_eval must be 2-d with the same columns, got {X_tr.shape} and {X_ev.shape}")
    if y_tr.shape != (X_tr.shape[0],):
        raise ValueError(f"y_train must have one label per training row ({X_tr.shape[0]}), got {y_tr.shape}")
    model = HistGradientBoostingRegressor(
        loss="squared_error",
        learning_rate=0.1,
        max_iter=max_iter,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    # One OpenMP thread: with anything else busy on a small machine, OpenMP's spin-waiting threads stall each
    # other (measured on 2 cores under load: 198 s with the default threads vs 3.9 s with one, 42,888 x 66 rows)
    with threadpool_limits(1, user_api="openmp"):
        model.fit(X_tr, y_tr)
        return np.asarray(model.predict(X_ev), dtype=np.float64)


def oracle_scores(utilities: Any) -> np.ndarray:
    """The true utility of each row (e.g. the label, or the simulator's latent utility): the best possible order.

    Ties among equal utilities keep the row order, the same as any method's, so the oracle is not flattered.
    """
    u = _float_array(utilities, "utilities")
    if np.isnan(u).any():
        raise ValueError("utilities must be known for every row (the oracle has no missing values)")
    return u.copy()
