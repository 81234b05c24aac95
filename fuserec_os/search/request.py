"""The search request contract: what a caller (CLI or Python API) may ask for, validated up front.

* :class:`Sort` - the sort orders.
* :class:`Filters` - structured filters (category subtree, brands, price/rating bounds, stock, tags,
  attributes), built directly, from the CLI's ``--filter`` specs (:func:`parse_filters`) or from a
  mapping (:meth:`Filters.from_mapping`).
* :class:`SearchRequest` - one search: text, filters, sort, paging, user, facets, highlight.
* :class:`SearchConfig` - tuning knobs (fields and boosts, caps, facet ranges), loadable from the
  ``search:`` section of the YAML config (:meth:`SearchConfig.from_dict`).

Invalid requests raise :class:`~fuserec_os.errors.QueryError`, invalid configuration raises
:class:`~fuserec_os.errors.ConfigError`; both messages name the parameter and what would be valid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fuserec_os.errors import ConfigError, QueryError

__all__ = [
    "FILTER_NAMES",
    "MULTI_MATCH_TYPES",
    "SEARCHABLE_FIELDS",
    "Filters",
    "SearchConfig",
    "SearchRequest",
    "Sort",
    "parse_filters",
]


class Sort(str, Enum):
    """Result orders. Every order ends with a ``product_id`` tie-break so paging is stable."""

    RELEVANCE = "relevance"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    RATING = "rating"
    NEWEST = "newest"

    @classmethod
    def parse(cls, value: str) -> Sort:
        """The sort named ``value`` (case-insensitive, ``-`` accepted for ``_``)."""
        if isinstance(value, Sort):
            return value
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for member in cls:
                if member.value == key:
                    return member
        valid = ", ".join(m.value for m in cls)
        raise QueryError(f"sort {value!r} is not valid; valid sorts: {valid}")


# --------------------------------------------------------------------------------------------- filters

#: Names accepted by ``--filter`` (``attr.<key>`` stands for any attribute key).
FILTER_NAMES = ("brand", "category", "price", "rating", "in_stock", "tags", "attr.<key>")

_MAPPING_KEYS = (
    "category",
    "brand",
    "brands",
    "price_min",
    "price_max",
    "rating_min",
    "in_stock",
    "tags",
    "attributes",
)

_TRUE = frozenset({"true", "yes", "1", "y", "on"})
_FALSE = frozenset({"false", "no", "0", "n", "off"})
_BOOL_HELP = "true, false, yes, no, 1 or 0"

#: Highest rating a product can have.
MAX_RATING = 5.0


def parse_bool(value: str) -> bool | None:
    """``True``/``False`` for the accepted spellings (true/false, yes/no, 1/0, on/off), else None."""
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


def _clean_strings(values: Any, what: str) -> tuple[str, ...]:
    """A de-duplicated tuple of stripped, non-empty strings (order kept)."""
    if isinstance(values, str):
        values = (values,)
    if not isinstance(values, Iterable):
        raise QueryError(f"{what} must be a string or a list of strings, got {type(values).__name__}")
    out: list[str] = []
    for v in values:
        if not isinstance(v, str):
            raise QueryError(f"{what} values must be strings, got {v!r}")
        s = v.strip()
        if not s:
            raise QueryError(f"{what} values must not be empty")
        if s not in out:
            out.append(s)
    return tuple(out)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise QueryError(f"{what} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise QueryError(f"{what} must be a finite number, got {value!r}")
    if f < 0:
        raise QueryError(f"{what} must be >= 0, got {value!r}")
    return f


def normalize_category(value: str) -> str:
    """``"electronics>laptops "`` -> ``"electronics > laptops"`` (the stored path format)."""
    parts = [p.strip() for p in value.split(">")]
    if any(not p for p in parts):
        raise QueryError(
            f"category {value!r} is not a valid path; use a category like 'electronics' or 'electronics > laptops'"
        )
    return " > ".join(parts)


@dataclass(frozen=True)
class Filters:
    """Structured filters; all given filters must hold (AND), values within one filter are OR-ed.

    ``category`` matches the category and its whole subtree; ``attributes`` maps an attribute key
    to the accepted values (``(("color", ("red", "blue")),)`` = colour red or blue).
    """

    category: str | None = None
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    rating_min: float | None = None
    in_stock: bool | None = None
    tags: tuple[str, ...] = ()
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.category is not None:
            if not isinstance(self.category, str):
                raise QueryError(f"category must be a string, got {self.category!r}")
            object.__setattr__(self, "category", normalize_category(self.category))
        object.__setattr__(self, "brands", _clean_strings(self.brands, "brands"))
        object.__setattr__(self, "tags", _clean_strings(self.tags, "tags"))
        pmin = _number(self.price_min, "price_min")
        pmax = _number(self.price_max, "price_max")
        if pmin is not None and pmax is not None and pmin > pmax:
            raise QueryError(f"price_min ({pmin:g}) must not be greater than price_max ({pmax:g})")
        object.__setattr__(self, "price_min", pmin)
        object.__setattr__(self, "price_max", pmax)
        rmin = _number(self.rating_min, "rating_min")
        if rmin is not None and rmin > MAX_RATING:
            raise QueryError(f"rating_min must be between 0 and {MAX_RATING:g}, got {rmin:g}")
        object.__setattr__(self, "rating_min", rmin)
        if self.in_stock is not None and not isinstance(self.in_stock, bool):
            raise QueryError(f"in_stock must be true or false, got {self.in_stock!r}")
        object.__setattr__(self, "attributes", self._clean_attributes(self.attributes))

    @staticmethod
    def _clean_attributes(attributes: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if isinstance(attributes, Mapping):
            attributes = tuple(attributes.items())
        out: list[tuple[str, tuple[str, ...]]] = []
        seen: set[str] = set()
        for item in attributes:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise QueryError(f"attributes must be (key, values) pairs, got {item!r}")
            key, values = item
            if not isinstance(key, str) or not key.strip() or ":" in key:
                raise QueryError(f"attribute key {key!r} is not valid; use a non-empty name without ':'")
            key = key.strip()
            if key in seen:
                raise QueryError(f"attribute key {key!r} is given twice; list all its values once")
            seen.add(key)
            vals = _clean_strings(values, f"attribute {key!r}")
            if not vals:
                raise QueryError(f"attribute {key!r} needs at least one value")
            out.append((key, vals))
        return tuple(out)

    @property
    def is_empty(self) -> bool:
        """True when no filter is set."""
        return self == Filters()

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> Filters:
        """Filters from a plain mapping (the Python API).

        Keys: ``category``, ``brand``/``brands`` (str or list), ``price_min``, ``price_max``,
        ``rating_min``, ``in_stock``, ``tags`` (str or list), ``attributes`` (key -> str or list).
        ``None`` values are ignored.
        """
        if not isinstance(d, Mapping):
            raise QueryError(f"filters must be a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _MAPPING_KEYS)
        if unknown:
            raise QueryError(f"unknown filter key(s) {', '.join(unknown)}; valid keys: {', '.join(_MAPPING_KEYS)}")
        brands: list[str] = []
        for key in ("brand", "brands"):
            if d.get(key) is not None:
                brands.extend(_clean_strings(d[key], key))
        in_stock = d.get("in_stock")
        if isinstance(in_stock, str):
            parsed = parse_bool(in_stock)
            if parsed is None:
                raise QueryError(f"in_stock must be one of {_BOOL_HELP}, got {in_stock!r}")
            in_stock = parsed
        attrs = d.get("attributes")
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, Mapping):
            raise QueryError(f"attributes must be a mapping of key -> value(s), got {type(attrs).__name__}")
        return cls(
            category=d.get("category"),
            brands=tuple(brands),
            price_min=d.get("price_min"),
            price_max=d.get("price_max"),
            rating_min=d.get("rating_min"),
            in_stock=in_stock,
            tags=_clean_strings(d["tags"], "tags") if d.get("tags") is not None else (),
            attributes=tuple((k, _clean_strings(v, f"attribute {k!r}")) for k, v in attrs.items()),
        )


_SPEC_RE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|=)\s*(.*?)\s*$", re.DOTALL)
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1].strip()
    return v


def _split_values(value: str) -> list[str]:
    """``a,"b, c",d`` -> ``["a", "b, c", "d"]`` (commas inside quotes do not split)."""
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    for ch in value:
        if quote:
            if ch == quote:
                quote = None
            else:
                buf.append(ch)
        elif ch in "\"'" and not "".join(buf).strip():
            quote = ch
        elif ch == ",":
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf).strip())
    return parts


def _spec_number(text: str, spec: str, name: str, help_: str) -> float:
    t = text.strip()
    if not _NUM_RE.match(t):
        raise QueryError(f"bad --filter {spec!r}: {t!r} is not a number; {name} takes {help_}")
    return float(t)


_PRICE_HELP = "a range like price=10..50, price=10.., price=..50, price>=10 or price<=50"
_RATING_HELP = "a minimum like rating>=4 or rating=4.."


def parse_filters(specs: Iterable[str]) -> Filters:
    """Filters from the CLI's ``--filter`` specs (each one ``name=value`` or ``name>=value``).

    ``brand=Nike`` (repeat or ``brand=Nike,Adidas``), ``category="electronics > laptops"``,
    ``price=10..50`` / ``price=10..`` / ``price=..50`` / ``price>=10`` / ``price<=50``,
    ``rating>=4`` / ``rating=4..``, ``in_stock=true|false|yes|no|1|0``, ``tags=sport,outdoor``,
    ``attr.color=red,blue``.
    """
    if isinstance(specs, str):
        specs = [specs]
    category: str | None = None
    brands: list[str] = []
    tags: list[str] = []
    price_min: float | None = None
    price_max: float | None = None
    rating_min: float | None = None
    in_stock: bool | None = None
    attributes: dict[str, list[str]] = {}
    valid_names = ", ".join(FILTER_NAMES)

    for spec in specs:
        if not isinstance(spec, str):
            raise QueryError(f"--filter values must be strings, got {spec!r}")
        m = _SPEC_RE.match(spec)
        if not m:
            raise QueryError(
                f"bad --filter {spec!r}: expected name=value (or rating>=4, price<=50); valid names: {valid_names}"
            )
        raw_name, op, value = m.group(1), m.group(2), m.group(3)
        name = raw_name.lower()
        if name in ("brands",):
            name = "brand"
        elif name in ("tag",):
            name = "tags"
        elif name in ("instock", "in-stock"):
            name = "in_stock"
        if not value:
            raise QueryError(f"bad --filter {spec!r}: no value given after {op!r}")
        if op != "=" and name not in ("price", "rating"):
            raise QueryError(f"bad --filter {spec!r}: {name} only takes '=' (e.g. {name}=...)")

        if name == "brand" or name == "tags":
            values = [_unquote(v) for v in _split_values(value)]
            if any(not v for v in values):
                raise QueryError(f"bad --filter {spec!r}: empty value in the comma-separated list")
            (brands if name == "brand" else tags).extend(values)
        elif name == "category":
            if category is not None:
                raise QueryError(f"bad --filter {spec!r}: category is given twice; give one category")
            category = normalize_category(_unquote(value))
        elif name == "price":
            lo, hi = _parse_bounds(spec, op, _unquote(value), "price", _PRICE_HELP)
            if lo is not None:
                if price_min is not None:
                    raise QueryError(f"bad --filter {spec!r}: the price minimum is given twice")
                price_min = lo
            if hi is not None:
                if price_max is not None:
                    raise QueryError(f"bad --filter {spec!r}: the price maximum is given twice")
                price_max = hi
        elif name == "rating":
            lo, hi = _parse_bounds(spec, op, _unquote(value), "rating", _RATING_HELP, exact_is_min=False)
            if hi is not None or lo is None:
                raise QueryError(f"bad --filter {spec!r}: rating only takes {_RATING_HELP}")
            if rating_min is not None:
                raise QueryError(f"bad --filter {spec!r}: the rating minimum is given twice")
            rating_min = lo
        elif name == "in_stock":
            b = parse_bool(_unquote(value))
            if b is None:
                raise QueryError(f"bad --filter {spec!r}: in_stock takes {_BOOL_HELP}")
            if in_stock is not None and in_stock != b:
                raise QueryError(f"bad --filter {spec!r}: in_stock is given twice with different values")
            in_stock = b
        elif name.startswith("attr.") and len(name) > len("attr."):
            key = raw_name[len("attr.") :]
            values = [_unquote(v) for v in _split_values(value)]
            if any(not v for v in values):
                raise QueryError(f"bad --filter {spec!r}: empty value in the comma-separated list")
            attributes.setdefault(key, []).extend(values)
        else:
            raise QueryError(f"bad --filter {spec!r}: unknown filter {raw_name!r}; valid names: {valid_names}")

    return Filters(
        category=category,
        brands=tuple(brands),
        price_min=price_min,
        price_max=price_max,
        rating_min=rating_min,
        in_stock=in_stock,
        tags=tuple(tags),
        attributes=tuple((k, tuple(v)) for k, v in attributes.items()),
    )


def _parse_bounds(
    spec: str, op: str, value: str, name: str, help_: str, exact_is_min: bool = True
) -> tuple[float | None, float | None]:
    """``(min, max)`` for ``op value``: ``>= 4``, ``<= 4``, ``= 10..50``, ``= 10..``, ``= ..50``, ``= 25``."""
    if op == ">=":
        return _spec_number(value, spec, name, help_), None
    if op == "<=":
        return None, _spec_number(value, spec, name, help_)
    if ".." in value:
        lo_s, _, hi_s = value.partition("..")
        if not lo_s.strip() and not hi_s.strip():
            raise QueryError(f"bad --filter {spec!r}: give at least one bound; {name} takes {help_}")
        lo = _spec_number(lo_s, spec, name, help_) if lo_s.strip() else None
        hi = _spec_number(hi_s, spec, name, help_) if hi_s.strip() else None
        return lo, hi
    if not exact_is_min:
        raise QueryError(f"bad --filter {spec!r}: {name} takes {help_}")
    n = _spec_number(value, spec, name, help_)
    return n, n


# --------------------------------------------------------------------------------------------- request


@dataclass(frozen=True)
class SearchRequest:
    """One search. ``text`` may use the Boolean syntax of :mod:`fuserec_os.search.syntax`.

    ``page`` is 1-based. Paging and length limits are checked against a :class:`SearchConfig`
    when the query is built (:func:`fuserec_os.search.query_builder.build_query`).
    """

    text: str = ""
    filters: Filters = field(default_factory=Filters)
    sort: Sort = Sort.RELEVANCE
    page: int = 1
    size: int = 10
    user_id: str | None = None
    facets: bool = True
    highlight: bool = True

    def __post_init__(self) -> None:
        if self.text is None:
            object.__setattr__(self, "text", "")
        if not isinstance(self.text, str):
            raise QueryError(f"text must be a string, got {type(self.text).__name__}")
        if not isinstance(self.filters, Filters):
            raise QueryError(f"filters must be a Filters, got {type(self.filters).__name__}")
        if not isinstance(self.sort, Sort):
            object.__setattr__(self, "sort", Sort.parse(self.sort))
        for name in ("page", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise QueryError(f"{name} must be an integer, got {value!r}")
        if self.user_id is not None and not isinstance(self.user_id, str):
            raise QueryError(f"user_id must be a string, got {self.user_id!r}")


# --------------------------------------------------------------------------------------------- config

#: Fields the free-text query may search (the text sub-fields of mappings/products.json).
SEARCHABLE_FIELDS = (
    "title",
    "title.exact",
    "description",
    "description.exact",
    "brand.text",
    "category.text",
    "tags.text",
)

_DEFAULT_FIELDS: tuple[tuple[str, float], ...] = (
    ("title", 3.0),
    ("brand.text", 2.0),
    ("category.text", 1.5),
    ("tags.text", 1.5),
    ("description", 1.0),
)
_DEFAULT_PRICE_RANGES: tuple[tuple[float | None, float | None], ...] = (
    (None, 25.0),
    (25.0, 50.0),
    (50.0, 100.0),
    (100.0, 250.0),
    (250.0, 500.0),
    (500.0, None),
)
_DEFAULT_RATING_RANGES: tuple[tuple[float | None, float | None], ...] = (
    (4.0, None),
    (3.0, None),
    (2.0, None),
)

#: How free text scores across the fields (``search.multi_match_type``): the best field wins (plus
#: ``tie_breaker`` times the others), every matching field adds up, or the fields act as one big field.
MULTI_MATCH_TYPES = ("best_fields", "most_fields", "cross_fields")

_CONFIG_KEYS = (
    "fields",
    "minimum_should_match",
    "max_size",
    "max_query_length",
    "max_result_window",
    "price_ranges",
    "rating_ranges",
    "facet_size",
    "multi_match_type",
    "tie_breaker",
)
_INT_KEYS = ("max_size", "max_query_length", "max_result_window", "facet_size")


def _cfg_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _cfg_ranges(value: Any, key: str) -> tuple[tuple[float | None, float | None], ...]:
    where = f"search.{key}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{where} must be a list of [from, to] pairs (null for open), got {value!r}")
    out: list[tuple[float | None, float | None]] = []
    for i, item in enumerate(value):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            raise ConfigError(f"{where}[{i}] must be a [from, to] pair (null for open), got {item!r}")
        lo = None if item[0] is None else _cfg_number(item[0], f"{where}[{i}] from")
        hi = None if item[1] is None else _cfg_number(item[1], f"{where}[{i}] to")
        out.append((lo, hi))
    return tuple(out)


@dataclass(frozen=True)
class SearchConfig:
    """Search tuning: fields and boosts, caps, facet buckets. Maps onto the YAML ``search:`` section.

    ``multi_match_type`` and ``tie_breaker`` say how free text scores across ``fields``: ``best_fields`` (the
    default) takes the best field's score plus ``tie_breaker`` (0..1) times the other matching fields';
    ``most_fields`` adds every matching field's score (``tie_breaker`` unused); ``cross_fields`` scores the
    fields as one (the best field plus ``tie_breaker`` times the others per term). ``fuserec search tune``
    picks them from the search log.
    """

    fields: tuple[tuple[str, float], ...] = _DEFAULT_FIELDS
    minimum_should_match: str | None = None
    max_size: int = 100
    max_query_length: int = 256
    max_result_window: int = 10000
    price_ranges: tuple[tuple[float | None, float | None], ...] = _DEFAULT_PRICE_RANGES
    rating_ranges: tuple[tuple[float | None, float | None], ...] = _DEFAULT_RATING_RANGES
    facet_size: int = 20
    multi_match_type: str = "best_fields"
    tie_breaker: float = 0.3

    def __post_init__(self) -> None:
        if self.multi_match_type not in MULTI_MATCH_TYPES:
            raise ConfigError(
                f"search.multi_match_type must be one of {', '.join(MULTI_MATCH_TYPES)}, got {self.multi_match_type!r}"
            )
        tb = _cfg_number(self.tie_breaker, "search.tie_breaker")
        if not 0 <= tb <= 1:
            raise ConfigError(f"search.tie_breaker must be between 0 and 1, got {self.tie_breaker!r}")
        object.__setattr__(self, "tie_breaker", tb)
        fields = tuple(self.fields)
        if not fields:
            raise ConfigError("search.fields must name at least one field")
        norm: list[tuple[str, float]] = []
        for item in fields:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ConfigError(f"search.fields entries must be (field, boost) pairs, got {item!r}")
            name, boost = item
            if name not in SEARCHABLE_FIELDS:
                raise ConfigError(
                    f"search.fields: {name!r} is not a searchable field; valid fields: {', '.join(SEARCHABLE_FIELDS)}"
                )
            b = _cfg_number(boost, f"search.fields.{name}")
            if b <= 0:
                raise ConfigError(f"search.fields.{name} boost must be > 0, got {boost!r}")
            norm.append((name, b))
        object.__setattr__(self, "fields", tuple(norm))
        for key in _INT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"search.{key} must be a positive integer, got {value!r}")
        if self.max_size > self.max_result_window:
            raise ConfigError(
                f"search.max_size ({self.max_size}) must not exceed search.max_result_window ({self.max_result_window})"
            )
        msm = self.minimum_should_match
        if msm is not None:
            if isinstance(msm, bool) or not isinstance(msm, (str, int)) or not str(msm).strip():
                raise ConfigError(f"search.minimum_should_match must be a string like '2' or '75%', got {msm!r}")
            object.__setattr__(self, "minimum_should_match", str(msm).strip())
        for key in ("price_ranges", "rating_ranges"):
            ranges = _cfg_ranges(getattr(self, key), key)
            for i, (lo, hi) in enumerate(ranges):
                if lo is None and hi is None:
                    raise ConfigError(f"search.{key}[{i}] needs a from or a to bound")
                if lo is not None and hi is not None and lo >= hi:
                    raise ConfigError(f"search.{key}[{i}]: from ({lo:g}) must be below to ({hi:g})")
            object.__setattr__(self, key, ranges)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SearchConfig:
        """A config from the YAML ``search:`` section; missing keys keep their defaults.

        ``fields`` is a mapping ``{"title": 3, "description": 1}`` (or a list of ``[field, boost]``);
        ``price_ranges``/``rating_ranges`` are lists of ``[from, to]`` with ``null`` for open ends
        (a bare number in ``rating_ranges`` means "this and up").
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError(f"the search section must be a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _CONFIG_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown search setting(s) {', '.join('search.' + k for k in unknown)}; "
                f"valid keys: {', '.join(_CONFIG_KEYS)}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key == "fields":
                if isinstance(value, Mapping):
                    kwargs[key] = tuple((str(k), v) for k, v in value.items())
                elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
                    kwargs[key] = tuple(
                        tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for v in value
                    )
                else:
                    raise ConfigError(
                        f"search.fields must be a mapping of field -> boost, e.g. {{title: 3}}, got {value!r}"
                    )
            elif key == "rating_ranges" and isinstance(value, Sequence) and not isinstance(value, str):
                kwargs[key] = tuple(
                    (v, None) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value
                )
            elif key == "minimum_should_match" and value is None:
                kwargs[key] = None
            else:
                kwargs[key] = value
        return cls(**kwargs)
