"""Build the OpenSearch ``_search`` body for a :class:`~fuserec_os.search.request.SearchRequest`.

Pure and deterministic (no I/O): the same request and config always give the same body. User text is
parsed by :mod:`fuserec_os.search.syntax` and compiled to ``bool``/``multi_match``/``match``/``term``/
``range`` clauses; it never reaches ``query_string``, so any text yields valid DSL and only the
whitelisted fields are reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuserec_os.errors import QueryError
from fuserec_os.search.request import Filters, SearchConfig, SearchRequest, Sort, parse_bool
from fuserec_os.search.syntax import (
    FIELD_LIMITS,
    And,
    FieldMatch,
    Node,
    Not,
    Or,
    Phrase,
    Range,
    Terms,
    parse,
    parse_number,
)

__all__ = ["FACET_ORDER", "BuiltQuery", "build_aggs", "build_filters", "build_query", "build_sort", "compile_node"]

_DEFAULT_CONFIG = SearchConfig()

#: ``field:`` names -> the analysed field a ``match`` runs on.
_MATCH_FIELDS = {
    "title": "title",
    "description": "description",
    "brand": "brand.text",
    "category": "category.text",
    "tags": "tags.text",
}
HIGHLIGHT_TAGS = ("<em>", "</em>")


@dataclass(frozen=True)
class BuiltQuery:
    """The ``_search`` body plus what the parser had to say about the text."""

    body: dict[str, Any]
    warnings: tuple[str, ...] = ()
    fallback: bool = False


# ------------------------------------------------------------------------------------------ validation


def _validate(req: SearchRequest, cfg: SearchConfig) -> None:
    length = len(req.text.strip())
    if length > cfg.max_query_length:
        raise QueryError(
            f"text is {length} characters long; the maximum is {cfg.max_query_length} characters "
            "(search.max_query_length)"
        )
    if req.page < 1:
        raise QueryError(f"page must be 1 or more (pages are 1-based), got {req.page}")
    if req.size < 1 or req.size > cfg.max_size:
        raise QueryError(f"size must be between 1 and {cfg.max_size}, got {req.size}")
    last = (req.page - 1) * req.size + req.size
    if last > cfg.max_result_window:
        deepest = cfg.max_result_window // req.size
        raise QueryError(
            f"page {req.page} with size {req.size} goes past result {cfg.max_result_window} "
            f"(max_result_window); the deepest page allowed for size {req.size} is {deepest}"
        )


# ------------------------------------------------------------------------------------------ text query


def _fields(cfg: SearchConfig) -> list[str]:
    return [f"{name}^{float(boost)}" for name, boost in cfg.fields]


def _multi_match(text: str, cfg: SearchConfig) -> dict[str, Any]:
    mm: dict[str, Any] = {"query": text, "fields": _fields(cfg), "type": cfg.multi_match_type}
    if cfg.multi_match_type != "most_fields":  # a tie_breaker would turn most_fields' sum into best_fields
        mm["tie_breaker"] = cfg.tie_breaker
    if cfg.minimum_should_match is not None:
        mm["minimum_should_match"] = cfg.minimum_should_match
    return {"multi_match": mm}


def _match_all() -> dict[str, Any]:
    return {"match_all": {}}


def _field_match(node: FieldMatch, cfg: SearchConfig, warnings: list[str]) -> dict[str, Any]:
    f, value = node.field, node.value
    if f in _MATCH_FIELDS:
        target = _MATCH_FIELDS[f]
        if node.phrase:
            return {"match_phrase": {target: {"query": value}}}
        return {"match": {target: {"query": value, "operator": "and"}}}
    if f == "in_stock":
        b = parse_bool(value)
        if b is None:
            warnings.append(
                f"in_stock:{value} is not a boolean (use true/false, yes/no, 1/0); searched {value!r} as text"
            )
            return _multi_match(value, cfg)
        return {"term": {"in_stock": b}}
    if f.startswith("attr."):
        return {"term": {"attributes": f"{f[len('attr.') :]}:{value}"}}
    # numeric: price, rating, review_count
    n = parse_number(value)
    if n is not None and f == "review_count":
        n = int(n) if float(n).is_integer() else None
    if n is None:
        kind = "a whole number" if f == "review_count" else "a number"
        warnings.append(f"{f}:{value} needs {kind}; searched {value!r} as text")
        return _multi_match(value, cfg)
    lo, hi = FIELD_LIMITS[f]
    if not lo <= n <= hi:
        warnings.append(f"{f}:{value} is beyond what {f} holds ({_num(lo)} to {_num(hi)}): nothing matches it")
        return {"match_none": {}}
    return {"term": {f: n}}


def _range(node: Range, warnings: list[str]) -> dict[str, Any]:
    """The range query, its bounds clamped to what the field holds (see ``FIELD_LIMITS``)."""
    if node.lower is None and node.upper is None:
        return {"exists": {"field": node.field}}
    lo, hi = FIELD_LIMITS[node.field]
    bounds: dict[str, float] = {}
    for key, bound in (
        ("gte" if node.include_lower else "gt", node.lower),
        ("lte" if node.include_upper else "lt", node.upper),
    ):
        if bound is None:
            continue
        clamped = min(max(bound, lo), hi)
        if clamped != bound:
            warnings.append(f"{node.field} bound {_num(bound)} is beyond what {node.field} holds; used {_num(clamped)}")
            key = key[:2] + "e" if len(key) == 2 else key  # a clamped bound includes the field's limit
        bounds[key] = clamped
    return {"range": {node.field: bounds}}


def _only_not(inner: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"must": [_match_all()], "must_not": [inner]}}


def compile_node(node: Node, cfg: SearchConfig, warnings: list[str]) -> dict[str, Any]:
    """Compile a parsed node to DSL; value problems are appended to ``warnings``, never raised."""
    if isinstance(node, Terms):
        return _multi_match(node.text, cfg)
    if isinstance(node, Phrase):
        return {"multi_match": {"query": node.text, "fields": _fields(cfg), "type": "phrase"}}
    if isinstance(node, FieldMatch):
        return _field_match(node, cfg, warnings)
    if isinstance(node, Range):
        return _range(node, warnings)
    if isinstance(node, Not):
        return _only_not(compile_node(node.child, cfg, warnings))
    if isinstance(node, And):
        must = [compile_node(c, cfg, warnings) for c in node.children if not isinstance(c, Not)]
        must_not = [compile_node(c.child, cfg, warnings) for c in node.children if isinstance(c, Not)]
        b: dict[str, Any] = {"must": must or [_match_all()]}
        if must_not:
            b["must_not"] = must_not
        return {"bool": b}
    if isinstance(node, Or):
        should = [compile_node(c, cfg, warnings) for c in node.children]
        return {"bool": {"should": should, "minimum_should_match": 1}}
    raise TypeError(f"not a query node: {node!r}")  # pragma: no cover


# ------------------------------------------------------------------------------------------ filters


def build_filters(filters: Filters) -> list[dict[str, Any]]:
    """The ``bool.filter`` clauses for the structured filters (empty list when none)."""
    out: list[dict[str, Any]] = []
    if filters.category is not None:
        out.append({"term": {"category_path": filters.category}})
    if filters.brands:
        out.append({"terms": {"brand": list(filters.brands)}})
    if filters.price_min is not None or filters.price_max is not None:
        price: dict[str, float] = {}
        if filters.price_min is not None:
            price["gte"] = filters.price_min
        if filters.price_max is not None:
            price["lte"] = filters.price_max
        out.append({"range": {"price": price}})
    if filters.rating_min is not None:
        out.append({"range": {"rating": {"gte": filters.rating_min}}})
    if filters.in_stock is not None:
        out.append({"term": {"in_stock": filters.in_stock}})
    if filters.tags:
        out.append({"terms": {"tags": list(filters.tags)}})
    for key, values in filters.attributes:
        out.append({"terms": {"attributes": [f"{key}:{v}" for v in values]}})
    return out


# ------------------------------------------------------------------------------------------ sort, aggs


def build_sort(sort: Sort) -> list[Any]:
    """The sort clause; every order ends with a ``product_id`` tie-break for stable paging."""
    tie = {"product_id": "asc"}
    if sort is Sort.PRICE_ASC:
        return [{"price": "asc"}, tie]
    if sort is Sort.PRICE_DESC:
        return [{"price": "desc"}, tie]
    if sort is Sort.RATING:
        return [{"rating": "desc"}, {"review_count": "desc"}, tie]
    if sort is Sort.NEWEST:
        return [{"created_at": "desc"}, tie]
    return ["_score", tie]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _range_buckets(ranges: tuple[tuple[float | None, float | None], ...], plus_style: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lo, hi in ranges:
        if plus_style and hi is None and lo is not None:
            key = f"{_num(lo)}+"
        else:
            key = f"{'*' if lo is None else _num(lo)}-{'*' if hi is None else _num(hi)}"
        bucket: dict[str, Any] = {"key": key}
        if lo is not None:
            bucket["from"] = lo
        if hi is not None:
            bucket["to"] = hi
        out.append(bucket)
    return out


# The order facets are requested in and shown in. The engine's response need not keep it: OpenSearch returns
# top-level aggregations in an order of its own (osmem keeps the request's), so parsing re-orders by this.
FACET_ORDER = ("brand", "category", "price", "rating")


def build_aggs(cfg: SearchConfig) -> dict[str, Any]:
    """Facet aggregations: brand, category (terms), price and rating (ranges), in FACET_ORDER."""
    return {
        "brand": {"terms": {"field": "brand", "size": cfg.facet_size}},
        "category": {"terms": {"field": "category", "size": cfg.facet_size}},
        "price": {"range": {"field": "price", "ranges": _range_buckets(cfg.price_ranges, False)}},
        "rating": {"range": {"field": "rating", "ranges": _range_buckets(cfg.rating_ranges, True)}},
    }


def _highlight() -> dict[str, Any]:
    return {
        "pre_tags": [HIGHLIGHT_TAGS[0]],
        "post_tags": [HIGHLIGHT_TAGS[1]],
        "fields": {
            "title": {"number_of_fragments": 0},
            "description": {"fragment_size": 150, "number_of_fragments": 3},
        },
    }


# ------------------------------------------------------------------------------------------ entry point


def build_query(req: SearchRequest, cfg: SearchConfig = _DEFAULT_CONFIG) -> BuiltQuery:
    """The full ``_search`` body for ``req``.

    Raises :class:`~fuserec_os.errors.QueryError` for a text longer than ``cfg.max_query_length``,
    ``page < 1``, ``size`` outside ``1..cfg.max_size`` or paging past ``cfg.max_result_window``.
    Broken query syntax never raises: it is searched as plain text (``fallback=True``, with a warning).
    """
    _validate(req, cfg)
    warnings: list[str] = []
    fallback = False
    text = req.text.strip()
    text_query = _match_all()
    if text:
        result = parse(text)
        warnings.extend(result.warnings)
        fallback = result.fallback
        if result.node is not None:
            text_query = compile_node(result.node, cfg, warnings)

    bool_query: dict[str, Any] = {"must": [text_query]}
    filters = build_filters(req.filters)
    if filters:
        bool_query["filter"] = filters

    body: dict[str, Any] = {
        "query": {"bool": bool_query},
        "from": (req.page - 1) * req.size,
        "size": req.size,
        "sort": build_sort(req.sort),
        "track_scores": True,
        "track_total_hits": True,
    }
    if req.facets:
        body["aggs"] = build_aggs(cfg)
    if req.highlight:
        body["highlight"] = _highlight()
    return BuiltQuery(body=body, warnings=tuple(warnings), fallback=fallback)
