"""The feature registry: what each reranker input means, where it comes from, and when it can be missing.

Why a registry: training and serving must agree on the exact column layout of ``X``; a model stores its
feature names and the proxy rebuilds the same :class:`FeatureSet` from them. A feature that is not known here
cannot be configured (a typo fails at start-up with the list of valid names), and every feature that can be
missing gets its own indicator column, so "no data" is never confused with a real 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

from fuserec_os.errors import ConfigError

__all__ = [
    "BEHAVIOUR_FEATURES",
    "DEFAULT_FEATURES",
    "FEATURES",
    "MISSING_SUFFIX",
    "SCOPES",
    "FeatureDef",
    "FeatureSet",
]

SCOPES: tuple[str, ...] = ("query_item", "query_item_engagement", "item", "user", "cross")
"""Where a feature's inputs come from: the engine hit, the query-product stats, the item (its catalog document,
and its behaviour signals learned from every shopper's events), the profile, or the profile against the item."""

MISSING_SUFFIX = "__missing"


@dataclass(frozen=True)
class FeatureDef:
    """One base feature. ``can_be_missing``: it has a ``<name>__missing`` indicator column in ``X``."""

    name: str
    scope: str
    description: str
    can_be_missing: bool = True

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"feature {self.name!r}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")


def _defs(*rows: tuple[str, str, str]) -> Mapping[str, FeatureDef]:
    return MappingProxyType({name: FeatureDef(name, scope, desc) for name, scope, desc in rows})


FEATURES: Mapping[str, FeatureDef] = _defs(
    # --- the engine hit
    ("bm25", "query_item", "raw engine text score; missing for behavioural candidates the engine did not return"),
    (
        "bm25_norm",
        "query_item",
        "engine score min-max scaled over the engine's top window (training: its top engine_k; serving: the "
        "window), or over the list's scored candidates when no range is given (1.0 when all tie)",
    ),
    ("engine_rank", "query_item", "log1p of the engine rank; missing when the engine did not rank the product"),
    (
        "title_term_share",
        "query_item",
        "share of the query's distinct stemmed terms found in the item's title; missing for an empty query "
        "or an unknown product",
    ),
    # --- query-product engagement (QueryStats), smoothed towards the global rate
    ("q_click_rate", "query_item_engagement", "smoothed click rate of the product for the exact normalised query"),
    ("q_cart_rate", "query_item_engagement", "smoothed add-to-cart rate for the exact normalised query"),
    ("q_purchase_rate", "query_item_engagement", "smoothed purchase rate for the exact normalised query"),
    ("qt_click_rate", "query_item_engagement", "smoothed click rate averaged over the query's seen terms"),
    ("qt_cart_rate", "query_item_engagement", "smoothed add-to-cart rate averaged over the query's seen terms"),
    ("qt_purchase_rate", "query_item_engagement", "smoothed purchase rate averaged over the query's seen terms"),
    ("q_log_clicks", "query_item_engagement", "log1p of the raw click count of the (exact query, product) pair"),
    # --- the item (catalog)
    ("log_price", "item", "log1p(price); missing without a price"),
    ("rating", "item", "average rating; missing without one"),
    ("log_review_count", "item", "log1p(review count)"),
    ("log_popularity", "item", "log1p(catalog popularity score)"),
    ("in_stock", "item", "1 in stock, 0 out of stock; missing when unknown"),
    ("age_days", "item", "days from created_at to the request time (>= 0)"),
    # --- the item (behaviour: ItemSignals from the events and the search log, as of the request time). Each is
    # missing without item signals (none stored or loaded) and for a product outside the catalog.
    ("item_views", "item", "log1p of the item's views by all shoppers, decayed by the profiles' half-life"),
    ("item_clicks", "item", "log1p of the item's clicks by all shoppers, decayed by the profiles' half-life"),
    ("item_carts", "item", "log1p of the item's add-to-carts by all shoppers, decayed by the profiles' half-life"),
    ("item_purchases", "item", "log1p of the item's purchases by all shoppers, decayed by the profiles' half-life"),
    (
        "item_ctr",
        "item",
        "click-through rate after searches, debiased by position (clicks per position-weighted examination in "
        "the search log) and smoothed towards the shop's rate; missing when never shown in a logged result list",
    ),
    (
        "item_conversion",
        "item",
        "purchases after searches per position-weighted examination, smoothed like item_ctr; missing like it",
    ),
    ("item_rating_mean", "item", "mean explicit rating carried by events (a rating log); missing without one"),
    ("item_rating_count", "item", "log1p of the number of explicit ratings carried by events"),
    ("item_days_since", "item", "days from the item's newest event (any shopper, any type) to the request time"),
    (
        "item_trend",
        "item",
        "log of (engagement in the last 7 days + 1) over (weekly engagement in the 3 weeks before + 1), events "
        "weighed by the profile weights; missing without engagement in those 4 weeks",
    ),
    # --- the user (profile)
    ("user_history", "user", "log1p of the profile's event count; missing without a profile"),
    ("user_views", "user", "log1p of the user's views"),
    ("user_clicks", "user", "log1p of the user's clicks"),
    ("user_carts", "user", "log1p of the user's add-to-carts"),
    ("user_purchases", "user", "log1p of the user's purchases"),
    ("days_since_last_seen", "user", "days from the profile's last event to the request time (>= 0)"),
    # --- the user against the item
    ("cat_affinity", "cross", "the user's share on the item's leaf category (shares as in top_categories)"),
    ("parent_cat_affinity", "cross", "the user's largest share on the item's ancestor categories (leaf excluded)"),
    ("brand_affinity", "cross", "the user's share on the item's brand (shares of all brands sum to 1)"),
    ("price_vs_user", "cross", "log(item price / the user's median engaged price)"),
    ("latent_dot", "cross", "cosine of the user's vector (decayed item weights x product vectors) and the item's"),
    ("text_similarity", "cross", "cosine of the user's interest terms and the item's tf-idf row"),
    ("seen_before", "cross", "1 when the user engaged the product before (any event type)"),
    ("clicked_before", "cross", "1 when the user clicked the product before"),
    ("carted_before", "cross", "1 when the user added the product to a cart before"),
    ("bought_before", "cross", "1 when the user bought the product before"),
)
"""Every known feature by name, in the default column order."""

BEHAVIOUR_FEATURES: frozenset[str] = frozenset(n for n in FEATURES if n.startswith("item_"))
"""The item features learned from behaviour (:class:`~fuserec_os.profiles.item_signals.ItemSignals`): a model
using any of them needs the item signals at serving time."""


@dataclass(frozen=True)
class FeatureSet:
    """An ordered selection of features: the layout of ``X`` (values first, then the missing indicators)."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        _validate(self.names)

    @classmethod
    def from_config(cls, raw: list[Any] | tuple[Any, ...] | None) -> FeatureSet:
        """The ``features`` list of the ranking YAML (None: :data:`DEFAULT_FEATURES`); ConfigError on bad input."""
        if raw is None:
            return DEFAULT_FEATURES
        if not isinstance(raw, (list, tuple)) or not all(isinstance(n, str) for n in raw):
            raise ConfigError(f"features must be a list of feature names; valid names: {', '.join(FEATURES)}")
        return cls(tuple(raw))

    @cached_property
    def defs(self) -> tuple[FeatureDef, ...]:
        return tuple(FEATURES[n] for n in self.names)

    @cached_property
    def missing_names(self) -> tuple[str, ...]:
        """Base features with an indicator column, in set order."""
        return tuple(d.name for d in self.defs if d.can_be_missing)

    @cached_property
    def missing_index(self) -> list[int]:
        """Positions in :attr:`names` of the features with an indicator column (the order of those columns)."""
        return [i for i, d in enumerate(self.defs) if d.can_be_missing]

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Column names of ``X``: every base name in set order, then ``<name>__missing`` for those that can be."""
        return self.names + tuple(n + MISSING_SUFFIX for n in self.missing_names)

    @cached_property
    def scopes(self) -> frozenset[str]:
        return frozenset(d.scope for d in self.defs)

    def __len__(self) -> int:
        return len(self.columns)


def _validate(names: tuple[str, ...]) -> None:
    if not isinstance(names, tuple):
        raise ConfigError("FeatureSet names must be a tuple of feature names")
    if not names:
        raise ConfigError(f"features: the list is empty; valid names: {', '.join(FEATURES)}")
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ConfigError(f"features: unknown feature(s) {', '.join(map(repr, unknown))}; valid: {', '.join(FEATURES)}")
    dupes = [n for n, c in Counter(names).items() if c > 1]
    if dupes:
        raise ConfigError(f"features: listed more than once: {', '.join(dupes)}")


DEFAULT_FEATURES = FeatureSet(tuple(FEATURES))
"""All registered features in registry order."""
