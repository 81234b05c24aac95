"""The ``model`` section of the ranking YAML: the MLP's architecture, loss and training schedule.

Every key is checked (a misspelt ``dropuot`` is a ConfigError naming it), like the other sections.
``loss: auto`` trains a pointwise and a listwise model and keeps the one with the better validation NDCG@10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeGuard

from fuserec_os.errors import ConfigError

LOSSES: tuple[str, ...] = ("pointwise", "listwise", "auto")
DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(11))
SPLITS: tuple[str, ...] = ("train", "valid", "test")
DEFAULT_MIN_SEARCHES: Mapping[str, int] = {"train": 50, "valid": 20, "test": 20}
"""Searches with engagement each split needs before a model is trained: the demo (1,000 shoppers, 14 days) has
about 1,787 / 316 / 701 and its small test run (150 shoppers, 7 days) 139 / 25 / 55; 10 events have 1 / 1 / 1."""


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


SAMPLE_ENABLED: tuple[Any, ...] = ("auto", True, False)
CORRECTIONS: tuple[str, ...] = ("offset", "weight")


@dataclass(frozen=True)
class SampleConfig:
    """``model.sample``: sampling the pointwise training candidates (see :mod:`fuserec_os.learn.sampling`).

    * ``enabled``: ``auto`` (default: sample when the training set has more than ``above_rows`` rows), ``true``
      or ``false``;
    * ``above_rows``: the ``auto`` threshold (default 500,000 rows: the demo's few thousand never sample, a
      40k-search log with 50 candidates each, about 2M rows, does);
    * ``keep_top``: every candidate the engine ranked this high or higher is kept (default 5), as is every
      candidate with a label > 0;
    * ``rate``: each other candidate is kept with this probability, in (0, 1], and weighs ``1 / rate`` in the
      loss (default 0.05), so the expected loss is the full set's. With 50 candidates and 2 positives per
      search, about 9 rows of 50 remain;
    * ``correction``: ``offset`` (default: the sampled stratum's rows carry a logit offset ``log(1 / rate)``,
      unit weights) or ``weight`` (sampled negatives weigh ``1 / rate``): both keep the estimate unbiased;
    * ``batch_size``: rows per batch when training on the sample (default 256): training on wide lists is
      bound by the number of optimizer steps, not by rows, and a sample with fewer rows per batch takes as many
      steps as the whole set for a fraction of the arithmetic.
    """

    enabled: Any = "auto"
    above_rows: int = 500_000
    keep_top: int = 5
    rate: float = 0.05
    correction: str = "offset"
    batch_size: int = 256

    def __post_init__(self) -> None:
        if not any(self.enabled is v or (isinstance(v, str) and self.enabled == v) for v in SAMPLE_ENABLED):
            raise ConfigError(f"model.sample.enabled: {self.enabled!r} must be auto, true or false")
        for key in ("above_rows", "keep_top"):
            value = getattr(self, key)
            if not _is_int(value) or value < 0:
                raise ConfigError(f"model.sample.{key}: {value!r} must be a whole number >= 0")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"model.sample.batch_size: {self.batch_size!r} must be a whole number >= 1")
        if not _is_number(self.rate) or not 0.0 < self.rate <= 1.0:
            raise ConfigError(f"model.sample.rate: {self.rate!r} must be a number in (0, 1]")
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"model.sample.correction: {self.correction!r} must be one of {', '.join(CORRECTIONS)}")

    @classmethod
    def from_value(cls, raw: Any) -> SampleConfig:
        if raw is None:
            return cls()
        if isinstance(raw, SampleConfig):
            return raw
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"model.sample: {raw!r} must be a mapping (e.g. sample: {{enabled: auto, keep_top: 5, rate: 0.05}})"
            )
        valid = tuple(f.name for f in fields(cls))
        unknown = sorted(str(k) for k in raw if k not in valid)
        if unknown:
            raise ConfigError(
                f"unknown {', '.join(f'model.sample.{k}' for k in unknown)}; valid keys: {', '.join(valid)}"
            )
        kwargs = {str(k): v for k, v in raw.items() if v is not None}
        if isinstance(kwargs.get("rate"), int) and not isinstance(kwargs.get("rate"), bool):
            kwargs["rate"] = float(kwargs["rate"])
        if "sample" in kwargs:
            kwargs["sample"] = SampleConfig.from_value(kwargs["sample"])
        return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    """How the reranking MLP is built and trained.

    * ``hidden``: units of the ReLU hidden layers (may be empty: a logistic/linear model);
    * ``dropout``: rate after each hidden layer, in [0, 1);
    * ``loss``: ``auto`` (default: trains both and keeps the better validation NDCG@10; a training set large enough
      to be sampled trains pointwise only, see :func:`~fuserec_os.learn.model.train_mlp`), ``pointwise`` (binary
      cross-entropy on label > 0, sigmoid output) or ``listwise`` (softmax cross-entropy over each search's list
      against NDCG's gains, linear output). ``auto`` is the default since issue 11: with leak-free features and a
      validation that rehearses the test, listwise won on the larger simulated shop in every seed tried
      (validation NDCG@10 0.586 vs 0.571; test 0.595 vs 0.585 on average, 82% vs 78% of the oracle's gain over
      engine order), while on the synthetic ``benchmarks/train.py`` lists pointwise does as well (0.913 vs 0.910):
      which loss suits a log is the validation's call;
    * ``epochs`` (a maximum), ``patience`` (epochs without a better validation NDCG@10 before stopping);
    * ``batch_size``: rows per batch for pointwise; listwise batches hold ``max(1, batch_size // max_list_size)``
      lists, so both see about the same number of items per step;
    * ``max_list_size``: listwise lists are padded (or truncated, positives kept first) to this length;
    * ``blend_alphas``: the grid the blend weight is tuned on; it must contain 0 (engine order);
    * ``min_searches``: the fewest searches with engagement each split (``train``, ``valid``, ``test``) must hold,
      or training stops with a ConfigError saying how many there are: a model tuned on one validation search and
      tested on one test search proves nothing, yet its numbers would go to the registry and the promotion gate.
      A partial mapping keeps the defaults (train 50, valid 20, test 20) for the splits it does not name.
    * ``sample``: sampling the pointwise training candidates of large training sets (:class:`SampleConfig`).
    """

    hidden: tuple[int, ...] = (512, 256, 128)
    dropout: float = 0.5
    loss: str = "auto"
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 7
    max_list_size: int = 64
    blend_alphas: tuple[float, ...] = DEFAULT_ALPHAS
    min_searches: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_SEARCHES))
    sample: SampleConfig = field(default_factory=SampleConfig)

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
        minimum = self.min_searches
        if not isinstance(minimum, Mapping):
            raise ConfigError(
                f"model.min_searches: {minimum!r} must be a mapping of split -> searches "
                "(e.g. min_searches: {train: 50, valid: 20, test: 20})"
            )
        unknown = [str(k) for k in minimum if k not in SPLITS]
        if unknown:
            raise ConfigError(
                f"unknown {', '.join(f'model.min_searches.{k}' for k in unknown)} (the splits are {', '.join(SPLITS)})"
            )
        for split in SPLITS:
            value = minimum.get(split)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"model.min_searches.{split}: {value!r} must be a whole number >= 1")
        if not isinstance(self.sample, SampleConfig):
            raise ConfigError(f"model.sample: {self.sample!r} must be a SampleConfig")

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
        if kwargs.get("min_searches") is None:
            kwargs.pop("min_searches", None)  # null: the defaults
        elif isinstance(kwargs["min_searches"], Mapping):  # the splits it names; the defaults for the others
            kwargs["min_searches"] = {**DEFAULT_MIN_SEARCHES, **{str(k): v for k, v in kwargs["min_searches"].items()}}
        if "sample" in kwargs:
            kwargs["sample"] = SampleConfig.from_value(kwargs["sample"])
        return cls(**kwargs)
