"""The ``profiles`` section of the ranking YAML: how much each event type weighs and how fast it is forgotten.

Why typed dataclasses: profiles are built offline (CLI, training) and read online (the proxy); both must use
the very same weights and half-life, and a typo (``half_live_days``) must fail at start-up naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fuserec_os.behaviour.config import EVENT_TYPES, check_keys
from fuserec_os.errors import ConfigError

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 3.0, "add_to_cart": 5.0, "purchase": 10.0}
)


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
        check_keys("profiles", raw, ("weights", "half_life_days", "recent_items", "latent_dims", "interest_terms"))
        kwargs = dict(raw)
        if "weights" in kwargs:
            weights = kwargs["weights"]
            if not isinstance(weights, Mapping):
                raise ConfigError("profiles.weights must be a mapping of event type -> weight")
            merged = dict(DEFAULT_WEIGHTS)
            merged.update({str(k): v for k, v in weights.items()})
            kwargs["weights"] = merged
        return cls(**kwargs)
