"""``fuserec search``: BM25 free text or Boolean syntax over the products alias, with filters, facets, paging.

Imports only the query builder and the engine client: a search never loads pandas, scikit-learn or TensorFlow
(a test keeps it so). ``--user`` (or ``--explain``) goes through the rerank stage with the registry's active
model: that loads pandas and the feature code, never TensorFlow (a test keeps that too).
"""

from __future__ import annotations

import time

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, note, pass_state
from fuserec_os.search.request import SearchRequest, Sort, parse_filters


@click.command()
@click.argument("query", default="")
@click.option(
    "--filter",
    "-f",
    "filters",
    multiple=True,
    metavar="SPEC",
    help="brand=Nike,Adidas | category='shoes > running' | price=10..50 | rating>=4 | in_stock=true "
    "| tags=eco | attr.color=red (repeatable).",
)
@click.option("--sort", type=click.Choice([s.value for s in Sort]), default=Sort.RELEVANCE.value, show_default=True)
@click.option("--page", default=1, show_default=True)
@click.option("--size", default=10, show_default=True)
@click.option("--user", "user_id", help="Shopper id: rerank the engine's top window for them with the active model.")
@click.option(
    "--explain", is_flag=True, help="Per hit: engine rank -> new rank, scores and the features that moved it."
)
@click.option("--no-facets", is_flag=True, help="Skip facet counts.")
@json_option
@pass_state
def search(
    state: State,
    query: str,
    filters: tuple[str, ...],
    sort: str,
    page: int,
    size: int,
    user_id: str | None,
    explain: bool,
    no_facets: bool,
    as_json: bool,
) -> None:
    """Search the catalog with BM25 free text or Boolean syntax.

    \b
    Examples:
      fuserec search "running shoes"
      fuserec search 'headphones AND (wireless OR bluetooth) -sony'
      fuserec search '"coffee maker" brand:breville price:[50 TO 200]'
      fuserec search "" --filter category=electronics --sort price_asc
      fuserec search socks --user U0000231 --explain
    """
    from fuserec_os.commands.render import render_facets, render_hits
    from fuserec_os.search.backend import SearchBackend

    req = SearchRequest(
        text=query,
        filters=parse_filters(filters),
        sort=Sort.parse(sort),
        page=page,
        size=size,
        user_id=user_id,
        facets=not no_facets,
    )
    settings = state.settings
    personalized = user_id is not None or explain
    with state.engine() as eng:
        if personalized:
            from fuserec_os.rerank.pipeline import Pipeline

            t = time.perf_counter()
            pipeline = Pipeline.from_config(eng.client, settings.index_prefix, state.ranking)
            load_ms = (time.perf_counter() - t) * 1000
            backend = SearchBackend(eng.client, settings.alias(PRODUCTS), state.ranking.search, pipeline)
            try:
                result = backend.execute(req, explain=explain)
            finally:
                backend.close()
            if result.personalization is not None:
                result.personalization["model_load_ms"] = round(load_ms, 1)
        else:
            result = SearchBackend(eng.client, settings.alias(PRODUCTS), state.ranking.search).execute(req)
    if as_json:
        dump(result.as_dict())
        return
    for w in result.warnings:
        note(f"note: {w}")
    if result.personalization is not None:
        from fuserec_os.commands.render import render_personalization

        click.echo(render_personalization(result.personalization, user_id))
    click.echo(render_hits(result, explain=explain))
    if result.facets:
        click.echo(render_facets(result.facets))
