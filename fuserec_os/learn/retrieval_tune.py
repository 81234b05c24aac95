"""Retrieval tuned from the log: which field boosts and ``multi_match`` type put the engaged products first.

What ``fuserec search tune`` runs. The judged searches are the ones training learns from, read the same way
(:func:`~fuserec_os.learn.dataset.derive_request_ids`, :func:`~fuserec_os.learn.dataset.logged_searches` and
:func:`~fuserec_os.learn.dataset.graded_labels`): every logged search with a query and at least one click,
add to cart or purchase carrying its request id (or, without request ids, the searches derived from one user's
events after the same query). Each search's engaged products and their grades (purchase 3, add_to_cart 2,
click 1) are its relevance judgements.

Each candidate :class:`~fuserec_os.search.request.SearchConfig` (:func:`candidate_configs`: a small grid of
field boosts times ``best_fields`` / ``most_fields`` / ``cross_fields``) runs every distinct query once through
the engine against the live products alias, as search serves it (the same request body,
:class:`~fuserec_os.search.retrieval.EngineRetriever`: ``size`` 100, ``_source: false``, ``_msearch``
batches). The engine is the scorer: BM25 statistics, analyzers and ``cross_fields`` blending cannot be
reproduced outside it.

Metrics per search, averaged over the searches (a frequent query counts as often as it was searched):

* ``recall@100``: the share of the search's engaged products in the top 100;
* ``mrr``: 1 / rank of the first engaged product in the top 100, 0 when none is there;
* ``ndcg@10``: gain ``2**grade - 1``, discount ``1 / log2(rank + 1)``, normalised by the ideal DCG@10 of all
  the search's engaged products, retrieved or not (the conventions of :mod:`fuserec_os.rerank.metrics`), so a
  config that misses engaged products is not flattered.

The winner (:data:`PRIMARY`) has the highest MRR, then recall@100, then NDCG@10; on a tie the config in force
wins (nothing to change). With fewer than ``min_searches`` judged searches there is no winner: the numbers are
shown, but too few to act on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import read_events
from fuserec_os.behaviour.search_log import read_impressions as read_stored_impressions
from fuserec_os.config import RankingConfig
from fuserec_os.errors import ConfigError, IndexStateError, QueryError
from fuserec_os.learn.dataset import derive_request_ids, graded_labels, logged_searches
from fuserec_os.profiles.jobs import Aliases
from fuserec_os.search.request import MULTI_MATCH_TYPES, SearchConfig
from fuserec_os.search.retrieval import EngineRetriever

__all__ = [
    "BOOST_SETS",
    "DEFAULT_MIN_SEARCHES",
    "PRIMARY",
    "Candidate",
    "ConfigResult",
    "JudgedSearch",
    "TuneOutcome",
    "candidate_configs",
    "evaluate_ranked",
    "judged_searches",
    "pick_winner",
    "render_table",
    "search_metrics",
    "tune_retrieval",
]

Progress = Callable[[str], None]

RECALL_K = 100
NDCG_K = 10
#: The metric that picks the winner; ties go to recall@100, then NDCG@10, then the config in force.
PRIMARY = "mrr"
METRICS = ("recall@100", "mrr", "ndcg@10")
#: Fewer judged searches than this and no config is called the winner (``--min-searches``).
DEFAULT_MIN_SEARCHES = 50
BATCH = 250  # queries per _msearch request

#: The field-boost grid (the searchable fields of the default config). ``current`` (the config in force) is
#: always evaluated too; a set equal to it is shown once, as ``current``.
BOOST_SETS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "default": (("title", 3.0), ("brand.text", 2.0), ("category.text", 1.5), ("tags.text", 1.5), ("description", 1.0)),
    "equal": (("title", 1.0), ("brand.text", 1.0), ("category.text", 1.0), ("tags.text", 1.0), ("description", 1.0)),
    "title2": (("title", 2.0), ("brand.text", 1.5), ("category.text", 1.5), ("tags.text", 1.5), ("description", 1.0)),
    "tags+cat": (("title", 1.0), ("brand.text", 1.0), ("category.text", 2.0), ("tags.text", 2.0), ("description", 1.0)),
    "desc-low": (("title", 2.0), ("brand.text", 1.5), ("category.text", 1.5), ("tags.text", 1.5), ("description", 0.5)),
    "equal-desc-low": (
        ("title", 1.0),
        ("brand.text", 1.0),
        ("category.text", 1.0),
        ("tags.text", 1.0),
        ("description", 0.5),
    ),
}


# --------------------------------------------------------------------------------------------- judged searches


@dataclass(frozen=True)
class JudgedSearch:
    """One logged search with engagement: its query and each engaged product's best grade."""

    request_id: str
    query: str
    grades: Mapping[str, int]


def judged_searches(
    events: pd.DataFrame, impressions: pd.DataFrame | None, derived_search_gap: pd.Timedelta | None
) -> list[JudgedSearch]:
    """The logged searches with engagement, read as training reads them (see the module docstring)."""
    labelled = events
    if derived_search_gap is not None:
        labelled, _ = derive_request_ids(events, derived_search_gap)
    searches = logged_searches(labelled, impressions)
    per_request: dict[str, dict[str, int]] = {}
    for (rid, pid), grade in graded_labels(labelled).items():
        if grade > 0:
            per_request.setdefault(rid, {})[pid] = grade
    return [
        JudgedSearch(str(rid), str(query), per_request[str(rid)])
        for rid, query in zip(searches["request_id"], searches["query"], strict=True)
        if str(rid) in per_request
    ]


# --------------------------------------------------------------------------------------------- metrics


def search_metrics(
    ranked: Sequence[str], grades: Mapping[str, int], recall_k: int = RECALL_K, ndcg_k: int = NDCG_K
) -> dict[str, float]:
    """recall@k, reciprocal rank and NDCG@k of one search's ranked product ids against its engaged products.

    ``grades``: engaged product -> grade (> 0; products with grade 0 are ignored). A search without any engaged
    product has nothing to find: a ValueError, as it must never be averaged in.
    """
    engaged = {p: g for p, g in grades.items() if g > 0}
    if not engaged:
        raise ValueError("a search without engaged products cannot be judged")
    top = list(dict.fromkeys(ranked))  # a product listed twice counts at its first rank
    found = [p for p in top[:recall_k] if p in engaged]
    first = next((i for i, p in enumerate(top[:recall_k], start=1) if p in engaged), None)
    dcg = sum((2.0 ** engaged[p] - 1) / math.log2(i + 1) for i, p in enumerate(top[:ndcg_k], start=1) if p in engaged)
    ideal = sorted(engaged.values(), reverse=True)[:ndcg_k]
    idcg = sum((2.0**g - 1) / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return {
        f"recall@{recall_k}": len(found) / len(engaged),
        "mrr": 1.0 / first if first is not None else 0.0,
        f"ndcg@{ndcg_k}": dcg / idcg,
    }


def evaluate_ranked(searches: Sequence[JudgedSearch], ranked: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The mean metrics over ``searches`` given each query's ranked product ids, plus ``missed``: the searches
    with none of their engaged products in the top 100. A query missing from ``ranked`` retrieved nothing."""
    if not searches:
        raise ValueError("no searches to evaluate")
    totals = dict.fromkeys(METRICS, 0.0)
    missed = 0
    for s in searches:
        m = search_metrics(ranked.get(s.query, ()), s.grades)
        for key in METRICS:
            totals[key] += m[key]
        missed += m["recall@100"] == 0
    out = {key: value / len(searches) for key, value in totals.items()}
    out["missed"] = float(missed)
    return out


# --------------------------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One search config to evaluate: a named boost set and a ``multi_match`` type."""

    boosts: str
    config: SearchConfig
    in_force: bool = False  # the config in force (what a tie goes to)

    @property
    def name(self) -> str:
        return f"{self.boosts} {self.config.multi_match_type}"


def candidate_configs(current: SearchConfig) -> list[Candidate]:
    """``current`` as it is, then every boost set of :data:`BOOST_SETS` times every ``multi_match`` type.

    Everything but the fields and the type (tie_breaker, minimum_should_match, caps) is the config in force; a
    combination already listed is not repeated (a boost set equal to the current boosts is ``current``).
    """
    out = [Candidate("current", current, in_force=True)]
    seen = {(current.fields, current.multi_match_type)}
    for kind in MULTI_MATCH_TYPES:
        for name, fields in {"current": current.fields, **BOOST_SETS}.items():
            if (fields, kind) in seen:
                continue
            seen.add((fields, kind))
            out.append(Candidate(name, replace(current, fields=fields, multi_match_type=kind)))
    return out


@dataclass
class ConfigResult:
    candidate: Candidate
    metrics: dict[str, float]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        cfg = self.candidate.config
        return {
            "name": self.candidate.name,
            "boosts": self.candidate.boosts,
            "in_force": self.candidate.in_force,
            "fields": dict(cfg.fields),
            "multi_match_type": cfg.multi_match_type,
            "tie_breaker": cfg.tie_breaker if cfg.multi_match_type != "most_fields" else None,
            **{k: round(v, 4) for k, v in self.metrics.items() if k != "missed"},
            "missed": int(self.metrics["missed"]),
            "seconds": round(self.seconds, 2),
        }


def _rank_key(r: ConfigResult) -> tuple[float, float, float, bool]:
    m = r.metrics
    return (round(m["mrr"], 9), round(m["recall@100"], 9), round(m["ndcg@10"], 9), r.candidate.in_force)


def pick_winner(results: Sequence[ConfigResult], searches: int, min_searches: int) -> tuple[int | None, str]:
    """(index of the winner in ``results`` or None, why). Highest MRR, then recall@100, then NDCG@10; a tie goes
    to the config in force. No winner with fewer than ``min_searches`` searches."""
    if not results:
        return None, "no config was evaluated"
    if searches < min_searches:
        return None, (
            f"only {searches} searches with engagement: too few to pick a config (at least {min_searches}, "
            "--min-searches); log more searches"
        )
    best = max(range(len(results)), key=lambda i: _rank_key(results[i]))
    current = next((r for r in results if r.candidate.in_force), None)
    if results[best].candidate.in_force:
        return best, "the config in force is the best of the grid: nothing to change"
    gain = ""
    if current is not None:
        delta = results[best].metrics["mrr"] - current.metrics["mrr"]
        gain = f" (MRR {delta:+.4f} over the config in force)"
    return best, f"{results[best].candidate.name} has the highest MRR{gain}"


# --------------------------------------------------------------------------------------------- the run


@dataclass
class TuneOutcome:
    results: list[ConfigResult]
    winner: int | None
    reason: str
    searches: int
    queries: int
    skipped_queries: dict[str, str] = field(default_factory=dict)  # query -> why it could not run
    source: str = ""
    seconds: float = 0.0
    min_searches: int = DEFAULT_MIN_SEARCHES

    @property
    def best(self) -> ConfigResult | None:
        return None if self.winner is None else self.results[self.winner]

    @property
    def changes(self) -> bool:
        """Whether the winner differs from the config in force."""
        best = self.best
        return best is not None and not best.candidate.in_force

    def as_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "searches": self.searches,
            "queries": self.queries,
            "skipped_queries": len(self.skipped_queries),
            "source": self.source,
            "primary_metric": PRIMARY,
            "min_searches": self.min_searches,
            "configs": [r.as_dict() for r in self.results],
            "winner": best.as_dict() if best is not None else None,
            "changes": self.changes,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
        }


def tune_retrieval(
    client: OpenSearch,
    aliases: Aliases,
    ranking: RankingConfig,
    *,
    impressions: Path | None = None,
    min_searches: int = DEFAULT_MIN_SEARCHES,
    candidates: Sequence[Candidate] | None = None,
    progress: Progress | None = None,
) -> TuneOutcome:
    """Evaluate every candidate config on the logged searches with engagement (see the module docstring).

    The events and the search log are read from the cluster (``impressions``: a search-log file instead, as
    ``model train --impressions``). Raises IndexStateError without events, ConfigError without a judged search.
    """
    say = progress or (lambda _m: None)
    started = time.monotonic()
    events = read_events(client, aliases.events)
    if events.empty:
        raise IndexStateError(f"no events behind '{aliases.events}': run 'fuserec ingest events FILE' first.")
    log: pd.DataFrame | None
    if impressions is not None:
        from fuserec_os.learn.train_job import read_impressions

        log, source = read_impressions(impressions), f"impressions file {impressions.name}"
    else:
        stored = read_stored_impressions(client, aliases.searches)
        log = stored if len(stored) else None
        source = f"search log '{aliases.searches}'" if log is not None else "events (no search log)"
    gap = pd.Timedelta(minutes=ranking.events.derived_search_gap_minutes)
    searches = judged_searches(events, log, gap)
    if not searches:
        raise ConfigError(
            "no logged searches with engagement: no click, add_to_cart or purchase after a query (ingest events "
            "with a query, and a request_id or the search log)"
        )
    candidates = list(candidates) if candidates is not None else candidate_configs(ranking.search)
    queries = list(dict.fromkeys(s.query for s in searches))
    # the evaluation asks for the top 100 whatever the paging caps; only fields and type differ between configs
    deep = max(RECALL_K, ranking.search.max_size)
    skipped: dict[str, str] = {}
    probe = EngineRetriever(client, aliases.products, RECALL_K, config=_deep(ranking.search, deep))
    for q in queries:
        try:
            probe.body(q)
        except QueryError as exc:
            skipped[q] = str(exc)
    if skipped:
        queries = [q for q in queries if q not in skipped]
        searches = [s for s in searches if s.query not in skipped]
        say(f"{len(skipped)} queries cannot be searched as they are (e.g. {next(iter(skipped.values()))}): left out")
    if not searches:
        raise ConfigError("no logged search with engagement has a query that can be searched")
    say(
        f"{len(searches):,} searches with engagement from the {source}, {len(queries):,} distinct queries; "
        f"{len(candidates)} configs, each one _msearch pass over the queries (size {RECALL_K}) on '{aliases.products}'"
    )
    results: list[ConfigResult] = []
    for i, cand in enumerate(candidates, start=1):
        t = time.monotonic()
        retriever = EngineRetriever(
            client, aliases.products, RECALL_K, batch_size=BATCH, config=_deep(cand.config, deep)
        )
        ranked = dict(zip(queries, retriever.search(queries), strict=True))
        metrics = evaluate_ranked(searches, ranked)
        results.append(ConfigResult(cand, metrics, time.monotonic() - t))
        say(
            f"[{i}/{len(candidates)}] {cand.name}: MRR {metrics['mrr']:.4f}, recall@100 {metrics['recall@100']:.4f} "
            f"({time.monotonic() - t:.1f}s)"
        )
    winner, reason = pick_winner(results, len(searches), min_searches)
    return TuneOutcome(
        results=results,
        winner=winner,
        reason=reason,
        searches=len(searches),
        queries=len(queries),
        skipped_queries=skipped,
        source=source,
        seconds=time.monotonic() - started,
        min_searches=min_searches,
    )


def _deep(cfg: SearchConfig, size: int) -> SearchConfig:
    """``cfg`` allowing a page of ``size`` (the evaluation's depth), whatever its paging caps."""
    return replace(cfg, max_size=size, max_result_window=max(size, cfg.max_result_window))


# --------------------------------------------------------------------------------------------- output


def _boosts_text(fields: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {boost:g}" for name, boost in fields)


def render_table(outcome: TuneOutcome) -> str:
    """The configs best first (the winner marked ``*``), then what each boost set means and the verdict."""
    order = sorted(range(len(outcome.results)), key=lambda i: _rank_key(outcome.results[i]), reverse=True)
    name_w = max(len("config"), *(len(r.candidate.name) for r in outcome.results)) + 2
    lines = [f"  {'config':<{name_w}}{'recall@100':>11}{'MRR':>9}{'NDCG@10':>9}{'missed':>8}{'searches':>10}"]
    for i in order:
        r = outcome.results[i]
        mark = "*" if i == outcome.winner else " "
        m = r.metrics
        lines.append(
            f"{mark} {r.candidate.name:<{name_w}}{m['recall@100']:>11.4f}{m['mrr']:>9.4f}{m['ndcg@10']:>9.4f}"
            f"{int(m['missed']):>8}{outcome.searches:>10}"
        )
    lines.append("")
    sets: dict[str, tuple[tuple[str, float], ...]] = {}
    for r in outcome.results:
        sets.setdefault(r.candidate.boosts, r.candidate.config.fields)
    for name, fields in sets.items():
        lines.append(f"  {name}: {_boosts_text(fields)}")
    current = next((r.candidate for r in outcome.results if r.candidate.in_force), None)
    if current is not None:
        lines.append(
            f"  in force: {current.name}, tie_breaker {current.config.tie_breaker:g} (best_fields, cross_fields)"
        )
    lines.append(
        f"  missed: searches with none of their engaged products in the top {RECALL_K}. Winner: highest MRR, then "
        f"recall@{RECALL_K}, then NDCG@{NDCG_K}."
    )
    best = outcome.best
    verdict = f"* {best.candidate.name}: {outcome.reason}" if best is not None else f"no winner: {outcome.reason}"
    lines.append(verdict)
    return "\n".join(lines)
