"""The ``rerank`` section of the ranking YAML (pure Python: no NumPy, no pandas).

Why its own module: the ranking YAML is validated whole when any command starts, so ``fuserec search`` without
``--user`` imports this section's dataclass; importing it from :mod:`fuserec_os.rerank.stage` would drag
pandas and the feature code into a plain search (tests/integration/test_cli_process.py keeps that out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fuserec_os.behaviour.config import check_keys
from fuserec_os.errors import ConfigError

__all__ = ["RerankSettings"]


@dataclass(frozen=True)
class RerankSettings:
    """The ``rerank`` section of the ranking YAML.

    ``window``: engine candidates reranked per request (pushed into the engine query's ``size``), capped by
    ``max_window``; ``behavioural_k``: products engaged after the query added on top, filtered by the request's
    filters; ``budget_ms``: the stage's latency budget (fetching profile and statistics, features, scoring),
    past which engine order is returned.
    """

    enabled: bool = True
    window: int = 100
    max_window: int = 1000
    behavioural_k: int = 20
    budget_ms: float = 25.0
    explain_top: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"rerank.enabled: {self.enabled!r} must be true or false")
        for key in ("window", "max_window", "explain_top"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"rerank.{key}: {value!r} must be a whole number >= 1")
        if not isinstance(self.behavioural_k, int) or isinstance(self.behavioural_k, bool) or self.behavioural_k < 0:
            raise ConfigError(f"rerank.behavioural_k: {self.behavioural_k!r} must be a whole number >= 0")
        if self.window > self.max_window:
            raise ConfigError(f"rerank.window: {self.window} is above rerank.max_window ({self.max_window})")
        b = self.budget_ms
        if not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isfinite(b) or b < 0:
            raise ConfigError(f"rerank.budget_ms: {b!r} must be a number >= 0 (milliseconds)")

    def clamp_window(self, requested: int | None) -> int:
        """The window for one request; a request may ask for a smaller or larger one up to ``max_window``.

        Raises ConfigError naming the parameter when ``requested`` is outside ``1..max_window``.
        """
        if requested is None:
            return self.window
        if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= self.max_window:
            raise ConfigError(f"window: {requested!r} must be a whole number from 1 to {self.max_window}")
        return requested

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> RerankSettings:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("'rerank' must be a mapping (e.g. rerank: {window: 100, budget_ms: 25})")
        check_keys("rerank", raw, ("enabled", "window", "max_window", "behavioural_k", "budget_ms", "explain_top"))
        return cls(**dict(raw))
