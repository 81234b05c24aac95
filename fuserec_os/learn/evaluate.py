"""Offline ranking metrics and a per-segment evaluation of several rankers over the same candidate rows.

Why this module exists: the reranker is only worth shipping if it beats honest baselines (engine order,
popularity, a gradient-boosted LTR model) on the searches we logged, and if it does so for the segments we
care about (anonymous vs heavy users, broad vs specific queries), not only on average.

Inputs
------
Everything is a flat array over *candidate rows*, aligned with :class:`fuserec_os.learn.dataset.Dataset`:

* ``labels``: graded ints (purchase 3, add_to_cart 2, click 1, shown 0);
* ``groups``: the search each row belongs to (ints; rows of a search need not be adjacent);
* ``scores``: one float array per method, *higher ranks higher*. Ties are broken by the original row order
  (the engine/shown order the dataset was written in), so an all-constant score reproduces the logged order and
  results never depend on sort stability. ``-inf`` is allowed (a "bottom" score); NaN is rejected because it
  almost always means a bug upstream, and silently ranking it anywhere would hide that.

Conventions
-----------
* ``ndcg@k``: gain ``2**y - 1``, discount ``1 / log2(position + 2)`` (position from 0), normalised by the ideal
  DCG@k of *that search's* labels.
* ``mrr``: ``1 / (position of the first row with y > 0, from 1)``.
* ``hr@k``: 1 when a row with ``y > 0`` is in the top ``k``.
* Searches without any positive label have no ideal ranking; they are **excluded from every metric** (also AUC
  and MSE, so all numbers of a cell describe the same searches) and counted as ``n_excluded``.
* ``auc``: binary ``y > 0`` pooled over the rows of the included searches (``roc_auc_score``). Pooling means
  the score's scale across searches matters: it asks "does this score separate engaged rows from the rest",
  which is what a calibrated model promises and raw BM25 does not. ``None`` when only one class is present.
* ``mse``: only for methods declared ``probabilistic`` (scores are probabilities in [0, 1]): the mean squared
  error against ``y > 0`` (the Brier score). ``None`` for every other method, whose scores are not
  probabilities and for which an MSE would be meaningless.

Everything is vectorised: per method a ``lexsort`` on ``(group, -score, row)`` and a few ``bincount``
passes, so evaluating a few million rows takes seconds.

The ranking itself (ranks within a search, DCG, NDCG) is :mod:`fuserec_os.rerank.metrics`, the one
implementation that training and blend tuning use too; this module adds the strict checks above, MRR, hit rate,
AUC, MSE and the per-segment cells.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from fuserec_os.rerank.metrics import GroupIndex, dcg_from_ranks, dcg_per_group, ranks_within_groups

ENGINE = "engine"
ORACLE = "oracle"
LOWER_IS_BETTER = frozenset({"mse"})

__all__ = [
    "ENGINE",
    "LOWER_IS_BETTER",
    "ORACLE",
    "Cell",
    "EvalReport",
    "SearchMetrics",
    "auc",
    "evaluate",
    "hit_rate_at_k",
    "metric_names",
    "mrr",
    "mse",
    "ndcg_at_k",
    "per_search_metrics",
]


def metric_names(k: int = 10) -> tuple[str, ...]:
    """The metric keys of an evaluation at cut-off ``k``, in display order."""
    return (f"ndcg@{k}", "mrr", f"hr@{k}", "auc", "mse")


# --------------------------------------------------------------------------------------------------------------
# validation and layout
# --------------------------------------------------------------------------------------------------------------


def _as_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-d array over candidate rows, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("labels is empty: there is nothing to evaluate")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("labels must be whole numbers (0 shown, 1 click, 2 add_to_cart, 3 purchase)")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.min() < 0:
        raise ValueError(f"labels must be >= 0 (graded relevance), got {int(out.min())}")
    return out


def _as_groups(groups: Any, n: int) -> np.ndarray:
    arr = np.asarray(groups)
    if arr.shape != (n,):
        raise ValueError(f"groups must have one entry per row ({n}), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"groups must be integer search ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _as_scores(scores: Any, n: int, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per row ({n}), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; give missing rows an explicit bottom score (e.g. -inf)")
    return arr


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    return int(k)


@dataclass(frozen=True)
class _Layout:
    """What depends on labels and groups only, computed once and shared by every method."""

    labels: np.ndarray  # int64 [n]
    groups: np.ndarray  # int64 [n]
    index: GroupIndex  # dense search numbers in sorted-id order
    has_positive: np.ndarray  # bool [G]
    idcg: np.ndarray  # ideal DCG@k [G]
    k: int

    @property
    def group_ids(self) -> np.ndarray:  # sorted unique search ids [G]
        return np.asarray(self.index.keys)

    @property
    def row_search(self) -> np.ndarray:  # index into group_ids per row [n]
        return self.index.inverse


def _layout(labels: Any, groups: Any, k: int) -> _Layout:
    y = _as_labels(labels)
    g = _as_groups(groups, y.size)
    k = _check_k(k)
    group_ids, row_search = np.unique(g, return_inverse=True)
    index = GroupIndex(row_search.reshape(-1).astype(np.intp), int(group_ids.size), group_ids)
    has_pos = np.bincount(index.inverse, weights=(y > 0).astype(np.float64), minlength=index.n_groups) > 0
    idcg = dcg_per_group(y, y, index, k)  # the labels themselves are the ideal scores
    return _Layout(y, g, index, has_pos, idcg, k)


# --------------------------------------------------------------------------------------------------------------
# per-search metrics
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchMetrics:
    """Per-search values of one ranking, aligned with ``group_ids`` (sorted unique search ids).

    ``ndcg``, ``rr`` and ``hit`` are NaN where ``has_positive`` is False: those searches have no ideal ranking,
    and a 0 would mean "ranked badly", which is not what happened.
    """

    group_ids: np.ndarray
    has_positive: np.ndarray
    ndcg: np.ndarray
    rr: np.ndarray
    hit: np.ndarray
    k: int


def _per_search(lay: _Layout, scores: np.ndarray) -> SearchMetrics:
    n = lay.labels.size
    ranks = ranks_within_groups(lay.index, scores)
    dcg = dcg_from_ranks(lay.labels.astype(np.float64), ranks, lay.index, lay.k)
    hp = lay.has_positive
    positive = lay.labels > 0
    first = np.full(lay.index.n_groups, n, dtype=np.intp)  # 0-based rank of the first positive per search
    np.minimum.at(first, lay.index.inverse[positive], ranks[positive])
    with np.errstate(divide="ignore", invalid="ignore"):
        ndcg = np.where(hp, dcg / np.where(hp, lay.idcg, 1.0), np.nan)
    rr = np.where(hp, 1.0 / (first + 1.0), np.nan)
    hit = np.where(hp, (first < lay.k).astype(np.float64), np.nan)
    return SearchMetrics(lay.group_ids, hp, ndcg, rr, hit, lay.k)


def per_search_metrics(labels: Any, scores: Any, groups: Any, k: int = 10) -> SearchMetrics:
    """NDCG@k, reciprocal rank and hit@k of every search, for significance tests or custom slices."""
    lay = _layout(labels, groups, k)
    return _per_search(lay, _as_scores(scores, lay.labels.size))


def _mean_over_positive(values: np.ndarray, has_positive: np.ndarray, what: str) -> float:
    if not has_positive.any():
        raise ValueError(f"no search has a positive label, so {what} is undefined")
    return float(values[has_positive].mean())


def ndcg_at_k(labels: Any, scores: Any, groups: Any, k: int = 10) -> float:
    """Mean NDCG@k over the searches that have a positive label (raises ValueError when none has)."""
    m = per_search_metrics(labels, scores, groups, k)
    return _mean_over_positive(m.ndcg, m.has_positive, f"ndcg@{k}")


def mrr(labels: Any, scores: Any, groups: Any) -> float:
    """Mean reciprocal rank of the first positive, over the searches that have one."""
    m = per_search_metrics(labels, scores, groups, 1)
    return _mean_over_positive(m.rr, m.has_positive, "mrr")


def hit_rate_at_k(labels: Any, scores: Any, groups: Any, k: int = 10) -> float:
    """Share of searches (with a positive) that have a positive in the top ``k``."""
    m = per_search_metrics(labels, scores, groups, k)
    return _mean_over_positive(m.hit, m.has_positive, f"hr@{k}")


def _finite_for_auc(scores: np.ndarray) -> np.ndarray:
    """Replace +-inf by values just outside the finite range: AUC only depends on order, sklearn rejects inf."""
    finite = np.isfinite(scores)
    if finite.all():
        return scores
    if finite.any():
        lo, hi = float(scores[finite].min()), float(scores[finite].max())
    else:
        lo = hi = 0.0
    out = scores.copy()
    out[scores == -np.inf] = lo - 1.0
    out[scores == np.inf] = hi + 1.0
    return out


def _auc_rows(y_bin: np.ndarray, scores: np.ndarray) -> float | None:
    if y_bin.size == 0 or y_bin.all() or not y_bin.any():
        return None
    return float(roc_auc_score(y_bin, _finite_for_auc(scores)))


def _mse_rows(y_bin: np.ndarray, probs: np.ndarray) -> float | None:
    if y_bin.size == 0:
        return None
    return float(np.mean((probs - y_bin.astype(np.float64)) ** 2))


def auc(labels: Any, scores: Any, groups: Any | None = None) -> float | None:
    """ROC AUC of ``y > 0`` pooled over rows (of searches with a positive when ``groups`` is given).

    ``None`` when only one class is present: an AUC of 0.5 would claim a coin flip that was never measured.
    """
    y = _as_labels(labels)
    s = _as_scores(scores, y.size)
    if groups is not None:
        lay = _layout(y, groups, 1)
        rows = lay.has_positive[lay.row_search]
        y, s = y[rows], s[rows]
    return _auc_rows(y > 0, s)


def mse(labels: Any, probabilities: Any, groups: Any | None = None) -> float | None:
    """Mean squared error of probabilities against ``y > 0`` (the Brier score); ``None`` without rows."""
    y = _as_labels(labels)
    p = _as_scores(probabilities, y.size, "probabilities")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]; mse is only meaningful for probabilistic outputs")
    if groups is not None:
        lay = _layout(y, groups, 1)
        rows = lay.has_positive[lay.row_search]
        y, p = y[rows], p[rows]
    return _mse_rows(y > 0, p)


# --------------------------------------------------------------------------------------------------------------
# the evaluation report
# --------------------------------------------------------------------------------------------------------------

Metrics = dict[str, dict[str, float | None]]  # method -> metric -> value


@dataclass(frozen=True)
class Cell:
    """The metrics of every method over one slice of searches (all searches, or one segment value).

    ``n_searches`` are the searches averaged (those with a positive); ``n_excluded`` those left out for having
    none; ``n_rows`` the candidate rows of the averaged searches (what AUC and MSE pool over).
    ``delta_vs_engine`` is ``method - engine`` per metric, empty when no method is called ``engine``.
    """

    n_searches: int
    n_excluded: int
    n_rows: int
    metrics: Metrics
    delta_vs_engine: Metrics = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_searches": self.n_searches,
            "n_excluded": self.n_excluded,
            "n_rows": self.n_rows,
            "metrics": {m: dict(v) for m, v in self.metrics.items()},
            "delta_vs_engine": {m: dict(v) for m, v in self.delta_vs_engine.items()},
        }


def _delta(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else float(value - base)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class EvalReport:
    """Overall and per-segment metrics of several methods over the same searches.

    ``segments[column][value]`` is the :class:`Cell` of the searches whose segment ``column`` equals ``value``
    (values as strings, sorted); for every column the cells' ``n_searches`` add up to ``overall.n_searches``.
    """

    methods: tuple[str, ...]
    k: int
    probabilistic: frozenset[str]
    overall: Cell
    segments: dict[str, dict[str, Cell]]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return metric_names(self.k)

    @property
    def ndcg_name(self) -> str:
        return f"ndcg@{self.k}"

    def _check_metric(self, metric: str) -> str:
        if metric not in self.metric_names:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(self.metric_names)}")
        return metric

    def _cell(self, segment: tuple[str, str] | None) -> Cell:
        if segment is None:
            return self.overall
        column, value = segment
        if column not in self.segments:
            raise ValueError(f"unknown segment column {column!r}; valid: {', '.join(self.segments) or '(none)'}")
        cells = self.segments[column]
        if str(value) not in cells:
            raise ValueError(f"unknown value {value!r} of segment {column!r}; valid: {', '.join(cells)}")
        return cells[str(value)]

    def value(self, method: str, metric: str, segment: tuple[str, str] | None = None) -> float | None:
        """One number: ``method``'s ``metric`` overall or in ``segment=(column, value)``."""
        if method not in self.methods:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(self.methods)}")
        return self._cell(segment).metrics[method][self._check_metric(metric)]

    def best(
        self, metric: str | None = None, *, segment: tuple[str, str] | None = None, include_oracle: bool = False
    ) -> str:
        """The method with the best ``metric`` (highest; lowest for MSE). Ties go to the earlier method.

        The oracle is left out by default: it is an upper bound that uses the answers, not a contender.
        """
        metric = self._check_metric(metric or self.ndcg_name)
        cell = self._cell(segment)
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        best_name: str | None = None
        best_val = -math.inf
        for m in self.methods:
            if m == ORACLE and not include_oracle:
                continue
            v = cell.metrics[m][metric]
            if v is not None and sign * v > best_val:
                best_name, best_val = m, sign * v
        if best_name is None:
            raise ValueError(f"no method has a value for {metric!r} here")
        return best_name

    def captured_gain(
        self, method: str, metric: str | None = None, *, segment: tuple[str, str] | None = None
    ) -> float | None:
        """``(method - engine) / (oracle - engine)``: the share of the possible improvement a method realises.

        Raw deltas are hard to compare across data sets (a broad-query set has more headroom than a
        specific-query one); the share of the engine-to-oracle gap is not. ``None`` when the gap is zero or a
        value is missing. Needs methods named ``engine`` and ``oracle``.
        """
        metric = self._check_metric(metric or self.ndcg_name)
        for needed in (ENGINE, ORACLE):
            if needed not in self.methods:
                raise ValueError(f"captured_gain needs a method named {needed!r}; methods: {', '.join(self.methods)}")
        m = self.value(method, metric, segment)
        e = self.value(ENGINE, metric, segment)
        o = self.value(ORACLE, metric, segment)
        if m is None or e is None or o is None or abs(o - e) < 1e-12:
            return None
        return (m - e) / (o - e)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data (floats, ints, strings, None), for reports and CI artefacts."""
        out: dict[str, Any] = {
            "k": self.k,
            "methods": list(self.methods),
            "metrics": list(self.metric_names),
            "probabilistic": sorted(self.probabilistic),
            "overall": self.overall.as_dict(),
            "segments": {c: {v: cell.as_dict() for v, cell in cells.items()} for c, cells in self.segments.items()},
        }
        if ENGINE in self.methods and ORACLE in self.methods:
            out["captured_gain"] = {
                m: {metric: self.captured_gain(m, metric) for metric in self.metric_names if metric != "mse"}
                for m in self.methods
            }
        return out


def _segment_per_search(lay: _Layout, column: str, values: Any) -> np.ndarray:
    """The segment value of each search, checked to be constant within the search (it describes the search)."""
    arr = np.asarray(values)
    if arr.shape != lay.labels.shape:
        raise ValueError(f"segment {column!r} must have one entry per row ({lay.labels.size}), got shape {arr.shape}")
    as_str = np.array([str(v) for v in arr.tolist()], dtype=object)
    first_row = np.full(lay.group_ids.size, -1, dtype=np.int64)
    # the first row of each search (any row works once constancy is checked)
    first_row[lay.row_search[::-1]] = np.arange(lay.labels.size)[::-1]
    per_search = as_str[first_row]
    bad = as_str != per_search[lay.row_search]
    if bad.any():
        gid = int(lay.groups[np.flatnonzero(bad)[0]])
        raise ValueError(f"segment {column!r} is not constant within search {gid}; it must describe the search")
    return per_search


def _cell_of(
    lay: _Layout,
    search_mask: np.ndarray,
    per: Mapping[str, SearchMetrics],
    scores: Mapping[str, np.ndarray],
    probabilistic: frozenset[str],
    names: tuple[str, ...],
) -> Cell:
    included = search_mask & lay.has_positive
    n_inc = int(included.sum())
    rows = included[lay.row_search]
    y_bin = lay.labels[rows] > 0
    ndcg_key, _, hr_key, _, _ = names
    metrics: Metrics = {}
    for method, sm in per.items():
        s = scores[method][rows]
        metrics[method] = {
            ndcg_key: _finite_or_none(float(sm.ndcg[included].mean())) if n_inc else None,
            "mrr": _finite_or_none(float(sm.rr[included].mean())) if n_inc else None,
            hr_key: _finite_or_none(float(sm.hit[included].mean())) if n_inc else None,
            "auc": _auc_rows(y_bin, s),
            "mse": _mse_rows(y_bin, s) if method in probabilistic else None,
        }
    deltas: Metrics = {}
    if ENGINE in metrics:
        base = metrics[ENGINE]
        for method, vals in metrics.items():
            deltas[method] = {key: _delta(v, base[key]) for key, v in vals.items()}
    return Cell(
        n_searches=n_inc,
        n_excluded=int((search_mask & ~lay.has_positive).sum()),
        n_rows=int(rows.sum()),
        metrics=metrics,
        delta_vs_engine=deltas,
    )


def evaluate(
    methods: Mapping[str, Any],
    labels: Any,
    groups: Any,
    segments: Mapping[str, Any] | None = None,
    probabilistic: Collection[str] = (),
    *,
    k: int = 10,
) -> EvalReport:
    """Evaluate every method's scores over the same rows, overall and per segment value.

    ``segments`` maps a column name (e.g. ``"user"``, ``"query"``) to per-*row* labels (e.g. none/light/heavy);
    each must be constant within a search. ``probabilistic`` names the methods whose scores are probabilities
    (they get an MSE). Name the logged ranking ``"engine"`` to get deltas, and the label-aware upper bound
    ``"oracle"`` to get captured gain.
    """
    if not methods:
        raise ValueError("evaluate needs at least one method (name -> scores)")
    lay = _layout(labels, groups, k)
    n = lay.labels.size
    prob = frozenset(probabilistic)
    unknown = prob - set(methods)
    if unknown:
        raise ValueError(f"probabilistic names unknown methods {sorted(unknown)}; methods: {', '.join(methods)}")
    scores: dict[str, np.ndarray] = {}
    for name, s in methods.items():
        arr = _as_scores(s, n, f"scores of {name!r}")
        if name in prob and ((arr < 0) | (arr > 1)).any():
            raise ValueError(f"method {name!r} is declared probabilistic but has scores outside [0, 1]")
        scores[str(name)] = arr
    per = {name: _per_search(lay, s) for name, s in scores.items()}
    names = metric_names(lay.k)
    everything = np.ones(lay.group_ids.size, dtype=bool)
    overall = _cell_of(lay, everything, per, scores, prob, names)
    seg_cells: dict[str, dict[str, Cell]] = {}
    for column, values in (segments or {}).items():
        per_search = _segment_per_search(lay, column, values)
        seg_cells[str(column)] = {
            str(v): _cell_of(lay, per_search == v, per, scores, prob, names) for v in sorted(set(per_search.tolist()))
        }
    return EvalReport(tuple(scores), lay.k, prob, overall, seg_cells)
