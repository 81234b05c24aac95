"""Sampling the training candidates of wide lists, weighted to stay unbiased (``model.sample``).

A logged search with wide candidate lists has a few engaged products and dozens of candidates nobody touched;
most training rows are such negatives and most of the training time goes to them. The pointwise loss is a sum
over rows, so it can be estimated from a sample: every row with a label > 0 is kept, so are the engine's top
``keep_top`` ranks of each search (the negatives that are hardest to tell apart and that serving reranks),
and each of the other rows is kept with probability ``rate`` and weight ``1 / rate``. The weighted sum of the
per-row losses over the sample then has the full sum as its expectation (Horvitz-Thompson), so the model
learns the same function as on all rows, from fewer of them.

Only the training split is sampled, and only for the pointwise loss: validation and test lists stay whole (so
NDCG@10 is measured on what serving ranks), and a listwise loss compares the candidates of one list with each
other, so thinning a list changes its softmax (listwise lists are capped at ``model.max_list_size`` instead).
The draw is seeded (``model.seed``) and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fuserec_os.learn.model_config import SampleConfig
from fuserec_os.rerank.metrics import GroupIndex


@dataclass(frozen=True)
class Sample:
    """Which training rows to fit on (``index``, ascending) with which ``weight`` (1, or ``1 / rate``).

    ``applied`` is False when the whole set is used (``index`` is then every row, every weight 1); ``reason``
    says why in words, for the training log.
    """

    index: npt.NDArray[np.int64]
    weight: npt.NDArray[np.float32]
    applied: bool
    reason: str
    rows_before: int
    offset: npt.NDArray[np.float32] | None = None

    @property
    def rows(self) -> int:
        return int(self.index.size)

    def summary(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "reason": self.reason,
            "rows_before": self.rows_before,
            "rows": self.rows,
        }


def ranks_in_group(groups: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1-based position of each row within its group, in row order (the engine's order when rows are)."""
    gi = GroupIndex.of(groups)
    n = gi.inverse.size
    order = np.argsort(gi.inverse, kind="stable")
    starts = np.searchsorted(gi.inverse[order], np.arange(gi.n_groups))
    pos = np.empty(n, dtype=np.float64)
    pos[order] = np.arange(n) - starts[gi.inverse[order]] + 1
    return pos


def should_sample(cfg: SampleConfig, rows: int) -> tuple[bool, str]:
    """Whether ``cfg`` samples a training set of ``rows`` rows, and why (for the training log)."""
    if cfg.enabled is False:
        return False, "model.sample.enabled is false"
    if cfg.enabled is True:
        return True, "model.sample.enabled is true"
    if rows > cfg.above_rows:
        return True, f"auto: {rows:,} training rows > model.sample.above_rows {cfg.above_rows:,}"
    return False, f"auto: {rows:,} training rows <= model.sample.above_rows {cfg.above_rows:,}"


def sample_candidates(
    y: npt.ArrayLike,
    groups: npt.ArrayLike,
    ranks: npt.ArrayLike | None,
    cfg: SampleConfig,
    seed: int,
) -> Sample:
    """The rows to train on and their weights (see the module doc).

    ``ranks``: the engine's 1-based rank of each row (NaN for a candidate the engine did not rank, e.g. a
    behavioural one: it is never in the top ranks); None uses each row's position within its group.
    """
    yy = np.asarray(y).ravel()
    n = yy.size
    apply, reason = should_sample(cfg, n)
    if not apply or cfg.rate >= 1.0:
        if apply:
            reason += " (rate 1: every row kept)"
        return Sample(np.arange(n, dtype=np.int64), np.ones(n, dtype=np.float32), False, reason, n)
    r = ranks_in_group(groups) if ranks is None else np.asarray(ranks, dtype=np.float64).ravel()
    if r.size != n:
        raise ValueError(f"ranks has {r.size} entries for {n} rows")
    kept = (yy > 0) | (np.nan_to_num(r, nan=np.inf) <= cfg.keep_top)
    drawn = np.random.default_rng(seed).random(n) < cfg.rate
    index = np.flatnonzero(kept | drawn).astype(np.int64)
    reason += f"; kept label > 0 and engine top {cfg.keep_top}, {cfg.rate:g} of the rest"
    if cfg.correction == "offset":
        # every row below the top ranks belongs to the sampled stratum (its negatives kept at `rate`, its
        # positives always): the odds of a positive there are 1 / rate times the population's
        rest = ~(np.nan_to_num(r, nan=np.inf) <= cfg.keep_top)
        offset = np.where(rest[index], -np.log(cfg.rate), 0.0).astype(np.float32)
        weight = np.ones(index.size, dtype=np.float32)
        return Sample(index, weight, True, reason + f" (logit offset {-np.log(cfg.rate):.2f})", n, offset)
    weight = np.where(kept[index], 1.0, 1.0 / cfg.rate).astype(np.float32)
    return Sample(index, weight, True, reason + f" (weight {1 / cfg.rate:g})", n)
