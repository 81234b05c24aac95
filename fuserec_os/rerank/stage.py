"""The rerank stage: the engine's window (plus behavioural candidates) in, one page of reranked hits out.

One implementation for every way in: the Python backend and ``fuserec search --user`` (synchronous I/O in
:mod:`fuserec_os.rerank.pipeline`) and the proxy (asynchronous I/O in :mod:`fuserec_os.serve`) fetch the same
things and hand them to :meth:`RerankStage.run`, which does no I/O at all. That split is what lets a benchmark
time the stage alone and lets the parity test feed it exactly what training saw.

Contract (checked by :func:`check_input`, the PyTerrier habit of validating between stages):

* ``StageInput.hits`` is the engine's top window in engine order, from rank 1 (never a page from the middle),
  at most ``RerankSettings.window`` long, ids unique;
* ``StageInput.behavioural`` are products engaged after the same query (or its terms) that satisfy the
  request's filters, none of them already in ``hits``; engine score None (they may not match the text);
* ``offset``/``size`` is the page the client asked for. The full order is: the reranked candidates, then the
  engine's order after the window, skipping anything already shown (OpenSearch's ``rescore`` contract), so
  paging never repeats or skips a product. :func:`page_slice` says which part of a page comes from where.

What happens is always in the result: ``applied`` (the model's blended order was used), ``fallback`` (why not,
or which cold-start path), ``model_version`` and ``timings_ms`` per step. :meth:`RerankStage.run` never raises:
personalization never fails a search.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fuserec_os.features.assemble import Candidates, RequestContext, assemble
from fuserec_os.features.items import ItemTable
from fuserec_os.features.spec import BEHAVIOUR_FEATURES, FeatureSet
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.item_signals import ItemSignals
from fuserec_os.profiles.query_stats import QueryStatsView
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import minmax
from fuserec_os.rerank.settings import RerankSettings

__all__ = [
    "FALLBACKS",
    "EngineHit",
    "LoadedModel",
    "RankedHit",
    "RerankSettings",
    "RerankStage",
    "RuleSet",
    "SignalsSource",
    "StageInput",
    "StageResult",
    "check_input",
    "page_slice",
]

FALLBACKS: Mapping[str, str] = {
    "no_model": "no active model in the registry: engine order",
    "disabled": "personalization is switched off in the config (rerank.enabled: false): engine order",
    "no_user": "no user id: the model's cold-start path (alpha for users without history)",
    "no_profile": "no profile for this user yet: the model's cold-start path",
    "not_relevance": "the request sorts by something other than relevance: passed through",
    "budget": "the latency budget was exceeded: engine order",
    "model_error": "the model or its features failed: engine order",
    "store_error": "reading the profile or the query statistics failed: engine order",
    "beyond_window": "the page lies after the reranked window: engine order",
    "variant_engine": "the shopper's experiment variant serves engine order (the control of an A/B test)",
}
"""Every value :attr:`StageResult.fallback` can take, with what it means (shown by ``--explain``, counted by the
proxy's metrics). ``no_user``/``no_profile`` still apply the model (``applied`` is True) through its gate."""


# ------------------------------------------------------------------------------------------ data between stages


@dataclass(frozen=True)
class EngineHit:
    """One candidate as the engine returned it. ``raw`` is the engine's hit object (the proxy returns it)."""

    id: str
    score: float | None
    source: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StageInput:
    """What the stage needs for one request; fetched by the caller (see the module docstring for the contract)."""

    query: str
    hits: Sequence[EngineHit]
    offset: int = 0
    size: int = 10
    user_id: str | None = None
    behavioural: Sequence[EngineHit] = ()
    profile: UserProfile | None = None
    stats: QueryStatsView | None = None
    now: pd.Timestamp | None = None
    explain: bool = False
    elapsed_ms: float = 0.0
    """Time already spent on this request's personalization I/O (profile and statistics fetches) beyond the
    engine query itself; it counts against the budget."""
    alpha: float | None = None
    """A blend weight instead of the model's gate (an experiment variant's ``blend``); None: the gate decides."""


@dataclass(frozen=True)
class RankedHit:
    hit: EngineHit
    new_rank: int  # 1-based position in the full reranked order
    engine_rank: int | None  # 1-based, None for a behavioural candidate
    engine_score: float | None
    model_score: float | None = None
    blended_score: float | None = None
    explanation: tuple[tuple[str, float], ...] = ()  # (feature in words, contribution), largest |moves| first

    @property
    def id(self) -> str:
        return self.hit.id

    def info(self, explain: bool = False) -> dict[str, Any]:
        """Ranks and scores as JSON (the CLI's ``--explain``, the proxy's ``X-Fuserec-Explain``); with
        ``explain``, ``explanation``: [{"feature": words, "contribution": signed number}], largest first."""
        out: dict[str, Any] = {
            "new_rank": self.new_rank,
            "engine_rank": self.engine_rank,
            "engine_score": self.engine_score,
            "model_score": self.model_score,
            "blended_score": self.blended_score,
            "source": "engine" if self.engine_rank is not None else "behavioural",
        }
        if explain:
            out["explanation"] = [{"feature": words, "contribution": round(c, 6)} for words, c in self.explanation]
        return out


@dataclass(frozen=True)
class StageResult:
    """The page and what happened. ``order`` holds the full reranked candidate order (page slicing uses it)."""

    hits: list[RankedHit]
    order: list[RankedHit]
    applied: bool
    fallback: str | None
    model_version: str | None
    timings_ms: dict[str, float]
    window: int
    behavioural_added: int
    notes: tuple[str, ...] = ()

    def info(self) -> dict[str, Any]:
        """The small JSON block responses carry (``fuserec`` in the proxy, ``personalization`` in the CLI)."""
        return {
            "applied": self.applied,
            "fallback": self.fallback,
            "model_version": self.model_version,
            "window": self.window,
            "behavioural_candidates": self.behavioural_added,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            **({"notes": list(self.notes)} if self.notes else {}),
        }


class RuleSet(Protocol):
    """Business rules applied after the model (``rerank/rules.py``): reorder or drop, never add."""

    def apply(
        self, query_norm: str, ranked: list[RankedHit], page_size: int
    ) -> tuple[list[RankedHit], tuple[str, ...]]:
        """The new order of ``ranked`` (a subset, e.g. out-of-stock dropped) and notes saying what moved."""
        ...

    def pinned_ids(self, query_norm: str) -> tuple[str, ...]:
        """Products pinned for this query, fetched with the behavioural candidates (filters still apply)."""
        ...


def check_input(inp: StageInput, window: int) -> None:
    """Raise ValueError when ``inp`` breaks the contract (a caller bug, never the shopper's input)."""
    if len(inp.hits) > window:
        raise ValueError(f"{len(inp.hits)} engine hits for a window of {window}")
    ids = [h.id for h in inp.hits]
    if len(set(ids)) != len(ids):
        raise ValueError("engine hits repeat a product id")
    overlap = set(ids) & {h.id for h in inp.behavioural}
    if overlap:
        raise ValueError(f"behavioural candidates already in the window: {sorted(overlap)[:3]}")
    if inp.offset < 0 or inp.size < 0:
        raise ValueError(f"offset {inp.offset} and size {inp.size} must be >= 0")


def page_slice(offset: int, size: int, n_reranked: int) -> tuple[tuple[int, int], int, int]:
    """Where page ``[offset, offset+size)`` comes from: ((start, stop) into the reranked order, tail, skip).

    ``tail`` hits come from the engine's order after the window, starting ``skip`` places into that tail
    (before removing products already shown in the reranked part, which the caller must skip).
    """
    start = min(offset, n_reranked)
    stop = min(offset + size, n_reranked)
    tail = size - (stop - start)
    skip = max(0, offset - n_reranked)
    return (start, stop), tail, skip


# ------------------------------------------------------------------------------------------ the loaded model


@dataclass
class LoadedModel:
    """A registry version ready to serve: the artifact plus every per-item array precomputed at load time."""

    version: str
    artifact: ModelArtifact
    items: ItemTable
    feature_set: FeatureSet

    @classmethod
    def build(cls, version: str, artifact: ModelArtifact, products: pd.DataFrame) -> LoadedModel:
        """Precompute the item table from the catalog documents and the artifact's own product vectors."""
        items = ItemTable.from_catalog(products, artifact.product_vectors)
        return cls(version, artifact, items, FeatureSet(artifact.features))

    def warm(self, hits: Sequence[EngineHit] | None = None) -> None:
        """Score one batch so the first request pays no lazy set-up; raises when the model cannot score."""
        pids = [h.id for h in hits] if hits else self.items.product_ids[:100]
        cands = Candidates(pids, np.ones(len(pids)), np.arange(1, len(pids) + 1, dtype=np.float64))
        ctx = RequestContext(query="warm up", user=None, now=pd.Timestamp.now(tz="UTC"))
        scores = self.artifact.scorer.predict(assemble(self.feature_set, self.items, ctx, cands).X)
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"model {self.version} scored a warm-up batch with non-finite values")

    @property
    def needs_item_signals(self) -> bool:
        """The model reads behaviour signals of items (``item_*`` features): serving must hold them."""
        return bool(BEHAVIOUR_FEATURES & set(self.feature_set.names))

    def close(self) -> None:
        self.artifact.scorer.close()


class SignalsSource(Protocol):
    """Where the stage takes the item signals of a request from: the process's in-memory copy
    (:class:`~fuserec_os.profiles.item_cache.ItemSignalsCache`), never a per-request read."""

    def current(self) -> ItemSignals | None: ...


# ------------------------------------------------------------------------------------------ the stage


_NO_RULES = frozenset({"not_relevance"})
"""Fallbacks that return the engine's answer untouched (an explicit sort is the client's order)."""


def _engine_order(hits: Sequence[EngineHit]) -> list[RankedHit]:
    return [RankedHit(h, i, i, h.score) for i, h in enumerate(hits, start=1)]


Describe = Callable[[str, float, EngineHit, UserProfile | None, str], str]
"""(feature column, its value in X, the hit, the profile, the request's query) -> words (``rerank/explain.py``)."""


def _plain(name: str, value: float, hit: EngineHit, user: UserProfile | None, query: str) -> str:
    return name.replace("_", " ")


class RerankStage:
    """Rerank one request's candidates with a loaded model (or return engine order, saying why)."""

    def __init__(
        self,
        model: LoadedModel | None,
        settings: RerankSettings | None = None,
        rules: RuleSet | None = None,
        describe: Describe | None = None,
        signals: SignalsSource | None = None,
    ) -> None:
        """``signals``: the item signals' source; None (or a source holding none) makes the ``item_*``
        behaviour features missing, as for a shop without events."""
        self.model = model
        self.settings = settings or RerankSettings()
        self.rules = rules
        self.describe = describe or _plain
        self.signals = signals

    def run(self, inp: StageInput, *, window: int | None = None) -> StageResult:
        """Never raises (a broken contract is reported as ``model_error`` with the reason in ``notes``)."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        win = window or self.settings.window
        try:
            check_input(inp, win)
        except ValueError as exc:
            return self._fallback(inp, "model_error", win, timings, t0, (f"stage input: {exc}",))
        model = self.model
        if not self.settings.enabled:
            return self._fallback(inp, "disabled", win, timings, t0)
        if model is None:
            return self._fallback(inp, "no_model", win, timings, t0)
        if inp.elapsed_ms > self.settings.budget_ms:
            return self._fallback(inp, "budget", win, timings, t0)
        cands_hits = [*inp.hits, *inp.behavioural]
        if not cands_hits:
            return self._fallback(inp, None, win, timings, t0)
        try:
            t = time.perf_counter()
            cands = Candidates(
                [h.id for h in cands_hits],
                np.array([math.nan if h.score is None else float(h.score) for h in cands_hits], dtype=np.float64),
                np.array([i + 1 if i < len(inp.hits) else math.nan for i in range(len(cands_hits))], dtype=np.float64),
                score_range=_window_range(inp.hits),
            )
            now = inp.now if inp.now is not None else pd.Timestamp.now(tz="UTC")
            signals = self.signals.current() if self.signals is not None and model.needs_item_signals else None
            ctx = RequestContext(query=inp.query, user=inp.profile, now=now, stats=inp.stats, item_signals=signals)
            feats = assemble(model.feature_set, model.items, ctx, cands)
            timings["features"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            model_scores = model.artifact.scorer.predict(feats.X)
            if not np.all(np.isfinite(model_scores)):
                raise ValueError("the model produced non-finite scores")
            gate = model.artifact.gate
            n_events = inp.profile.n_events if inp.profile is not None else None
            alpha = inp.alpha if inp.alpha is not None else gate.alpha(n_events)
            blended = (1.0 - alpha) * minmax(cands.engine_scores) + alpha * minmax(model_scores)
            # ties keep engine order (behavioural candidates after engine ones): a stable sort on -score
            order = np.argsort(-blended, kind="stable")
            timings["score"] = (time.perf_counter() - t) * 1000
        except Exception as exc:  # personalization never fails a search
            return self._fallback(inp, "model_error", win, timings, t0, (f"{type(exc).__name__}: {exc}",))
        if inp.elapsed_ms + (time.perf_counter() - t0) * 1000 > self.settings.budget_ms:
            return self._fallback(inp, "budget", win, timings, t0)
        ranked: list[RankedHit] = []
        n_engine = len(inp.hits)
        # plain Python numbers once for the whole list (not a NumPy scalar conversion per candidate and field)
        model_list, blended_list = model_scores.tolist(), blended.tolist()
        for pos, i in enumerate(order.tolist(), start=1):
            hit = cands_hits[i]
            ranked.append(
                RankedHit(hit, pos, i + 1 if i < n_engine else None, hit.score, model_list[i], blended_list[i])
            )
        notes: tuple[str, ...] = ()
        if self.rules is not None:
            t = time.perf_counter()
            try:
                ranked, notes = self.rules.apply(_norm(inp.query), ranked, inp.size)
            except Exception as exc:
                return self._fallback(inp, "model_error", win, timings, t0, (f"business rules: {exc}",), rules=False)
            ranked = [_renumber(h, pos) for pos, h in enumerate(ranked, start=1)]
            timings["rules"] = (time.perf_counter() - t) * 1000
        if inp.explain:
            try:
                ranked = self._explain_page(inp, ranked, feats, {h.id: i for i, h in enumerate(cands_hits)})
            except Exception as exc:
                return self._fallback(inp, "model_error", win, timings, t0, (f"explanation: {exc}",))
        fallback = None
        if inp.user_id is None:
            fallback = "no_user"
        elif inp.profile is None:
            fallback = "no_profile"
        return self._result(inp, ranked, True, fallback, model.version, win, timings, t0, notes)

    def engine_order(self, inp: StageInput, reason: str, notes: tuple[str, ...] = ()) -> StageResult:
        """Engine order for ``inp``, saying why (``reason`` in :data:`FALLBACKS`): what a caller returns when it
        decides not to run the model at all (a price sort, a failed profile read)."""
        if reason not in FALLBACKS:
            raise ValueError(f"reason {reason!r} is not one of {', '.join(FALLBACKS)}")
        return self._fallback(inp, reason, len(inp.hits) or self.settings.window, {}, time.perf_counter(), notes)

    # --- helpers ------------------------------------------------------------------------------------------

    def _explain_page(
        self, inp: StageInput, ranked: list[RankedHit], feats: Any, row_of: Mapping[str, int]
    ) -> list[RankedHit]:
        """``ranked`` with explanations on the page's hits only: the contributions cost a pass of the model per
        explained row, and nobody reads them for the candidates the client is not shown."""
        assert self.model is not None
        (start, stop), _tail, _skip = page_slice(inp.offset, inp.size, len(ranked))
        if stop <= start:
            return ranked
        page = ranked[start:stop]
        rows = [row_of[h.id] for h in page]
        contributions = self.model.artifact.scorer.explain(feats.X[rows])
        names = feats.names
        out = list(ranked)
        for k, (h, i) in enumerate(zip(page, rows, strict=True)):
            row = contributions[k]
            top = [j for j in np.argsort(-np.abs(row), kind="stable")[: self.settings.explain_top] if row[j] != 0]
            words = tuple(
                (self.describe(names[j], float(feats.X[i, j]), h.hit, inp.profile, inp.query), float(row[j]))
                for j in top
            )
            out[start + k] = RankedHit(
                h.hit, h.new_rank, h.engine_rank, h.engine_score, h.model_score, h.blended_score, words
            )
        return out

    def _fallback(
        self,
        inp: StageInput,
        reason: str | None,
        win: int,
        timings: dict[str, float],
        t0: float,
        notes: tuple[str, ...] = (),
        *,
        rules: bool = True,
    ) -> StageResult:
        ranked = _engine_order(inp.hits)
        if rules and self.rules is not None and reason not in _NO_RULES:
            # business rules hold without the model too: a pin or an out-of-stock drop must not vanish when
            # the model is off, slow or broken
            try:
                ranked, rule_notes = self.rules.apply(_norm(inp.query), ranked, inp.size)
                ranked = [_renumber(h, pos) for pos, h in enumerate(ranked, start=1)]
                notes = (*notes, *rule_notes)
            except Exception as exc:  # rules that fail leave engine order as it is
                notes = (*notes, f"business rules: {exc}")
        version = self.model.version if self.model is not None else None
        return self._result(inp, ranked, False, reason, version, win, timings, t0, notes)

    def _result(
        self,
        inp: StageInput,
        ranked: list[RankedHit],
        applied: bool,
        fallback: str | None,
        version: str | None,
        win: int,
        timings: dict[str, float],
        t0: float,
        notes: tuple[str, ...],
    ) -> StageResult:
        (start, stop), _tail, _skip = page_slice(inp.offset, inp.size, len(ranked))
        timings["stage"] = (time.perf_counter() - t0) * 1000
        return StageResult(
            hits=ranked[start:stop],
            order=ranked,
            applied=applied,
            fallback=fallback,
            model_version=version,
            timings_ms=timings,
            window=win,
            behavioural_added=len(inp.behavioural) if applied else 0,
            notes=notes,
        )


def _window_range(hits: Sequence[EngineHit]) -> tuple[float, float] | None:
    """The engine window's score range: ``bm25_norm`` is scaled by it, as training scales by its top engine_k."""
    scores = [float(h.score) for h in hits if h.score is not None and math.isfinite(float(h.score))]
    return (min(scores), max(scores)) if scores else None


def _renumber(hit: RankedHit, pos: int) -> RankedHit:
    if hit.new_rank == pos:
        return hit
    return RankedHit(
        hit.hit, pos, hit.engine_rank, hit.engine_score, hit.model_score, hit.blended_score, hit.explanation
    )


def _norm(query: str) -> str:
    from fuserec_os.behaviour.events import normalize_query

    return normalize_query(query or "")
