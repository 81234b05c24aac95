"""The ``events`` and ``profiles`` sections of the ranking YAML: event type names, weights, decay.

Why typed dataclasses: profiles are built offline (CLI, training) and read online (the proxy); both must use
the very same weights and half-life, and a typo (``add_to_card``) must fail at start-up naming the key.
"""

from __future__ import annotations

import math
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
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 3.0, "add_to_cart": 5.0, "purchase": 10.0}
)


def _check_keys(section: str, raw: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in raw if k not in valid)
    if unknown:
        raise ConfigError(
            f"unknown {section} setting(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys: {', '.join(valid)}"
        )


@dataclass(frozen=True)
class EventsConfig:
    """How raw event type names map onto :data:`EVENT_TYPES` (case-insensitive; canonical names always work)."""

    type_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_ALIASES))
    _lookup: Mapping[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
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
        _check_keys("events", raw, ("type_aliases",))
        aliases = raw.get("type_aliases", {})
        if not isinstance(aliases, Mapping):
            raise ConfigError("events.type_aliases must be a mapping of raw name -> event type")
        merged = dict(DEFAULT_TYPE_ALIASES)
        merged.update({str(k): str(v) for k, v in aliases.items()})
        return cls(type_aliases=merged)


@dataclass(frozen=True)
class ProfilesConfig:
    """How profiles weigh and forget behaviour.

    An event's weight is ``weights[type] * 0.5 ** (age_days / half_life_days)``: a purchase counts ten views,
    and anything ``half_life_days`` old counts half as much as today.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    half_life_days: float = 14.0
    recent_items: int = 20
    latent_dims: int = 16
    interest_terms: int = 20

    def __post_init__(self) -> None:
        missing = [t for t in EVENT_TYPES if t not in self.weights]
        extra = [t for t in self.weights if t not in EVENT_TYPES]
        if missing or extra:
            raise ConfigError(
                f"profiles.weights must give a weight for exactly {', '.join(EVENT_TYPES)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        for name, w in self.weights.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
                raise ConfigError(f"profiles.weights.{name}: {w!r} must be a number >= 0")
        if not isinstance(self.half_life_days, (int, float)) or not self.half_life_days > 0:
            raise ConfigError(f"profiles.half_life_days: {self.half_life_days!r} must be a number > 0 (days)")
        for key in ("recent_items", "latent_dims", "interest_terms"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"profiles.{key}: {value!r} must be a whole number >= 1")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ProfilesConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("'profiles' must be a mapping (e.g. profiles: {half_life_days: 14})")
        _check_keys("profiles", raw, ("weights", "half_life_days", "recent_items", "latent_dims", "interest_terms"))
        kwargs = dict(raw)
        if "weights" in kwargs:
            weights = kwargs["weights"]
            if not isinstance(weights, Mapping):
                raise ConfigError("profiles.weights must be a mapping of event type -> weight")
            merged = dict(DEFAULT_WEIGHTS)
            merged.update({str(k): v for k, v in weights.items()})
            kwargs["weights"] = merged
        return cls(**kwargs)
