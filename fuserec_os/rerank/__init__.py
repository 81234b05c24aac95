"""Reranking at request time: scorers (NumPy only, never TensorFlow), the engine/model blend, ranking metrics.

Nothing in this package imports TensorFlow or Keras; training lives in :mod:`fuserec_os.learn.model`.
"""

from __future__ import annotations

from fuserec_os.rerank.blend import Gate, blend, minmax, minmax_groups, tune_alpha
from fuserec_os.rerank.metrics import ndcg_at_k, ndcg_per_group
from fuserec_os.rerank.scorer import NoopScorer, NumpyMLPScorer, Scorer, blas_info

__all__ = [
    "Gate",
    "NoopScorer",
    "NumpyMLPScorer",
    "Scorer",
    "blas_info",
    "blend",
    "minmax",
    "minmax_groups",
    "ndcg_at_k",
    "ndcg_per_group",
    "tune_alpha",
]
