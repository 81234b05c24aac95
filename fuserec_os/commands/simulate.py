"""``fuserec simulate ab``: a closed-loop A/B test on the simulated shop, through the query proxy.

Only click at import time; the simulator, the proxy and the report load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, pass_state

DEFAULT_EXPERIMENT = "sim-mlp-vs-engine"
"""The closed loop's built-in experiment (engine order vs the active model, 50/50); defined here, with click only,
so ``--help`` can name it without importing the run."""


@click.group("simulate")
def simulate() -> None:
    """Simulated shoppers against the running system (closed loop: they react to what it shows)."""


@simulate.command("ab")
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Shoppers taking part: the world's own first (they have a history), then new ones drawn like them.",
)
@click.option(
    "--days", type=click.FloatRange(min=0, min_open=True), default=7.0, show_default=True, help="Simulated period."
)
@click.option(
    "--experiment",
    default=None,
    help="An experiment of the ranking config (default: the one running on products, else a built-in "
    f"'{DEFAULT_EXPERIMENT}': engine order vs the active model, 50/50).",
)
@click.option(
    "--world",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the simulated shop's catalog and shoppers' tastes are (default: the demo's, under the state dir).",
)
@click.option(
    "--model",
    "model_version",
    default=None,
    metavar="VERSION",
    help="Serve this registered version as the model (the treatment's 'active'), promoted or not: test a "
    "candidate before promoting it (default: the registry's active version).",
)
@click.option("--seed", type=int, default=11, show_default=True, help="Sessions and choices: same seed, same run.")
@click.option(
    "--replicates", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap replicates."
)
@json_option
@pass_state
def simulate_ab_cmd(
    state: State,
    users: int,
    days: float,
    experiment: str | None,
    world: Path | None,
    model_version: str | None,
    seed: int,
    replicates: int,
    as_json: bool,
) -> None:
    """Run an A/B test with simulated shoppers through the proxy, then report it.

    \b
    The shoppers of the simulated shop (their hidden tastes, the same click and purchase model that made the
    history) come back for --days more, starting where the history ends. Each search goes through the query
    proxy with the shopper's id, using an unchanged opensearch-py client; the proxy assigns the shopper a
    variant and serves it; clicks, carts and purchases go back through POST /_fuserec/events (profiles update
    live). At the end: the report of `fuserec ab report`, lift of conversion with its confidence interval.

    \b
    Needs: a running engine (`fuserec engine start`, or FUSEREC_OPENSEARCH_URL) where `fuserec demo` ran
    (or --world with catalog.jsonl, catalog.latent.jsonl, events.truth.jsonl of `fuserec generate`, ingested
    there), and a promoted model. Example:
      fuserec engine start && fuserec demo
      fuserec simulate ab --users 500 --days 3
    """
    from fuserec_os.commands.simulate_run import pick_experiment, run_simulated_ab, world_files

    world = world or state.settings.state_dir / "demo"
    world_files(world)  # what can be checked without the engine fails before it is contacted
    pick_experiment(state.ranking, experiment, state.settings.alias("products"), state.settings.index_prefix)
    with state.engine() as eng:
        if eng.kind == "temporary":
            raise click.UsageError(
                "no engine is running, and a temporary one holds no shop: the closed loop needs the demo's catalog, "
                "profiles and promoted model in an engine that keeps them. Start one, build the shop in it, then "
                "run this again:\n  fuserec engine start\n  fuserec demo\n  fuserec simulate ab --users 1000 "
                "--days 14"
            )
        outcome = run_simulated_ab(
            eng,
            state.settings,
            state.ranking,
            world=world,
            users=users,
            days=days,
            experiment_name=experiment,
            seed=seed,
            replicates=replicates,
            progress=not as_json,
            model_version=model_version,
        )
    if as_json:
        dump({k: v for k, v in outcome.items() if not k.startswith("_")})
        return
    _print(outcome)


def _print(outcome: dict[str, Any]) -> None:
    from fuserec_os.commands.ab import render_report
    from fuserec_os.experiments.report import Report

    loop, who = outcome["loop"], outcome["shoppers"]
    new = f" and {who['new']:,} new ones" if who["new"] else ""
    click.echo(
        f"closed loop: {who['with_history']:,} of the world's shoppers{new}; "
        f"{loop['sessions']:,} sessions, {loop['searches']:,} searches through the proxy, "
        f"{loop['events']:,} events sent back ({loop['events_rejected']} refused) in {loop['seconds']:.0f}s "
        f"of simulated {loop['start'][:10]} .. {loop['end'][:10]}"
    )
    if loop["search_failures"]:
        note(f"searches that failed (the shopper saw nothing): {loop['search_failures']}")
    report: Report = outcome["_report"]
    for line in render_report(report):
        click.echo(line)
    if outcome.get("config_hint"):
        note(outcome["config_hint"])
