"""``fuserec search``: BM25 free text or Boolean syntax over the products alias, with filters, facets, paging;
``fuserec search tune``: the field boosts and ``multi_match`` type that rank the engaged products of the log first.

Imports only the query builder and the engine client: a search never loads pandas, scikit-learn or TensorFlow
(a test keeps it so). ``--user`` (or ``--explain``) goes through the rerank stage with the registry's active
model: that loads pandas and the feature code, never TensorFlow (a test keeps that too).

``search`` stays one command (``fuserec search "running shoes" --filter ...``); a first argument naming a
subcommand (``tune``) runs that instead. To search for the word itself: ``fuserec search -- tune``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, note, parse_time_option, pass_state
from fuserec_os.search.request import SearchRequest, Sort, parse_filters


class SearchCommand(click.Command):
    """A command that runs a subcommand when its first argument names one (``search tune``), else itself."""

    subcommands: dict[str, click.Command]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands = {}

    def add_subcommand(self, cmd: click.Command) -> click.Command:
        assert cmd.name
        self.subcommands[cmd.name] = cmd
        return cmd

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.subcommands:
            ctx.meta["fuserec.search.subcommand"] = (args[0], args[1:])
            return []
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        sub = ctx.meta.pop("fuserec.search.subcommand", None)
        if sub is None:
            return super().invoke(ctx)
        name, rest = sub
        cmd = self.subcommands[name]
        # a sibling of this context named 'search tune', so usage lines read 'fuserec search tune [OPTIONS]'
        parent = ctx.parent or ctx
        with cmd.make_context(f"{ctx.info_name} {name}" if ctx.parent else name, rest, parent=parent) as sub_ctx:
            return cmd.invoke(sub_ctx)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        rows = [(name, cmd.get_short_help_str(70)) for name, cmd in self.subcommands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        formatter.write_paragraph()
        formatter.write_text(
            f"'{ctx.command_path} tune --help' for its options; '{ctx.command_path} -- tune' searches for the word."
        )


@click.command(cls=SearchCommand)
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
@click.option(
    "--now",
    "now_text",
    metavar="TIME",
    help="Compute the shopper's features as of TIME instead of now (ISO 8601, e.g. 2024-05-01T00:00:00Z): "
    "recency features such as days since the last event. For a simulated or replayed shop whose events end "
    "in the past, pass its last day (the proxy's demo does the same).",
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
    now_text: str | None,
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
      fuserec search socks --user U0000231 --now 2024-06-30T23:59:59Z
    """
    from fuserec_os.commands.render import render_facets, render_hits
    from fuserec_os.search.backend import SearchBackend

    now = parse_time_option(now_text, "--now")
    if now is not None and user_id is None and not explain:
        raise click.UsageError("--now sets when a personalized search's features are computed: add --user ID")
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
            clock = None
            if now is not None:
                import pandas as pd

                at = pd.Timestamp(now)
                clock = lambda: at  # noqa: E731
            pipeline = Pipeline.from_config(eng.client, settings.index_prefix, state.ranking, clock=clock)
            load_ms = (time.perf_counter() - t) * 1000
            backend = SearchBackend(eng.client, settings.alias(PRODUCTS), state.ranking.search, pipeline)
            try:
                result = backend.execute(req, explain=explain)
            finally:
                backend.close()
            if result.personalization is not None:
                result.personalization["model_load_ms"] = round(load_ms, 1)
                if now is not None:
                    result.personalization["features_at"] = now.isoformat().replace("+00:00", "Z")
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


@search.add_subcommand
@click.command("tune")
@click.option(
    "--write",
    "write",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[FILE]",
    help="Write the winner's search.fields and search.multi_match_type into FILE (default: FUSEREC_CONFIG); "
    "every other line of the file is kept.",
)
@click.option(
    "--min-searches",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="Fewest searches with engagement needed to call a winner.",
)
@click.option(
    "--impressions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the search log from this file instead of the cluster (as 'model train --impressions').",
)
@json_option
@pass_state
def tune(state: State, write: str | None, min_searches: int, impressions: Path | None, as_json: bool) -> None:
    """Pick field boosts and the multi_match type from the search log.

    Every logged search with a click, add to cart or purchase is a judgement: its engaged products should come
    first. Each candidate config (the one in force; equal weights; title 2; tags and category 2; description
    0.5; each as best_fields, most_fields and cross_fields) runs every distinct query through the engine on
    the live products alias (one _msearch pass per config, top 100). The table shows recall@100, MRR and
    NDCG@10 of the engaged products; the winner (*) has the highest MRR, then recall@100, then NDCG@10, and
    needs --min-searches searches. Read-only unless --write.

    \b
    Examples:
      fuserec search tune
      fuserec search tune --write                 # into FUSEREC_CONFIG
      fuserec search tune --write ranking.yaml --json
    """
    from fuserec_os.errors import ConfigError

    target: Path | None = None
    if write is not None:
        target = Path(write) if write else state.settings.config_path
        if target is None:
            raise ConfigError("--write needs a file: set FUSEREC_CONFIG or give one (--write ranking.yaml)")
    from fuserec_os.learn.retrieval_tune import render_table, tune_retrieval
    from fuserec_os.profiles.jobs import Aliases

    say = (lambda m: None) if as_json else (lambda m: note(f"tune: {m}"))
    with state.engine() as eng:
        outcome = tune_retrieval(
            eng.client,
            Aliases.for_prefix(state.settings.index_prefix),
            state.ranking,
            impressions=impressions,
            min_searches=min_searches,
            progress=say,
        )
    written: dict[str, Any] | None = None
    message = None
    best = outcome.best
    if target is not None:
        if best is None:
            message = f"not written: {outcome.reason}"
        elif not outcome.changes and target == state.settings.config_path:
            message = f"not written: the config in force ({state.ranking.source}) is already the winner"
        else:
            from fuserec_os.config_file import set_search_keys

            cfg = best.candidate.config
            report = set_search_keys(target, {"fields": dict(cfg.fields), "multi_match_type": cfg.multi_match_type})
            message = report.describe()
            written = {"path": str(report.path), "keys": list(report.keys), "kept_comments": report.kept_comments}
    if as_json:
        dump({**outcome.as_dict(), "written": written, "write_message": message})
        return
    click.echo(render_table(outcome))
    click.echo(f"{outcome.searches:,} searches, {outcome.queries:,} distinct queries, {outcome.seconds:.1f}s")
    if message:
        click.echo(message)
    elif best is not None and outcome.changes:
        click.echo("write it with: fuserec search tune --write [FILE]")
