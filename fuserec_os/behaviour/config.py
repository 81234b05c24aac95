"""The ``events`` section of the ranking YAML: the canonical event types and the raw names that map onto them.

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
        check_keys("events", raw, ("type_aliases",))
        aliases = raw.get("type_aliases", {})
        if not isinstance(aliases, Mapping):
            raise ConfigError("events.type_aliases must be a mapping of raw name -> event type")
        merged = dict(DEFAULT_TYPE_ALIASES)
        merged.update({str(k): str(v) for k, v in aliases.items()})
        return cls(type_aliases=merged)
