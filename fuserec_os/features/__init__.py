"""Reranker features: one library for training rows (offline) and scoring rows (online).

See ``docs/personalization.md`` for the contracts: :class:`FeatureSet` over the :data:`FEATURES` registry,
:class:`ItemTable` precomputed per catalog, :class:`QueryStats` engagement counts, and :func:`assemble`.
"""

from __future__ import annotations

from fuserec_os.features.assemble import Candidates, Features, RequestContext, assemble
from fuserec_os.features.items import ItemTable
from fuserec_os.features.query_stats import (
    QueryStats,
    QueryStatsView,
    default_position_weights,
    estimate_position_weights,
)
from fuserec_os.features.spec import DEFAULT_FEATURES, FEATURES, MISSING_SUFFIX, SCOPES, FeatureDef, FeatureSet
from fuserec_os.features.text import stem, terms

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURES",
    "MISSING_SUFFIX",
    "SCOPES",
    "Candidates",
    "FeatureDef",
    "FeatureSet",
    "Features",
    "ItemTable",
    "QueryStats",
    "QueryStatsView",
    "RequestContext",
    "assemble",
    "default_position_weights",
    "estimate_position_weights",
    "stem",
    "terms",
]
