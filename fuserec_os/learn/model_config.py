"""The ``model`` section of the ranking YAML: the MLP's architecture, loss and training schedule.

Every key is checked (a misspelt ``dropuot`` is a ConfigError naming it), like the other sections.
``loss: auto`` trains a pointwise and a listwise model and keeps the one with the better validation NDCG@10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fuserec_os.errors import ConfigError

LOSSES: tuple[str, ...] = ("pointwise", "listwise", "auto")
DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(11))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class ModelConfig:
    """How the reranking MLP is built and trained.

    * ``hidden``: units of the ReLU hidden layers (may be empty: a logistic/linear model);
    * ``dropout``: rate after each hidden layer, in [0, 1);
    * ``loss``: ``pointwise`` (binary cross-entropy on label > 0, sigmoid output), ``listwise`` (softmax
      cross-entropy over each search's list, linear output) or ``auto`` (both; the better validation NDCG@10);
    * ``epochs`` (a maximum), ``patience`` (epochs without a better validation NDCG@10 before stopping);
    * ``batch_size``: rows per batch for pointwise; listwise batches hold ``max(1, batch_size // max_list_size)``
      lists, so both see about the same number of items per step;
    * ``max_list_size``: listwise lists are padded (or truncated, positives kept first) to this length;
    * ``blend_alphas``: the grid the blend weight is tuned on; it must contain 0 (engine order).
    """

    hidden: tuple[int, ...] = (512, 256, 128)
    dropout: float = 0.5
    loss: str = "pointwise"
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 7
    max_list_size: int = 64
    blend_alphas: tuple[float, ...] = DEFAULT_ALPHAS

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, tuple) or not all(_is_int(h) and h >= 1 for h in self.hidden):
            raise ConfigError(f"model.hidden: {self.hidden!r} must be a list of whole numbers >= 1 (layer sizes)")
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout: {self.dropout!r} must be a number in [0, 1)")
        if self.loss not in LOSSES:
            raise ConfigError(f"model.loss: {self.loss!r} is not a loss (expected one of {', '.join(LOSSES)})")
        for key, lo in (("epochs", 1), ("batch_size", 1), ("patience", 1), ("max_list_size", 2), ("seed", 0)):
            value = getattr(self, key)
            if not _is_int(value) or value < lo:
                raise ConfigError(f"model.{key}: {value!r} must be a whole number >= {lo}")
        if not _is_number(self.learning_rate) or self.learning_rate <= 0:
            raise ConfigError(f"model.learning_rate: {self.learning_rate!r} must be a number > 0")
        alphas = self.blend_alphas
        if not isinstance(alphas, tuple) or not alphas or not all(_is_number(a) and 0.0 <= a <= 1.0 for a in alphas):
            raise ConfigError(f"model.blend_alphas: {alphas!r} must be a non-empty list of numbers in [0, 1]")
        if 0.0 not in alphas:
            raise ConfigError(
                "model.blend_alphas must contain 0 (the engine's order), so the tuned blend can never do "
                "worse than the engine on validation"
            )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> ModelConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("'model' must be a mapping (e.g. model: {hidden: [512, 256, 128], loss: auto})")
        valid = tuple(f.name for f in fields(cls))
        unknown = sorted(str(k) for k in raw if k not in valid)
        if unknown:
            raise ConfigError(
                f"unknown model setting(s) {', '.join(f'model.{k}' for k in unknown)}; valid keys: {', '.join(valid)}"
            )
        kwargs = dict(raw)
        for key in ("hidden", "blend_alphas"):
            if key in kwargs:
                value = kwargs[key]
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"model.{key}: {value!r} must be a list")
                kwargs[key] = tuple(float(v) if key == "blend_alphas" and _is_number(v) else v for v in value)
        return cls(**kwargs)
