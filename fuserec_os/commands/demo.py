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
    """Run the main job end to end on the engine in use, printing each step (about a minute here).

    \b
    What it does, in order:
       1. connects to the engine (the running embedded one, FUSEREC_OPENSEARCH_URL, or a temporary one)
       2. generates a seeded catalog (--n products) plus three broken rows
       3. validates and indexes it into a new index behind the 'products' alias (rejects report)
     4-8. runs BM25 and Boolean searches with filters, facets, sorting and paging
       9. simulates --users shoppers over --days (searches, clicks, carts, purchases)
      10. stores their events and the search log (what each search showed)
      11. builds user profiles, product vectors, query statistics and item signals
      12. prints two contrasting shoppers' profiles
      13. trains the MLP reranker, evaluates it against engine order and five baselines on later
          searches (table + HTML report), and registers it as a model version
      14. promotes that version to active if it beats engine order (the registry's rules)
      15. starts the query proxy ('fuserec serve') on a free local port and sends one query for two
          shoppers with different favourite brands through an unchanged opensearch-py client: their
          lists side by side with engine order, and the features behind the biggest moves
      16. judges the search config in force against equal field weights and the other multi_match
          types on the stored search log (a short 'fuserec search tune'; the demo writes no config)
      17. a short A/B test: the simulated shoppers come back and search through the proxy for a few
          more days, half served engine order and half the model; their clicks and purchases go back
          through the proxy's event endpoint; the report prints the conversion lift with its interval

    Files (catalog, events, search log, reports) go to the state folder's demo/ (FUSEREC_STATE_DIR).
    With a temporary engine nothing is kept afterwards; run 'fuserec engine start' first to keep it.
    """
    from fuserec_os.commands.demo_steps import run_demo

    with state.engine() as eng:
        run_demo(eng, state.settings, state.mapping(), n=n, seed=seed, echo=click.echo, users=users, days=days)
