"""``fuserec demo``: the main job end to end on the embedded engine (the steps are in ``demo_steps``)."""

from __future__ import annotations

import click

from fuserec_os.commands.common import State, pass_state


@click.command()
@click.option("--n", "n", default=5000, show_default=True, help="Catalog size (keep <= 10k on the dev engine).")
@click.option("--users", default=1000, show_default=True, help="Simulated shoppers.")
@click.option("--days", default=14.0, show_default=True, help="Simulated period.")
@click.option("--seed", default=7, show_default=True)
@pass_state
def demo(state: State, n: int, users: int, days: float, seed: int) -> None:
    """Run the main job end to end: engine, index, catalog, ingest, searches, shoppers, events, profiles."""
    from fuserec_os.commands.demo_steps import run_demo

    with state.engine() as eng:
        run_demo(eng, state.settings, state.mapping(), n=n, seed=seed, echo=click.echo, users=users, days=days)
