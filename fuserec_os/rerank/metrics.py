"""Ranking metrics: the one NDCG implementation, shared by training (early stopping), blend tuning and evaluation.

Everything is vectorised over groups (one group = one search's candidate list): one stable sort of the whole
array instead of a Python loop per search, so NDCG over a million rows takes well under a second.

Conventions (the evaluation module relies on them):

* gain ``2**label - 1`` (labels are graded: 0 shown, 1 click, 2 add to cart, 3 purchase), discount
  ``log2(rank + 1)`` with ranks starting at 1;
* ties in ``scores`` are broken by the original row order (the first row wins), so equal scores never
  reward a lucky sort; NaN scores rank after every number;
* the mean is over groups with at least one positive label; when no group has one the result is 0.0
  (there is nothing to rank, and callers compare numbers, so NaN would only poison a ``max``).

:mod:`fuserec_os.learn.evaluate` builds its report metrics (NDCG, MRR, hit rate) on :func:`ndcg_per_group` and
:func:`ranks_within_groups`, adding strict input checks (no NaN scores, integer search ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class GroupIndex:
    """Rows of ``groups`` mapped to dense group numbers ``0..n_groups-1`` (in order of first appearance)."""

    inverse: npt.NDArray[np.intp]  # [n] dense group number of each row
    n_groups: int
    keys: npt.NDArray[np.generic]  # [n_groups] the original group id of each dense number

    @classmethod
    def of(cls, groups: npt.ArrayLike) -> GroupIndex:
        g = np.asarray(groups).ravel()
        if g.size == 0:
            return cls(np.zeros(0, dtype=np.intp), 0, g[:0])
        if g.size > 1 and np.all(g[1:] >= g[:-1]):  # sorted (the usual contiguous case): no sort needed
            change = np.empty(g.size, dtype=bool)
            change[0] = True
            np.not_equal(g[1:], g[:-1], out=change[1:])
            inverse = np.cumsum(change, dtype=np.intp) - 1
            return cls(inverse, int(inverse[-1]) + 1, g[change])
        keys, first, inverse = np.unique(g, return_index=True, return_inverse=True)
        # renumber in order of first appearance so results follow the input order of searches
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return cls(rank[inverse.ravel()].astype(np.intp), int(keys.size), keys[order])


def ranks_within_groups(gi: GroupIndex, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """0-based rank of every row inside its group by descending score, ties by original order."""
    n = scores.size
    s = np.where(np.isnan(scores), -np.inf, scores)
    # lexsort: last key is primary -> group, then descending score, then row order (stable tie-break)
    order = np.lexsort((np.arange(n), -s, gi.inverse))
    sorted_groups = gi.inverse[order]
    starts = np.searchsorted(sorted_groups, np.arange(gi.n_groups))
    ranks = np.empty(n, dtype=np.intp)
    ranks[order] = np.arange(n) - starts[sorted_groups]
    return ranks


def dcg_per_group(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | GroupIndex, k: int = 10
) -> npt.NDArray[np.float64]:
    """DCG@k of every group (dense group order, see :class:`GroupIndex`)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    gi = groups if isinstance(groups, GroupIndex) else GroupIndex.of(groups)
    if not (y.size == s.size == gi.inverse.size):
        raise ValueError(
            f"labels, scores and groups must have the same length (got {y.size}, {s.size}, {gi.inverse.size})"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k})")
    return dcg_from_ranks(y, ranks_within_groups(gi, s), gi, k)


def dcg_from_ranks(
    labels: npt.NDArray[np.float64], ranks: npt.NDArray[np.intp], gi: GroupIndex, k: int
) -> npt.NDArray[np.float64]:
    """DCG@k of every group from 0-based ranks (:func:`ranks_within_groups`): gain ``2**y - 1``, ``log2`` discount.

    Split out so a caller that needs the ranks for other metrics too (MRR, hit rate) sorts once.
    """
    top = ranks < k
    gain = np.exp2(labels[top]) - 1.0
    disc = 1.0 / np.log2(ranks[top] + 2.0)
    return np.bincount(gi.inverse[top], weights=gain * disc, minlength=gi.n_groups).astype(np.float64)


def ndcg_per_group(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | GroupIndex, k: int = 10
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """``(ndcg, has_positive)`` per group in dense group order; ndcg is 0.0 where a group has no positive."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    gi = groups if isinstance(groups, GroupIndex) else GroupIndex.of(groups)
    dcg = dcg_per_group(y, scores, gi, k)
    ideal = dcg_per_group(y, y, gi, k)  # the labels themselves are the ideal scores
    has_pos = ideal > 0
    ndcg = np.zeros(gi.n_groups, dtype=np.float64)
    np.divide(dcg, ideal, out=ndcg, where=has_pos)
    return ndcg, has_pos


def ndcg_at_k(labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike, k: int = 10) -> float:
    """Mean NDCG@k over the groups that hold at least one positive label (0.0 when none does).

    ``labels`` graded relevance (gain ``2**y - 1``), ``scores`` higher = ranked first (ties: original order,
    NaN last), ``groups`` one id per row (contiguous or not).
    """
    ndcg, has_pos = ndcg_per_group(labels, scores, groups, k)
    if not has_pos.any():
        return 0.0
    return float(ndcg[has_pos].mean())
