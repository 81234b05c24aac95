"""The ``events`` section of the ranking YAML: the canonical event types and the raw names that map onto them,
the rule that turns an explicit rating into an event type, and the gap that ends a search derived from events.

Why a typed dataclass: events are normalised by the CLI, the training job and (later) the proxy's event
endpoint; all must map ``order`` to ``purchase`` the same way, and a typo (``add_to_card``) must fail at
start-up naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fuserec_os.errors import ConfigError

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")
"""The canonical event types, from weakest to strongest signal."""

DEFAULT_TYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "detail_view": "view",
        "page_view": "view",
        "pageview": "view",
        "product_view": "view",
        "impression_click": "click",
        "search_click": "click",
        "add-to-cart": "add_to_cart",
        "addtocart": "add_to_cart",
        "cart": "add_to_cart",
        "add": "add_to_cart",
        "transaction": "purchase",
        "order": "purchase",
        "buy": "purchase",
        "checkout": "purchase",
    }
)


def check_keys(section: str, raw: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in raw if k not in valid)
    if unknown:
        raise ConfigError(
            f"unknown {section} setting(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys: {', '.join(valid)}"
        )


def _number(section: str, key: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        null = " or null" if allow_none else ""
        raise ConfigError(f"{section}.{key}: {value!r} is not a number{null} (e.g. {section}.{key}: 4)")
    return float(value)


#: Rating thresholds, strongest type first: a rating at or above one counts as that type.
_RATING_STEPS: tuple[tuple[str, str], ...] = (
    ("purchase_at_least", "purchase"),
    ("add_to_cart_at_least", "add_to_cart"),
    ("click_at_least", "click"),
)
_RATING_KEYS = (*(key for key, _ in _RATING_STEPS), "otherwise", "min", "max")


@dataclass(frozen=True)
class RatingRule:
    """How an explicit rating (``rating``, e.g. 0.5-5 stars) sets the type of an event that has none.

    A rating at or above ``purchase_at_least`` counts as a purchase (the strongest positive), else at or above
    ``add_to_cart_at_least`` as an add_to_cart, else at or above ``click_at_least`` as a click, else as
    ``otherwise`` (default view: seen, not liked). A threshold of None skips that type. Ratings outside
    ``min``..``max`` are rejected (a 0-10 scale or a unit mistake). The value itself is stored on the event.
    """

    purchase_at_least: float | None = 4.0
    add_to_cart_at_least: float | None = None
    click_at_least: float | None = None
    otherwise: str = "view"
    min: float = 0.0
    max: float = 5.0

    def __post_init__(self) -> None:
        section = "events.ratings"
        if self.min >= self.max:
            raise ConfigError(f"{section}: min {self.min:g} must be below max {self.max:g} (e.g. min: 0, max: 5)")
        if self.otherwise not in EVENT_TYPES:
            raise ConfigError(
                f"{section}.otherwise: {self.otherwise!r} is not an event type "
                f"(expected one of {', '.join(EVENT_TYPES)})"
            )
        previous: tuple[str, float] | None = None
        for key, _ in _RATING_STEPS:
            value = getattr(self, key)
            if value is None:
                continue
            if not self.min <= value <= self.max:
                raise ConfigError(
                    f"{section}.{key}: {value:g} is outside the rating scale {self.min:g}..{self.max:g} "
                    f"({section}.min / max)"
                )
            if previous is not None and value > previous[1]:
                raise ConfigError(
                    f"{section}.{key}: {value:g} is above {section}.{previous[0]} ({previous[1]:g}); a stronger type "
                    "needs a rating at least as high"
                )
            previous = (key, value)

    def event_type(self, rating: float) -> str:
        """The event type a rating counts as."""
        for key, event_type in _RATING_STEPS:
            threshold = getattr(self, key)
            if threshold is not None and rating >= threshold:
                return event_type
        return self.otherwise

    def describe(self) -> str:
        """The rule in one line, e.g. ``rating >= 4 -> purchase, lower -> view`` (for help and errors)."""
        parts = [
            f"rating >= {getattr(self, key):g} -> {t}" for key, t in _RATING_STEPS if getattr(self, key) is not None
        ]
        return ", ".join([*parts, f"lower -> {self.otherwise}"])

    @classmethod
    def from_dict(cls, raw: Any) -> RatingRule:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("events.ratings must be a mapping (e.g. events: {ratings: {purchase_at_least: 4}})")
        check_keys("events.ratings", raw, _RATING_KEYS)
        values: dict[str, Any] = {}
        for key, _ in _RATING_STEPS:
            if key in raw:
                values[key] = _number("events.ratings", key, raw[key], allow_none=True)
        for key in ("min", "max"):
            if key in raw:
                values[key] = _number("events.ratings", key, raw[key])
        if "otherwise" in raw:
            values["otherwise"] = str(raw["otherwise"])
        return cls(**values)


#: Default gap that ends a derived search (see :attr:`EventsConfig.derived_search_gap_minutes`).
DEFAULT_DERIVED_SEARCH_GAP_MINUTES = 30.0


@dataclass(frozen=True)
class EventsConfig:
    """How raw event type names map onto :data:`EVENT_TYPES` (case-insensitive; canonical names always work),
    how a rating sets the type of an event without one (``ratings``), and how long a search lasts when it has
    to be derived from events without a request id (``derived_search_gap_minutes``: the clicks of one user
    after the same normalised query, each within that many minutes of the previous one, are one search).
    ``live_updates``: events recorded through the proxy (or ``profiles.live.record_events_live``) update the
    user's profile and the query statistics before the call returns (docs/personalization.md)."""

    type_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_ALIASES))
    ratings: RatingRule = field(default_factory=RatingRule)
    derived_search_gap_minutes: float = DEFAULT_DERIVED_SEARCH_GAP_MINUTES
    live_updates: bool = True
    _lookup: Mapping[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.derived_search_gap_minutes > 0:
            raise ConfigError(
                f"events.derived_search_gap_minutes: {self.derived_search_gap_minutes:g} must be above 0 (e.g. 30)"
            )
        for name, target in self.type_aliases.items():
            if target not in EVENT_TYPES:
                raise ConfigError(
                    f"events.type_aliases.{name}: {target!r} is not an event type (expected one of "
                    f"{', '.join(EVENT_TYPES)})"
                )
        # lower-cased once here, not once per event
        object.__setattr__(self, "_lookup", {k.strip().lower(): v for k, v in self.type_aliases.items()})

    def canonical_type(self, raw: str) -> str | None:
        """The canonical type for a raw name, or None when it is unknown."""
        key = raw.strip().lower()
        if key in EVENT_TYPES:
            return key
        return self._lookup.get(key)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> EventsConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("'events' must be a mapping (e.g. events: {type_aliases: {order: purchase}})")
        check_keys("events", raw, ("type_aliases", "ratings", "derived_search_gap_minutes", "live_updates"))
        live = raw.get("live_updates", True)
        if not isinstance(live, bool):
            raise ConfigError(f"events.live_updates: {live!r} must be true or false")
        aliases = raw.get("type_aliases", {})
        if not isinstance(aliases, Mapping):
            raise ConfigError("events.type_aliases must be a mapping of raw name -> event type")
        merged = dict(DEFAULT_TYPE_ALIASES)
        merged.update({str(k): str(v) for k, v in aliases.items()})
        gap = raw.get("derived_search_gap_minutes", DEFAULT_DERIVED_SEARCH_GAP_MINUTES)
        return cls(
            type_aliases=merged,
            ratings=RatingRule.from_dict(raw.get("ratings")),
            derived_search_gap_minutes=_number("events", "derived_search_gap_minutes", gap) or 0.0,
            live_updates=live,
        )
