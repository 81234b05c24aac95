"""Experiments in the proxy: which variant a search gets, how that variant ranks, and what its impression logs.

Per personalizable search: the running experiment covering the index (at most one; stopped ones left out), the
shopper's variant by salted hash (:func:`fuserec_os.experiments.assign.assign`: the same in every replica), then
a *ranker* for :func:`fuserec_os.serve.personalize.personalized_search`:

* ``engine: true``: engine order (business rules still apply: they are the shop's policy in both arms), the
  result saying ``variant_engine``;
* a model (``active`` or a registry version) with its own gate, or with the variant's ``blend`` weight;
* interleave mode: the control's and the treatment's full orders mixed by team draft (first page and beyond use
  the same mixed order; the coin is seeded by the request id), each shown product logged with its team.

Everything a second replica needs is in the cluster: the config says which experiments exist, the state index
which were stopped (polled every ``poll_seconds``, like the registry's active version). Versions named by a
variant other than the active one are loaded and warmed in the background; until one is, its variant serves
engine order and the response says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fuserec_os.experiments.assign import Assignment, active_experiment, assign, impression_fields
from fuserec_os.experiments.config import ACTIVE_MODEL, ExperimentsConfig, Variant
from fuserec_os.experiments.interleave import interleave_request
from fuserec_os.rerank.stage import RankedHit, RerankStage, StageInput, StageResult, page_slice
from fuserec_os.serve.personalize import Ranker

log = logging.getLogger("fuserec.serve")

Loader = Callable[[str], Any]
"""A registry version -> a loaded model (:class:`~fuserec_os.rerank.stage.LoadedModel`), warmed by the caller."""
StoppedReader = Callable[[list[str]], "set[str]"]
"""Experiment names -> the stopped ones (:func:`fuserec_os.experiments.state.stopped_experiments`)."""


@dataclass
class Routed:
    """One search's experiment: the assignment, how its variant ranks, and (interleave) each product's team."""

    assignment: Assignment
    ranker: Ranker
    team_of: dict[str, str | None] = field(default_factory=dict)

    @property
    def variant_name(self) -> str:
        variant = self.assignment.variant
        return variant.name if variant is not None else "interleaved"

    def impression(self, page_ids: list[str]) -> dict[str, Any]:
        """The fields the search log row of this search gets (``experiment``, ``variant`` or ``teams``)."""
        teams = [self.team_of.get(pid) for pid in page_ids] if self.assignment.interleaved else None
        return impression_fields(self.assignment, teams)

    def info(self) -> dict[str, Any]:
        """What the response's ``fuserec`` section says about the experiment."""
        return {"experiment": self.assignment.experiment.name, "variant": self.variant_name}


class ExperimentRouter:
    """Routes searches to experiment variants (module docstring); ``check`` polls stops and loads versions."""

    def __init__(
        self,
        config: ExperimentsConfig,
        prefix: str,
        *,
        stopped_reader: StoppedReader,
        loader: Loader | None = None,
        poll_seconds: float = 10.0,
        guardrail_check: Callable[[], Any] | None = None,
        guardrail_seconds: float = 300.0,
        ensure_signals: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.stopped_reader = stopped_reader
        self.loader = loader
        self.poll_seconds = poll_seconds
        self.guardrail_check = guardrail_check if any(e.guardrail for e in config.running()) else None
        self.guardrail_seconds = guardrail_seconds
        self.ensure_signals = ensure_signals  # a version using item signals needs the process's copy loaded
        self._last_guardrail = time.monotonic()
        self.stopped: frozenset[str] = frozenset()
        self.pinned: dict[str, Any] = {}  # version -> LoadedModel, for variants naming a version
        self.refused: dict[str, str] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.config.running())

    def versions_wanted(self) -> set[str]:
        return {
            v.model_version
            for e in self.config.running()
            for v in e.variants
            if not v.engine and v.model_version not in (None, ACTIVE_MODEL)
        }

    # -- background -----------------------------------------------------------------------------------------
    def check(self) -> None:
        """One poll: which experiments were stopped; load (and warm) versions variants name."""
        names = [e.name for e in self.config.running()]
        if not names:
            return
        try:
            stopped = frozenset(self.stopped_reader(names))
            if stopped != self.stopped:
                for name in sorted(stopped - self.stopped):
                    log.warning("fuserec serve: experiment %s is stopped: its searches are served as without it", name)
            self.stopped = stopped
        except Exception as exc:  # the cluster is away: keep what we knew
            self.last_error = f"reading stopped experiments: {exc}"
            log.warning("fuserec serve: %s", self.last_error)
        if self.loader is None:
            return
        for version in sorted(self.versions_wanted() - set(self.pinned) - set(self.refused)):
            try:
                model = self.loader(version)
                model.warm()
                if self.ensure_signals is not None and getattr(model, "needs_item_signals", False):
                    self.ensure_signals()  # a failed read leaves the item_* features missing, not the model refused
            except Exception as exc:
                self.refused[version] = f"{type(exc).__name__}: {exc}"
                log.error("fuserec serve: model %s of an experiment refused: %s", version, self.refused[version])
                continue
            self.pinned[version] = model
            log.warning("fuserec serve: model %s loaded for an experiment variant", version)

    def start(self) -> None:
        if self._thread is None and self.enabled:
            self._thread = threading.Thread(target=self._run, name="fuserec-experiments", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()
            if self.guardrail_check is not None and time.monotonic() - self._last_guardrail >= self.guardrail_seconds:
                self._last_guardrail = time.monotonic()
                self.check_guardrails()

    def check_guardrails(self) -> None:
        """Run the guardrail check (it reads the experiments' logs and may stop one for every replica: minutes
        apart, in this background thread, never on the request path); a failure is logged, never raised."""
        if self.guardrail_check is None:
            return
        try:
            self.guardrail_check()
        except Exception as exc:
            self.last_error = f"checking guardrails: {exc}"
            log.warning("fuserec serve: %s", self.last_error)
            return
        self.check()  # a guardrail that tripped stopped its experiment: serve as without it from now on

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- per request ----------------------------------------------------------------------------------------
    def covers(self, index: str) -> bool:
        """Whether a running (not stopped) experiment covers searches on ``index``."""
        return active_experiment(self.config, index, prefix=self.prefix, stopped=self.stopped) is not None

    def route(
        self, index: str, user_id: str | None, session_id: str | None, base: RerankStage, request_id: str
    ) -> Routed | None:
        """The search's experiment and ranker, or None (no running experiment covers ``index``, or no id)."""
        if not self.enabled:
            return None
        experiment = active_experiment(self.config, index, prefix=self.prefix, stopped=self.stopped)
        if experiment is None:
            return None
        assignment = assign(experiment, user_id, session_id)
        if assignment is None:
            return None
        if not assignment.interleaved:
            assert assignment.variant is not None
            return Routed(assignment, self._variant_ranker(assignment.variant, base))
        routed = Routed(assignment, _unused)
        control = self._variant_ranker(experiment.control, base)
        treatment = self._variant_ranker(experiment.treatments[0], base)

        def rank(inp: StageInput, window: int) -> StageResult:
            c, t = control(inp, window), treatment(inp, window)
            mixed = interleave_request(assignment, [h.id for h in c.order], [h.id for h in t.order], request_id)
            routed.team_of.update(zip(mixed.product_ids, mixed.teams, strict=True))
            return _mixed_result(c, t, list(mixed.product_ids), inp)

        routed.ranker = rank
        return routed

    def _variant_ranker(self, variant: Variant, base: RerankStage) -> Ranker:
        if variant.engine:
            return lambda inp, window: base.engine_order(inp, "variant_engine")
        stage = base
        version = variant.model_version or ACTIVE_MODEL
        current = base.model.version if base.model is not None else None
        if version not in (ACTIVE_MODEL, current):
            model = self.pinned.get(version)
            if model is None:
                why = self.refused.get(version, "not loaded yet")
                note = f"model {version} of variant {variant.name} is unavailable ({why}): engine order"
                return lambda inp, window: base.engine_order(inp, "no_model", (note,))
            stage = RerankStage(model, base.settings, base.rules, base.describe, base.signals)
        if variant.blend is not None:
            blend = variant.blend
            return lambda inp, window: stage.run(replace(inp, alpha=blend), window=window)
        return lambda inp, window: stage.run(inp, window=window)


def _unused(inp: StageInput, window: int) -> StageResult:
    raise AssertionError("replaced before use")


def _mixed_result(control: StageResult, treatment: StageResult, ids: list[str], inp: StageInput) -> StageResult:
    """The interleaved order as a stage result: each product's ranks and scores from the side that had it (the
    treatment's when both did), renumbered in the mixed order."""
    by_id: dict[str, RankedHit] = {h.id: h for h in control.order}
    by_id.update({h.id: h for h in treatment.order})
    order = [replace(by_id[pid], new_rank=pos) for pos, pid in enumerate(ids, start=1)]
    (start, stop), _tail, _skip = page_slice(inp.offset, inp.size, len(order))
    return StageResult(
        hits=order[start:stop],
        order=order,
        applied=treatment.applied,
        fallback=treatment.fallback,
        model_version=treatment.model_version,
        timings_ms={**control.timings_ms, **treatment.timings_ms},
        window=treatment.window,
        behavioural_added=treatment.behavioural_added,
        notes=(*control.notes, *treatment.notes),
    )
