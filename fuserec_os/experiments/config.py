"""The ``experiments`` section of the ranking YAML: A/B tests and interleaving experiments (pure Python).

Why pure Python: the ranking YAML is validated whole when any command starts, and the proxy reads this section
on its request path; neither may pay for NumPy or pandas here (the statistics live in
:mod:`fuserec_os.experiments.stats`).

An experiment is keyed by its name (the name ``fuserec ab report|stop`` takes, and the default assignment salt)::

    experiments:
      mlp-vs-engine:
        mode: ab                  # ab: each user sees one variant | interleave: one list mixing two
        state: running            # running | stopped (``fuserec ab stop`` stops it for every proxy replica)
        indices: [products]       # logical index names (or full aliases) whose searches it covers
        attribution_hours: 24     # events this long after a search can count for it
        primary_metric: conversion
        variants:
          control: {share: 0.5, control: true, engine: true}       # engine order
          treatment: {share: 0.5, model_version: active}           # the registry's active model (or v7)
        guardrail: {metric: ctr, max_drop: 0.05}

A variant serves exactly one of: engine order (``engine: true``), a registry model version (``model_version``:
``active`` or ``vN``, optionally with a ``blend`` alpha override), or the active model with another blend weight
(``blend`` alone). In ``ab`` mode the shares must sum to 1; in ``interleave`` mode there are exactly two variants
and no shares (every request shows both, interleaved). Exactly one variant is the control: the one with
``control: true``, else the one named ``control``. At most one running experiment may cover an index, so what a
search serves is never ambiguous.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuserec_os.behaviour.config import check_keys
from fuserec_os.errors import ConfigError

__all__ = [
    "AB",
    "AB_METRICS",
    "INTERLEAVE",
    "METRICS",
    "MODES",
    "STATES",
    "Experiment",
    "ExperimentsConfig",
    "Guardrail",
    "Variant",
]

AB, INTERLEAVE = "ab", "interleave"
MODES: tuple[str, ...] = (AB, INTERLEAVE)
RUNNING, STOPPED = "running", "stopped"
STATES: tuple[str, ...] = (RUNNING, STOPPED)
ACTIVE_MODEL = "active"

#: Metrics of an A/B report, with what they measure (the report and the docs use these words).
AB_METRICS: dict[str, str] = {
    "ctr": "searches with a click / searches",
    "click_to_cart": "searches with an add to cart / searches with a click",
    "conversion": "searches with a purchase / searches",
    "conversion_per_user": "users with a purchase / users",
    "revenue_per_search": "revenue of attributed purchases / searches",
}
#: Every metric a guardrail or a verdict can name: the A/B ones and interleaving's win rate.
METRICS: dict[str, str] = {**AB_METRICS, "win_rate": "interleaved searches the treatment won / won or lost"}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VERSION_RE = re.compile(r"^v[1-9][0-9]*$")
_EXPERIMENT_KEYS = (
    "mode",
    "state",
    "indices",
    "attribution_hours",
    "primary_metric",
    "variants",
    "guardrail",
    "salt",
)
_VARIANT_KEYS = ("share", "control", "engine", "model_version", "blend")
_GUARDRAIL_KEYS = ("metric", "max_drop", "min_searches", "confidence", "auto_stop")
_SHARE_TOLERANCE = 1e-6
_EXAMPLE = "e.g. experiments: {mlp-vs-engine: {variants: {control: {share: 0.5, engine: true}, ...}}}"


def _name(where: str, raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _NAME_RE.match(raw):
        raise ConfigError(
            f"{where}: {raw!r} is not a valid {what} name (letters, digits, '-', '_' or '.', starting with a letter "
            "or digit, at most 64 characters; e.g. mlp-vs-engine)"
        )
    return raw


def _bool(where: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f"{where}: {raw!r} must be true or false")
    return raw


def _fraction(where: str, raw: Any, *, low: float, high: float, low_open: bool = False) -> float:
    ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
    if ok and (raw > low if low_open else raw >= low) and raw <= high:
        return float(raw)
    bracket = "(" if low_open else "["
    raise ConfigError(f"{where}: {raw!r} must be a number in {bracket}{low:g}, {high:g}]")


# ------------------------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment and what it serves (see the module docstring).

    ``share``: the fraction of users assigned to it (``ab`` mode; None in ``interleave`` mode). ``engine``: engine
    order, no model. Otherwise ``model_version`` (``active`` or a registry version ``vN``) scores the candidates
    and ``blend`` (None: the model's own tuned alpha) overrides the blend weight.
    """

    name: str
    share: float | None = None
    control: bool = False
    engine: bool = False
    model_version: str | None = None
    blend: float | None = None

    @property
    def serves(self) -> str:
        """What the variant serves, in words: ``engine order``, ``model v7``, ``model active, blend 0.3``."""
        if self.engine:
            return "engine order"
        text = f"model {self.model_version or ACTIVE_MODEL}"
        return text if self.blend is None else f"{text}, blend {self.blend:g}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "share": self.share,
            "control": self.control,
            "engine": self.engine,
            "model_version": None if self.engine else (self.model_version or ACTIVE_MODEL),
            "blend": self.blend,
            "serves": self.serves,
        }

    @classmethod
    def from_dict(cls, where: str, name: str, raw: Any, mode: str) -> Variant:
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{where}: {raw!r} must be a mapping saying what the variant serves "
                "(e.g. {share: 0.5, engine: true} or {share: 0.5, model_version: v7})"
            )
        check_keys(where, raw, _VARIANT_KEYS)
        share: float | None = None
        if mode == AB:
            if raw.get("share") is None:
                raise ConfigError(f"{where}.share: required in ab mode (the fraction of users, e.g. 0.5)")
            share = _fraction(f"{where}.share", raw["share"], low=0.0, high=1.0, low_open=True)
        elif raw.get("share") is not None:
            raise ConfigError(
                f"{where}.share: interleave mode shows both variants to every user in one list; leave share out"
            )
        control = _bool(f"{where}.control", raw.get("control", False))
        engine = _bool(f"{where}.engine", raw.get("engine", False))
        version = raw.get("model_version")
        if (
            version is not None
            and version != ACTIVE_MODEL
            and not (isinstance(version, str) and _VERSION_RE.match(version))
        ):
            raise ConfigError(
                f"{where}.model_version: {version!r} must be 'active' (the registry's active model) or a "
                "registry version like v7 (see fuserec model list)"
            )
        blend = raw.get("blend")
        if blend is not None:
            blend = _fraction(f"{where}.blend", blend, low=0.0, high=1.0)
        if engine and (version is not None or blend is not None):
            raise ConfigError(
                f"{where}: engine: true serves engine order, without a model; drop model_version and blend, "
                "or set engine: false"
            )
        if not engine and version is None and blend is None:
            raise ConfigError(
                f"{where}: say what the variant serves: engine: true (engine order), model_version: active|vN "
                "(a registry model), or blend: 0..1 (the active model with another blend weight)"
            )
        return cls(name=name, share=share, control=control, engine=engine, model_version=version, blend=blend)


# ------------------------------------------------------------------------------------------ guardrails


@dataclass(frozen=True)
class Guardrail:
    """Stop the experiment when the treatment is significantly worse on ``metric``.

    Tripped when the upper end of the ``confidence`` interval of the treatment's relative lift over the control
    is below zero (significantly worse) and the lift itself is a drop of more than ``max_drop`` (0.05: 5%
    worse), once every variant has ``min_searches`` searches. ``confidence`` is 0.99 by default, not 0.95,
    because a guardrail looks again and again (each look is a chance for a false alarm). ``auto_stop``: a
    tripped guardrail stops the experiment (else it is only reported).
    """

    metric: str
    max_drop: float = 0.0
    min_searches: int = 1000
    confidence: float = 0.99
    auto_stop: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "max_drop": self.max_drop,
            "min_searches": self.min_searches,
            "confidence": self.confidence,
            "auto_stop": self.auto_stop,
        }

    @classmethod
    def from_dict(cls, where: str, raw: Any, mode: str) -> Guardrail | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: {raw!r} must be a mapping (e.g. guardrail: {{metric: ctr, max_drop: 0.05}})")
        check_keys(where, raw, _GUARDRAIL_KEYS)
        metric = raw.get("metric")
        valid = ("win_rate",) if mode == INTERLEAVE else tuple(AB_METRICS)
        if metric not in valid:
            raise ConfigError(
                f"{where}.metric: {metric!r} is not a metric of {mode} mode (expected one of {', '.join(valid)})"
            )
        max_drop = _fraction(f"{where}.max_drop", raw.get("max_drop", 0.0), low=0.0, high=1.0)
        if max_drop >= 1.0:
            raise ConfigError(f"{where}.max_drop: {max_drop:g} must be below 1 (a relative drop: 0.05 is 5% worse)")
        min_searches = raw.get("min_searches", 1000)
        if not isinstance(min_searches, int) or isinstance(min_searches, bool) or min_searches < 1:
            raise ConfigError(f"{where}.min_searches: {min_searches!r} must be a whole number >= 1")
        confidence = _fraction(f"{where}.confidence", raw.get("confidence", 0.99), low=0.5, high=0.9999)
        auto_stop = _bool(f"{where}.auto_stop", raw.get("auto_stop", True))
        return cls(str(metric), max_drop, min_searches, confidence, auto_stop)


# ------------------------------------------------------------------------------------------ experiments


@dataclass(frozen=True)
class Experiment:
    """One experiment of the ``experiments`` section (see the module docstring for every key)."""

    name: str
    variants: tuple[Variant, ...]
    mode: str = AB
    state: str = RUNNING
    indices: tuple[str, ...] = ("products",)
    attribution_hours: float = 24.0
    primary_metric: str = "conversion"
    guardrail: Guardrail | None = None
    salt: str | None = None

    @property
    def control(self) -> Variant:
        return next(v for v in self.variants if v.control)

    @property
    def treatments(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if not v.control)

    @property
    def hash_salt(self) -> str:
        """What assignment hashes with the user id: ``salt`` when set, else the experiment's name."""
        return self.salt if self.salt is not None else self.name

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def applies_to(self, index: str, prefix: str = "") -> bool:
        """Whether a search on ``index`` (the name the caller used: an alias with the tenant prefix, or the
        logical name) falls under this experiment."""
        return any(index in (name, f"{prefix}{name}") for name in self.indices)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "state": self.state,
            "indices": list(self.indices),
            "attribution_hours": self.attribution_hours,
            "primary_metric": self.primary_metric,
            "salt": self.hash_salt,
            "variants": [v.as_dict() for v in self.variants],
            "guardrail": self.guardrail.as_dict() if self.guardrail else None,
        }

    @classmethod
    def from_dict(cls, name: Any, raw: Any) -> Experiment:
        name = _name("experiments", name, "experiment")
        where = f"experiments.{name}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: {raw!r} must be a mapping with mode, variants, ... ({_EXAMPLE})")
        check_keys(where, raw, _EXPERIMENT_KEYS)
        mode = raw.get("mode", AB)
        if mode not in MODES:
            raise ConfigError(f"{where}.mode: {mode!r} must be one of {', '.join(MODES)}")
        state = raw.get("state", RUNNING)
        if state not in STATES:
            raise ConfigError(f"{where}.state: {state!r} must be one of {', '.join(STATES)}")
        indices = _indices(f"{where}.indices", raw.get("indices", ["products"]))
        hours = raw.get("attribution_hours", 24)
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours <= 0:
            raise ConfigError(f"{where}.attribution_hours: {hours!r} must be a number of hours > 0 (e.g. 24)")
        variants = _variants(f"{where}.variants", raw.get("variants"), mode)
        default_metric = "win_rate" if mode == INTERLEAVE else "conversion"
        metric = raw.get("primary_metric", default_metric)
        valid = ("win_rate",) if mode == INTERLEAVE else tuple(AB_METRICS)
        if metric not in valid:
            raise ConfigError(
                f"{where}.primary_metric: {metric!r} is not a metric of {mode} mode "
                f"(expected one of {', '.join(valid)})"
            )
        salt = raw.get("salt")
        if salt is not None and (not isinstance(salt, str) or not salt.strip()):
            raise ConfigError(f"{where}.salt: {salt!r} must be non-empty text (default: the experiment's name)")
        return cls(
            name=name,
            variants=variants,
            mode=mode,
            state=state,
            indices=indices,
            attribution_hours=float(hours),
            primary_metric=str(metric),
            guardrail=Guardrail.from_dict(f"{where}.guardrail", raw.get("guardrail"), mode),
            salt=salt,
        )


def _indices(where: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where}: {raw!r} must be a list of index names (e.g. [products])")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            raise ConfigError(f"{where}: {item!r} is not an index name (e.g. products)")
        if item in out:
            raise ConfigError(f"{where}: {item} is listed twice")
        out.append(item)
    return tuple(out)


def _variants(where: str, raw: Any, mode: str) -> tuple[Variant, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{where}: required, a mapping of variant name -> what it serves "
            "(e.g. variants: {control: {share: 0.5, engine: true}, treatment: {share: 0.5, model_version: active}})"
        )
    variants = [Variant.from_dict(f"{where}.{_name(where, k, 'variant')}", str(k), v, mode) for k, v in raw.items()]
    if len(variants) < 2:
        raise ConfigError(f"{where}: an experiment compares at least two variants (a control and a treatment)")
    if mode == INTERLEAVE and len(variants) != 2:
        raise ConfigError(f"{where}: interleave mode mixes exactly two lists: one control and one treatment")
    marked = [v.name for v in variants if v.control]
    if len(marked) > 1:
        raise ConfigError(f"{where}: exactly one variant is the control; {', '.join(marked)} all say control: true")
    if not marked:
        if not any(v.name == "control" for v in variants):
            raise ConfigError(
                f"{where}: no control: mark one variant with control: true (or name it control); lifts are measured "
                "against it"
            )
        variants = [Variant(**{**v.__dict__, "control": True}) if v.name == "control" else v for v in variants]
    if mode == AB:
        total = sum(v.share or 0.0 for v in variants)
        if abs(total - 1.0) > _SHARE_TOLERANCE:
            shares = ", ".join(f"{v.name} {v.share:g}" for v in variants)
            raise ConfigError(f"{where}: the shares must sum to 1 ({shares} sum to {total:g})")
    return tuple(variants)


@dataclass(frozen=True)
class ExperimentsConfig:
    """The ``experiments`` section: experiments by name, in file order."""

    experiments: Mapping[str, Experiment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        running = [e for e in self.experiments.values() if e.running]
        for i, a in enumerate(running):
            for b in running[i + 1 :]:
                both = sorted(set(a.indices) & set(b.indices))
                if both:
                    raise ConfigError(
                        f"experiments.{b.name}: runs on {', '.join(both)} like experiments.{a.name}; at most one "
                        "running experiment per index (set state: stopped on one, or give them other indices)"
                    )

    def running(self) -> tuple[Experiment, ...]:
        """The experiments the config says are running (``fuserec ab stop`` may have stopped some since)."""
        return tuple(e for e in self.experiments.values() if e.running)

    def get(self, name: str) -> Experiment:
        """The experiment ``name``; ConfigError listing the configured ones when there is none."""
        try:
            return self.experiments[name]
        except KeyError:
            known = ", ".join(self.experiments) or "none (add an experiments section to FUSEREC_CONFIG)"
            raise ConfigError(f"no experiment {name!r} in the ranking config (configured: {known})") from None

    @classmethod
    def from_dict(cls, raw: Any) -> ExperimentsConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"'experiments' must be a mapping of experiment name -> settings ({_EXAMPLE})")
        return cls({str(name): Experiment.from_dict(name, value) for name, value in raw.items()})
