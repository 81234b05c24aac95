"""Feature contributions in words: what ``--explain`` and the proxy's explanation print per hit.

Why words: a shopper-facing team reads "brand affinity: Kinetix" and knows why a product moved; a column name
and a number (``brand_affinity 0.31``) needs the feature registry open beside it. :func:`describe` is the
``describe`` hook of :class:`~fuserec_os.rerank.stage.RerankStage`: it gets the feature's column name, the
row's value in ``X``, the hit (its catalog source) and the profile, and returns the words; the stage pairs
them with the signed contribution, which the renderers print after the words ("brand affinity: Kinetix +0.31").

Only names and values are used, never anything fetched: explaining costs no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fuserec_os.features.spec import FEATURES, MISSING_SUFFIX
from fuserec_os.profiles.compute import UserProfile

__all__ = ["describe"]

_ENGAGEMENT = {
    "q_click_rate": "clicked",
    "q_cart_rate": "added to cart",
    "q_purchase_rate": "bought",
    "q_log_clicks": "clicked",
    "qt_click_rate": "clicked",
    "qt_cart_rate": "added to cart",
    "qt_purchase_rate": "bought",
}
_HISTORY = {
    "seen_before": "you engaged with it before",
    "clicked_before": "you clicked it before",
    "carted_before": "you added it to a cart before",
    "bought_before": "you bought it before",
}
_USER = {
    "user_history": "your history",
    "user_views": "your views",
    "user_clicks": "your clicks",
    "user_carts": "your add-to-carts",
    "user_purchases": "your purchases",
}
_SIGNAL_COUNTS = {
    "item_views": "viewed",
    "item_clicks": "clicked",
    "item_carts": "added to carts",
    "item_purchases": "bought",
}
_MISSING = {
    **{name: "no behaviour signals for this item" for name in _SIGNAL_COUNTS},
    "item_ctr": "never shown in a logged search",
    "item_conversion": "never shown in a logged search",
    "item_rating_mean": "no shopper ratings",
    "item_rating_count": "no behaviour signals for this item",
    "item_days_since": "nobody engaged with it yet",
    "item_trend": "no engagement in the last 4 weeks",
    "brand_affinity": "no brand history",
    "cat_affinity": "no category history",
    "parent_cat_affinity": "no category history",
    "price_vs_user": "no price history",
    "latent_dot": "no taste vector",
    "text_similarity": "no interest terms",
    "bm25": "not a text match (engaged after the query)",
    "bm25_norm": "not a text match (engaged after the query)",
    "engine_rank": "not in the engine's results (engaged after the query)",
}


def _text(source: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def describe(name: str, value: float, hit: Any, user: UserProfile | None, query: str = "") -> str:
    """Words for one feature column of one hit (``name`` may be a ``<feature>__missing`` indicator)."""
    source: Mapping[str, Any] = getattr(hit, "source", None) or {}
    if name.endswith(MISSING_SUFFIX):
        base = name[: -len(MISSING_SUFFIX)]
        if value < 0.5:  # present: the indicator's contribution is the feature being known
            return f"{base.replace('_', ' ')} known"
        return _MISSING.get(base, f"no {base.replace('_', ' ')}")
    if name == "brand_affinity":
        brand = _text(source, "brand")
        return f"brand affinity: {brand}" if brand else "brand affinity"
    if name == "cat_affinity":
        cat = _text(source, "category")
        return f"category affinity: {_title_path(cat)}" if cat else "category affinity"
    if name == "parent_cat_affinity":
        cat = _text(source, "category")
        parent = " > ".join(cat.split(" > ")[:-1]) if cat and " > " in cat else cat
        return f"category affinity: {_title_path(parent)}" if parent else "category affinity"
    if name == "price_vs_user":
        price = source.get("price")
        median = user.price.median if user is not None and user.price is not None else None
        if isinstance(price, (int, float)) and median and median > 0:
            return f"price fit: {_money(float(price))} vs your usual {_money(float(median))}"
        return "price fit"
    if name in _ENGAGEMENT:
        q = " ".join(query.split())
        after = f" after '{q}'" if q else " after this query"
        if name.startswith("qt_"):
            return f"query-term engagement ({_ENGAGEMENT[name]}{after.replace(' after', ' after the words of', 1)})"
        return f"query engagement ({_ENGAGEMENT[name]}{after})"
    if name in ("engine_rank", "bm25", "bm25_norm") and getattr(hit, "score", 0.0) is None:
        # a behavioural candidate: the engine did not return it, so its value is the missing-value fill
        return _MISSING[name]
    if name == "engine_rank":
        rank = round(math.expm1(value)) if math.isfinite(value) else None
        return f"engine rank {rank}" if rank else "engine rank"
    if name in ("bm25", "bm25_norm"):
        if name == "bm25_norm":
            return f"text match ({value:.2f} of the window's best)"
        return f"text match (BM25 {value:.2f})"
    if name == "title_term_share":
        return f"title has {value:.0%} of the query's words"
    if name == "latent_dot":
        return "similar to what you engaged with"
    if name == "text_similarity":
        top = list(user.interests)[:3] if user is not None and user.interests else []
        return "matches your interests" + (f" ({', '.join(top)})" if top else "")
    if name in _HISTORY:
        return _HISTORY[name]
    if name in _USER:
        return f"{_USER[name]} ({round(math.expm1(value))})"
    if name == "days_since_last_seen":
        return f"last seen {value:.0f} days ago"
    if name in _SIGNAL_COUNTS:
        return f"{_SIGNAL_COUNTS[name]} by shoppers lately ({math.expm1(value):.1f}, decayed)"
    if name == "item_ctr":
        return f"clicked in search results ({value:.0%} of examinations)"
    if name == "item_conversion":
        return f"bought from search results ({value:.1%} of examinations)"
    if name == "item_rating_mean":
        return f"shoppers rate it {value:.1f}"
    if name == "item_rating_count":
        return f"{round(math.expm1(value)):,} shopper ratings"
    if name == "item_days_since":
        return f"last engaged with {value:.0f} days ago"
    if name == "item_trend":
        return "trending up" if value > 0 else "trending down" if value < 0 else "steady interest"
    if name == "rating":
        return f"rating {value:.1f}"
    if name == "log_review_count":
        return f"{round(math.expm1(value)):,} reviews"
    if name == "log_popularity":
        return "popularity"
    if name == "log_price":
        return f"price {_money(math.expm1(value))}"
    if name == "in_stock":
        return "in stock" if value >= 0.5 else "out of stock"
    if name == "age_days":
        return f"listed {value:.0f} days ago"
    return FEATURES[name].name.replace("_", " ") if name in FEATURES else name.replace("_", " ")


def _title_path(path: str | None) -> str:
    """``shoes > running`` as ``Shoes > Running`` (catalog paths are stored lower case)."""
    if not path:
        return ""
    return " > ".join(part[:1].upper() + part[1:] for part in path.split(" > "))
