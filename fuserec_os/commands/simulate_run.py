"""The closed-loop A/B run behind ``fuserec simulate ab`` (and the demo's last step): world, proxy, loop, report.

The shop's world comes from files (catalog with hidden product latents, shoppers' hidden tastes); the shop's
state (catalog, profiles, statistics, the promoted model) is in the engine. The proxy runs in this process on
a free loopback port with a simulated clock and the experiment; shoppers talk to it over HTTP like any client.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fuserec_os.commands.simulate import DEFAULT_EXPERIMENT
from fuserec_os.config import RankingConfig
from fuserec_os.engine import Engine
from fuserec_os.errors import ConfigError, IndexStateError
from fuserec_os.settings import Settings

__all__ = ["DEFAULT_EXPERIMENT", "default_experiment", "pick_experiment", "run_simulated_ab", "world_files"]

PAGE_SIZE = 24  # the simulated shop's result page (as in the history it learned from)


def default_experiment(name: str = DEFAULT_EXPERIMENT) -> Any:
    from fuserec_os.experiments.config import ExperimentsConfig

    return ExperimentsConfig.from_dict(
        {
            name: {
                "mode": "ab",
                "primary_metric": "conversion",
                "variants": {
                    "control": {"share": 0.5, "control": True, "engine": True},
                    "treatment": {"share": 0.5, "model_version": "active"},
                },
            }
        }
    )


def pick_experiment(
    ranking: RankingConfig, name: str | None, products_alias: str, prefix: str
) -> tuple[Any, str | None]:
    """(an ExperimentsConfig holding just the experiment to run, a hint when it is not in the config)."""
    from fuserec_os.experiments.config import ExperimentsConfig

    exps = ranking.experiments
    if name is not None:
        if name in exps.experiments:
            exp = exps.get(name)
            if not exp.applies_to(products_alias, prefix):
                raise ConfigError(f"experiment {name} does not cover the products index ({products_alias})")
            return ExperimentsConfig(experiments={name: exp}), None
        if name != DEFAULT_EXPERIMENT:
            known = ", ".join(exps.experiments) or "none"
            raise ConfigError(
                f"no experiment {name!r} in the ranking config (configured: {known}); see fuserec ab list"
            )
    running = [e for e in exps.running() if e.applies_to(products_alias, prefix)]
    if name is None and running:
        return ExperimentsConfig(experiments={running[0].name: running[0]}), None
    hint = (
        f"{DEFAULT_EXPERIMENT} is built in (engine order vs the active model, 50/50); report it again with "
        f"'fuserec ab report {DEFAULT_EXPERIMENT}' (--since / --until for one period)"
    )
    return default_experiment(), hint


def world_files(world: Path) -> dict[str, Path]:
    """The simulated shop's files under ``world`` (catalog, product latents, shoppers' tastes); a clear error
    naming what is missing."""
    files = {k: world / v for k, v in (("docs", "catalog.jsonl"), ("latent", "catalog.latent.jsonl"),
                                       ("truth", "events.truth.jsonl"))}  # fmt: skip
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise IndexStateError(
            f"the simulated shop's files are missing ({', '.join(missing)}): run fuserec demo first, or pass --world "
            "with catalog.jsonl, catalog.latent.jsonl and events.truth.jsonl"
        )
    return files


def history_end(client: Any, events_alias: str) -> datetime:
    """When the shop's recorded behaviour ends (the latest event): the closed loop starts there."""
    from opensearchpy import exceptions as osx

    try:
        resp = client.search(
            index=events_alias, body={"size": 0, "aggs": {"last": {"max": {"field": "timestamp"}}}},
            params={"ignore_unavailable": "true"},
        )  # fmt: skip
    except osx.NotFoundError:
        resp = {}
    value = (resp.get("aggregations") or {}).get("last", {}).get("value")
    if value is None:
        raise IndexStateError(
            f"no events in {events_alias}: the closed loop continues a shop's history (run fuserec demo first)"
        )
    return datetime.fromtimestamp(float(value) / 1000, tz=timezone.utc)


def _post_events(url: str) -> Callable[[list[dict[str, Any]]], int]:
    def send(rows: list[dict[str, Any]]) -> int:
        body = json.dumps({"events": rows}).encode()
        req = urllib.request.Request(
            f"{url}/_fuserec/events", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            out = json.loads(resp.read())
        return len(out.get("rejected") or [])

    return send


def run_simulated_ab(
    engine: Engine,
    settings: Settings,
    ranking: RankingConfig,
    *,
    world: Path,
    users: int,
    days: float,
    experiment_name: str | None = None,
    seed: int = 11,
    replicates: int = 2000,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Run the closed loop and report; returns {"loop", "report", "_report" (the Report object), "experiment",
    "model_version"}. ``model_version``: the proxy serves that registered version as its model (the treatment's
    ``active``) whatever the registry's pointer says: a candidate tested before it is promoted."""
    from opensearchpy import OpenSearch
    from tqdm import tqdm

    from fuserec_os.commands.demo_proxy import running_proxy
    from fuserec_os.experiments.report import experiment_report
    from fuserec_os.rerank.registry import ModelRegistry
    from fuserec_os.search.query_builder import build_query
    from fuserec_os.search.request import SearchConfig, SearchRequest
    from fuserec_os.simulate.closed_loop import ProxyShop, SimClock, newcomers, play_closed_loop
    from fuserec_os.simulate.shoppers import load_catalog, load_truth

    files = world_files(world)
    client = engine.client
    prefix = settings.index_prefix
    alias = settings.alias("products")
    registry = ModelRegistry(client, prefix)
    active = registry.active_version() if client.indices.exists(index=registry.alias) else None
    serve = model_version or active
    if serve is None:
        raise IndexStateError(
            "no promoted model: the treatment serves the active model (fuserec model promote vN, or --model vN to "
            "test a registered version that is not active)"
        )
    config, hint = pick_experiment(ranking, experiment_name, alias, prefix)
    (exp,) = config.running()
    catalog = load_catalog(files["docs"], files["latent"])
    truth = list(load_truth(files["truth"]).values())
    start = history_end(client, settings.alias("events")) + timedelta(hours=1)
    back = truth[:users]
    added = newcomers(catalog, users - len(back), start, taken={u.user_id for u in truth}, seed=seed)
    shoppers = [*back, *added]
    clock = SimClock(start)
    search_cfg: SearchConfig = ranking.search

    def body_for(text: str, size: int) -> dict[str, Any]:
        body = build_query(SearchRequest(text=text, size=size, facets=False, highlight=False), search_cfg).body
        body.pop("sort", None)  # a shop's client asks for relevance without naming it
        body.pop("track_scores", None)
        return body

    say = echo or (lambda s: None)
    who = f"{len(back):,} shoppers" + (f" with a history and {len(added):,} new ones" if added else "")
    say(f"   {who} over {days:g} days from {start:%Y-%m-%d %H:%M} UTC, experiment {exp.name}")
    with running_proxy(
        engine,
        settings,
        ranking,
        expect_model=serve,
        active=model_version is None,
        clock=clock,
        experiments=config,
        live_updates=True,
    ) as proxy:
        os_client = OpenSearch([proxy.url], timeout=120)

        def search(body: Mapping[str, Any], headers: Mapping[str, str]) -> Mapping[str, Any]:
            out: Mapping[str, Any] = os_client.search(index=alias, body=dict(body), headers=dict(headers))
            return out

        shop = ProxyShop(search, body_for, clock, page_size=PAGE_SIZE)
        bar = tqdm(total=0, unit="session", desc="closed loop", disable=not progress, leave=False, mininterval=1.0)

        def tick(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(1)

        try:
            loop = play_closed_loop(
                catalog, shoppers, shop, _post_events(proxy.url), start=start, days=days, seed=seed, progress=tick
            )
        finally:
            bar.close()
            os_client.close()
    # the proxy flushed its impressions when it stopped; make them (and the events) visible to the report
    client.indices.refresh(index=f"{prefix}*")
    report = experiment_report(client, prefix, exp, replicates=replicates, seed=seed)
    return {
        "experiment": exp.name,
        "model_version": serve,
        "loop": loop.as_dict(),
        "shoppers": {"with_history": len(back), "new": len(added)},
        "report": report.as_dict(),
        "_report": report,
        **({"config_hint": hint} if hint else {}),
    }
