"""``fuserec demo`` / ``make demo``: the main job end to end, every stage that exists, one numbered step each.

Engine -> products index from mappings/ -> generated catalog (plus three deliberately broken rows, to show
the rejects report) -> ingest with a progress bar into a fresh index swapped in behind the alias -> BM25 and
Boolean searches with filters, facets, sorting and paging -> simulated shoppers -> events and search log
stored -> profiles, query statistics and item signals -> the MLP trained, evaluated against baselines, registered and
promoted -> the query proxy serving it to an unchanged opensearch-py client for two shoppers
(``demo_proxy``). Every later stage (experiments, ...) adds its step here, and to ``fuserec demo --help``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fuserec_os.behaviour.event_store import ingest_events
from fuserec_os.behaviour.search_log import ingest_impressions
from fuserec_os.commands.ingest import month_range
from fuserec_os.commands.profiles import profile_summary, render_profile
from fuserec_os.commands.render import render_facets, render_hits
from fuserec_os.config import RankingConfig, load_ranking_config
from fuserec_os.engine import Engine
from fuserec_os.errors import ConfigError
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec, load_mapping, mapping_path
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.jobs import Aliases, build_from_store
from fuserec_os.profiles.store import read_all_profiles
from fuserec_os.search.backend import PRODUCTS, SearchBackend
from fuserec_os.search.request import Filters, SearchRequest, Sort
from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.settings import Settings
from fuserec_os.simulate.catalog import GeneratedProduct, generate_catalog, write_catalog
from fuserec_os.simulate.oracle import click_oracle
from fuserec_os.simulate.shoppers import simulate, write_simulation
from fuserec_os.timefmt import utc_iso

BROKEN_ROWS: list[dict[str, Any]] = [
    {"product_id": "BAD-1", "title": "   ", "price": "12.50"},
    {"product_id": "BAD-2", "title": "Mystery gadget", "price": "twelve dollars"},
    {"product_id": "BAD-3", "title": "Half-stocked lamp", "in_stock": "maybe", "rating": "9.5"},
]


@dataclass(frozen=True)
class DemoSearch:
    label: str
    request: SearchRequest


@dataclass
class DemoOutcome:
    indexed: int = 0
    rejected: int = 0
    searches: dict[str, int] = field(default_factory=dict)
    events: int = 0
    profiles: int = 0
    model_version: str | None = None
    active_model: str | None = None
    proxy: dict[str, Any] = field(default_factory=dict)
    ab: dict[str, Any] = field(default_factory=dict)


def demo_searches() -> list[DemoSearch]:
    """The searches the demo runs: each shows one capability."""
    return [
        DemoSearch("BM25 free text", SearchRequest(text="running shoes", size=5)),
        DemoSearch(
            "Boolean: AND, OR, NOT",
            SearchRequest(text="headphones AND (wireless OR bluetooth) -earbuds", size=5),
        ),
        DemoSearch("phrase + field range", SearchRequest(text='"coffee maker" price:[20 TO 150]', size=5)),
        DemoSearch(
            "filters: category subtree, in stock, rating >= 4, cheapest first",
            SearchRequest(
                text="",
                filters=Filters(category="electronics", in_stock=True, rating_min=4.0),
                sort=Sort.PRICE_ASC,
                size=5,
            ),
        ),
        DemoSearch("paging: page 2 of 'jacket'", SearchRequest(text="jacket", page=2, size=5, facets=False)),
    ]


def run_demo(
    engine: Engine,
    settings: Settings,
    spec: MappingSpec,
    n: int = 5000,
    seed: int = 7,
    echo: Callable[[str], None] = print,
    users: int = 1000,
    days: float = 14,
) -> DemoOutcome:
    outcome = DemoOutcome()
    echo(f"== 1. engine: {engine.kind} at {engine.url} (OpenSearch API {engine.version})")

    workdir = settings.state_dir / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    clean = workdir / "catalog.jsonl"  # what 'generate events' and the oracle read
    catalog = workdir / "catalog-with-errors.jsonl"  # what the ingest step loads
    t0 = time.monotonic()
    products = generate_catalog(n, seed=seed)
    write_catalog(products, clean, latent_path=workdir / "catalog.latent.jsonl")
    with open(catalog, "w", encoding="utf-8") as out:
        out.write(clean.read_text(encoding="utf-8"))
        for row in BROKEN_ROWS:
            out.write(json.dumps(row) + "\n")
    echo(
        f"== 2. generated {n} products (seed {seed}) + {len(BROKEN_ROWS)} broken rows -> {catalog} "
        f"in {time.monotonic() - t0:.1f}s"
    )

    alias = settings.alias(PRODUCTS)
    echo(f"== 3. ingest into a new index from {spec.path.name} (mapping v{spec.version}), swap alias '{alias}'")
    rep = ingest_products(engine.client, catalog, spec, alias, replace=True, allow_rejects=True)
    outcome.indexed, outcome.rejected = rep.indexed, rep.rejected
    echo(
        f"   read {rep.read}, indexed {rep.indexed}, rejected {rep.rejected} in {rep.seconds:.1f}s "
        f"({rep.docs_per_second:.0f} docs/s); {rep.message}"
    )
    if rep.rejects_path:
        with open(rep.rejects_path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                echo(f"   rejected row {r['row']} ({r['product_id']}): {'; '.join(r['reasons'])}")

    backend = SearchBackend(engine.client, alias)
    for i, item in enumerate(demo_searches(), start=4):
        req = item.request
        shown = f"'{req.text}'" if req.text else "(browse)"
        where = f"filters={_filters_text(req.filters)} sort={req.sort.value} page={req.page}"
        echo(f"\n== {i}. {item.label}: {shown} {where}")
        result = backend.execute(req)
        outcome.searches[item.label] = result.total
        echo(render_hits(result))
        if result.facets:
            echo(render_facets(result.facets, top=4))
    _behaviour(engine, settings, products, workdir, users=users, days=days, seed=seed, echo=echo, outcome=outcome)
    echo(
        "\nDone. Try: fuserec search 'your query' --filter brand=... --json, fuserec profiles show USER "
        "(fuserec --help for more)"
    )
    return outcome


def _behaviour(
    engine: Engine,
    settings: Settings,
    products: list[GeneratedProduct],
    workdir: Path,
    *,
    users: int,
    days: float,
    seed: int,
    echo: Callable[[str], None],
    outcome: DemoOutcome,
) -> None:
    """Shoppers search and browse, their events are stored, profiles are built; two contrasting ones shown."""
    ranking = load_ranking_config(settings.config_path)
    aliases = Aliases.for_prefix(settings.index_prefix)
    echo(f"\n== 9. simulate {users} shoppers over {days:g} days (hidden tastes, imperfect queries, position bias)")
    result = simulate(products, EngineRetriever(engine.client, aliases.products), users=users, days=days, seed=seed)
    events_path = workdir / "events.jsonl"
    impressions_path = workdir / "events.impressions.jsonl"
    write_simulation(result, events_path, impressions_path, workdir / "events.truth.jsonl")
    for line in result.summary().splitlines():
        echo(f"   {line}")

    echo(f"== 10. ingest the events into monthly indices behind '{aliases.events}'")
    spec = load_mapping(mapping_path(settings.resolved_mappings_dir(), "events"), "events")
    rep = ingest_events(
        engine.client, events_path, spec, aliases.events, cfg=ranking.events, products_alias=aliases.products
    )
    outcome.events = rep.stored + rep.already_stored
    echo(
        f"   read {rep.read}, stored {rep.stored}, already stored {rep.already_stored}, rejected {rep.rejected} "
        f"in {rep.seconds:.1f}s into {month_range(rep.indices)}"
    )
    echo(f"   and the search log (what each search showed, in order) behind '{aliases.searches}'")
    searches_spec = load_mapping(mapping_path(settings.resolved_mappings_dir(), "searches"), "searches")
    logged = ingest_impressions(engine.client, impressions_path, searches_spec, aliases.searches)
    echo(
        f"   read {logged.read}, stored {logged.stored}, already stored {logged.already_stored}, rejected "
        f"{logged.rejected} in {logged.seconds:.1f}s into {month_range(logged.indices)}"
    )

    echo(
        f"== 11. build user profiles, query statistics and item signals (decay half-life "
        f"{ranking.profiles.half_life_days:g} days)"
    )
    job = build_from_store(engine.client, aliases, ranking.profiles)
    outcome.profiles = job.users
    echo(
        f"   {job.events} events -> {job.users} profiles and {job.vectors} product vectors; with "
        f"{job.impressions} logged searches -> {job.stats_docs} query-statistics docs and {job.item_docs} "
        f"item-signals docs in {sum(job.seconds.values()):.1f}s, as of {utc_iso(job.as_of)}"
    )
    profiles = list(read_all_profiles(engine.client, aliases.profiles).values())
    pair = contrasting_pair(profiles)
    if pair:
        echo("== 12. two contrasting shoppers")
        for profile in pair:
            echo(render_profile(profile_summary(profile)))
    _model(engine, settings, ranking, aliases, workdir, echo=echo, outcome=outcome)
    if outcome.model_version is None:
        return  # training was skipped (said above): nothing to serve
    from fuserec_os.commands.demo_proxy import proxy_step

    outcome.proxy = proxy_step(
        engine, settings, ranking, profiles, [p.doc for p in products],
        model_version=outcome.active_model or outcome.model_version, active=outcome.active_model is not None,
        now=pd.Timestamp(job.as_of) if job.as_of else None, step=15, echo=echo,
    )  # fmt: skip
    _tune(engine, ranking, aliases, echo=echo, step=16)
    # the trained version, promoted or not: an A/B test is how a shop would try a candidate it is unsure of
    version = outcome.active_model or outcome.model_version
    shoppers = min(DEMO_AB_USERS, users)  # the demo's own shoppers only: no new ones join its short test
    outcome.ab = _ab_test(
        engine, settings, ranking, workdir, echo=echo, step=17, version=version, shoppers=shoppers
    )  # fmt: skip


DEMO_AB_USERS = 400
DEMO_AB_DAYS = 3.0


def _ab_test(
    engine: Engine,
    settings: Settings,
    ranking: RankingConfig,
    workdir: Path,
    *,
    echo: Callable[[str], None],
    step: int,
    version: str,
    shoppers: int,
) -> dict[str, Any]:
    """A short ``fuserec simulate ab``: the simulated shoppers come back and search through the proxy, half of
    them served engine order, half model ``version`` (promoted or not); their clicks and purchases flow back;
    the report."""
    from fuserec_os.commands.ab import render_report
    from fuserec_os.commands.simulate_run import run_simulated_ab

    echo(
        f"\n== {step}. a short A/B test: {shoppers} of the simulated shoppers search for {DEMO_AB_DAYS:g} more "
        f"days through the proxy (half get engine order, half model {version}) and their clicks and purchases go "
        "back through POST /_fuserec/events (fuserec simulate ab runs longer ones)"
    )
    out = run_simulated_ab(
        engine, settings, ranking, world=workdir, users=shoppers, days=DEMO_AB_DAYS, replicates=1000,
        progress=False, echo=echo, model_version=version,
    )  # fmt: skip
    loop = out["loop"]
    echo(
        f"   {loop['sessions']:,} sessions, {loop['searches']:,} searches through the proxy, {loop['events']:,} "
        f"events sent back ({loop['events_rejected']} refused) in {loop['seconds']:.0f}s"
    )
    for line in render_report(out["_report"]):
        echo(f"   {line}" if line else "")
    return {k: v for k, v in out.items() if not k.startswith("_")}


def _tune(engine: Engine, ranking: RankingConfig, aliases: Aliases, *, echo: Callable[[str], None], step: int) -> None:
    """A short ``fuserec search tune``: the config in force, equal weights and the other multi_match types.

    Read-only (the demo writes no config); the full grid of ``search tune`` (18 configs) takes minutes here.
    """
    from fuserec_os.learn.retrieval_tune import BOOST_SETS, Candidate, render_table, tune_retrieval

    current = ranking.search
    grid = [Candidate("current", current, in_force=True)]
    grid += [
        Candidate("current", replace(current, multi_match_type=kind))
        for kind in ("most_fields", "cross_fields")
        if kind != current.multi_match_type
    ]
    grid.append(Candidate("equal", replace(current, fields=BOOST_SETS["equal"])))
    echo(
        f"\n== {step}. tune retrieval on the search log: the config in force vs equal field weights and the other "
        "multi_match types, judged by where the engaged products land (fuserec search tune runs the full grid)"
    )
    try:
        outcome = tune_retrieval(engine.client, aliases, ranking, candidates=grid, progress=lambda m: echo(f"   {m}"))
    except ConfigError as exc:
        echo(f"   skipped: {exc}")
        return
    echo(render_table(outcome))
    echo(f"   {outcome.searches:,} searches, {outcome.queries:,} distinct queries in {outcome.seconds:.1f}s")
    if outcome.changes:
        echo("   to use the winner: fuserec search tune --write [FILE] (default FUSEREC_CONFIG)")


def _model(
    engine: Engine,
    settings: Settings,
    ranking: RankingConfig,
    aliases: Aliases,
    workdir: Path,
    *,
    echo: Callable[[str], None],
    outcome: DemoOutcome,
    max_epochs: int = 8,
) -> None:
    """Train on the simulated log, print the evaluation against every baseline, register and promote."""
    from fuserec_os.learn.train_job import TrainOptions, run_training
    from fuserec_os.rerank.registry import ModelRegistry, PromotionRefused

    model_cfg = replace(ranking.model, epochs=min(ranking.model.epochs, max_epochs))
    echo(
        f"\n== 13. train the MLP ({'-'.join(map(str, model_cfg.hidden))}, {model_cfg.loss}, at most "
        f"{model_cfg.epochs} epochs) on leakage-free examples; evaluate against baselines on later searches"
    )
    options = TrainOptions(  # the impressions come from the cluster, like the events
        oracle=click_oracle(workdir / "events.truth.jsonl", workdir / "catalog.jsonl"),
        report_dir=workdir / "reports",
    )
    try:
        trained = run_training(
            engine.client, aliases, replace(ranking, model=model_cfg), options, progress=lambda m: echo(f"   {m}")
        )
    except ConfigError as exc:  # too little simulated behaviour for a train/valid/test split
        echo(f"   skipped training: {exc} (run the demo with more --users or --days)")
        return
    echo(trained.table)
    echo(f"   report with charts: {trained.html}")
    outcome.model_version = trained.version
    if trained.version is not None:
        registry = ModelRegistry(engine.client, aliases.prefix)
        try:
            res = registry.promote(trained.version)
        except PromotionRefused as exc:
            echo(f"== 14. {trained.version} was not promoted: {exc}")
            outcome.active_model = registry.active_version()  # an earlier demo's model may still serve
            return
        outcome.active_model = res.version
        echo(f"== 14. promoted {res.version} to active ({res.decision.reason if res.decision else 'first model'})")


def contrasting_pair(profiles: list[UserProfile], min_events: int = 8) -> tuple[UserProfile, UserProfile] | None:
    """A thrifty and a lavish shopper with different favourite departments (None if there is no such pair)."""
    active = [p for p in profiles if p.n_events >= min_events and p.price is not None and p.top_categories(1, 1)]
    active.sort(key=lambda p: p.price.median if p.price is not None else 0.0)
    for low in active:
        for high in reversed(active):
            if low.top_categories(1, 1)[0][0] != high.top_categories(1, 1)[0][0]:
                return low, high
    return None


def _filters_text(filters: Filters) -> str:
    """``category=electronics,rating_min=4,in_stock=true``: the filters as a user would type them."""

    def shown(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (tuple, list)):
            return "|".join(map(str, v))
        return f"{v:g}" if isinstance(v, float) else str(v)

    parts = [f"{k}={shown(v)}" for k, v in filters.__dict__.items() if v not in (None, (), "")]
    return ",".join(parts) or "-"
