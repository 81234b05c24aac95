"""``fuserec``: the admin CLI. A thin shell over the Python API; every command has ``--help`` and most ``--json``.

Errors the user can fix (FuserecError) print one ``error:`` line and exit with the error's code, never a
traceback. Engine notices (embedded engine in use) go to stderr so ``--json`` output stays parseable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fuserec_os import __version__
from fuserec_os.commands.common import FuserecGroup, State, dump, json_option, note, pass_state
from fuserec_os.commands.generate import generate
from fuserec_os.commands.model import model
from fuserec_os.commands.profiles import profiles
from fuserec_os.config import load_ranking_config
from fuserec_os.engine import embedded as emb
from fuserec_os.engine.client import engine_errors, make_client
from fuserec_os.index import manager
from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.readers import parse_column_map
from fuserec_os.index.validate import PRODUCT_FIELDS
from fuserec_os.render import render_facets, render_hits
from fuserec_os.search.backend import PRODUCTS, SearchBackend
from fuserec_os.search.request import SearchRequest, Sort, parse_filters
from fuserec_os.settings import SETTINGS

_SETTINGS_HELP = "\n".join(f"  {s.name} (default: {s.default or 'unset'})" for s in SETTINGS)


@click.group(cls=FuserecGroup, epilog=f"\b\nSettings (env vars or .env):\n{_SETTINGS_HELP}")
@click.version_option(__version__, prog_name="fuserec")
@click.option("--env-file", default=".env", show_default=True, help="A .env file with FUSEREC_* settings.")
@click.pass_context
def cli(ctx: click.Context, env_file: str) -> None:
    """fuserec-os: personalized e-commerce search on OpenSearch.

    \b
    Typical first run (no cluster needed; an in-memory dev engine is used):
      fuserec engine start
      fuserec generate catalog --n 5000 -o catalog.jsonl
      fuserec ingest products catalog.jsonl
      fuserec search "running shoes" --filter price=..100
      fuserec engine stop

    Point at a real cluster with FUSEREC_OPENSEARCH_URL=https://host:9200.
    """
    ctx.obj = State(env_file)


# --------------------------------------------------------------------------------------------- engine
@cli.group()
def engine() -> None:
    """Run the embedded in-memory dev engine in the background (not for production).

    Without FUSEREC_OPENSEARCH_URL every command uses this engine if it is running, or a temporary one
    that keeps nothing. 'stop' saves all indices to the state folder; the next 'start' reloads them.
    """


@engine.command("start")
@json_option
@pass_state
def engine_start(state: State, as_json: bool) -> None:
    """Start the embedded engine on a free loopback port (reloads what 'stop' saved)."""
    settings = state.settings
    if not settings.embedded:
        note("note: FUSEREC_OPENSEARCH_URL is set, so commands use that cluster, not the embedded engine.")
    was = emb.running_engine(settings.state_dir)
    st = emb.start_background(settings.state_dir)
    data = {"url": st.url, "pid": st.pid, "started_at": st.started_at, "already_running": was is not None}
    if as_json:
        dump(data)
        return
    verb = "already running" if was else "started"
    click.echo(f"embedded engine {verb} at {st.url} (pid {st.pid}); state in {settings.state_dir}/")
    note("fuserec: " + emb.EMBEDDED_NOTICE.format(url=st.url))


@engine.command("status")
@json_option
@pass_state
def engine_status(state: State, as_json: bool) -> None:
    """Say which engine commands will use and what it holds. Exits 1 if the embedded one is not running."""
    settings = state.settings
    indices: dict[str, int] = {}
    if not settings.embedded:
        with state.engine() as eng:
            data = {"kind": "cluster", "url": eng.url, "version": eng.version, "running": True}
    else:
        st = emb.running_engine(settings.state_dir)
        saved = emb.data_path(settings.state_dir)
        data = {
            "kind": "embedded",
            "running": st is not None,
            "url": st.url if st else None,
            "pid": st.pid if st else None,
            "started_at": st.started_at if st else None,
            "saved_data": str(saved) if saved.is_dir() else None,
        }
        if st is not None:
            client = make_client(settings, [st.url])
            with engine_errors("listing indices", where=st.url):
                rows = client.cat.indices(format="json")
            client.close()
            indices = {r["index"]: int(r["docs.count"]) for r in rows if not r["index"].startswith(".")}
            data["indices"] = indices
    if as_json:
        dump(data)
    elif data["kind"] == "cluster":
        click.echo(f"cluster at {data['url']} (OpenSearch {data['version']}) is reachable")
    elif data["running"]:
        click.echo(f"embedded engine running at {data['url']} (pid {data['pid']}, since {data['started_at']})")
        for name, docs in sorted(indices.items()):
            click.echo(f"  {name}: {docs} docs")
    else:
        saved_note = f"; saved data in {data['saved_data']} will be loaded" if data["saved_data"] else ""
        click.echo(f"embedded engine not running (start it with 'fuserec engine start'{saved_note})")
    if data["kind"] == "embedded" and not data["running"]:
        sys.exit(1)


@engine.command("stop")
@click.option("--no-save", is_flag=True, help="Discard the data instead of saving it for the next start.")
@json_option
@pass_state
def engine_stop(state: State, no_save: bool, as_json: bool) -> None:
    """Save every index (settings, mappings, aliases, docs) to the state folder, then stop the engine."""
    settings = state.settings
    if emb.running_engine(settings.state_dir) is None:
        if as_json:
            dump({"stopped": False, "reason": "not running"})
        else:
            click.echo("embedded engine is not running; nothing to stop")
        return
    report = emb.stop_background(settings.state_dir, save=not no_save)
    data: dict[str, Any] = {"stopped": True, "saved": None}
    if report is not None:
        data["saved"] = {"path": str(report.path), "indices": report.indices, "documents": report.documents}
    if as_json:
        dump(data)
    elif report is None:
        click.echo("embedded engine stopped; data discarded (--no-save)")
    else:
        click.echo(
            f"embedded engine stopped; saved {len(report.indices)} index(es), {report.documents} docs to "
            f"{report.path}/ (the next 'fuserec engine start' loads them)"
        )


# --------------------------------------------------------------------------------------------- index
@cli.group()
def index() -> None:
    """Manage the products index: versioned mapping files, aliases, zero-downtime migrations.

    Searches go through the alias (default 'products'); concrete indices are named
    <alias>-v<mapping version>-<timestamp>. Mapping files live in mappings/ (FUSEREC_MAPPINGS_DIR).
    """


@index.command("create")
@json_option
@pass_state
def index_create(state: State, as_json: bool) -> None:
    """Create the index from mappings/products.json and point the alias at it (no-op if the alias exists)."""
    spec = state.mapping()
    alias = state.settings.alias(PRODUCTS)
    with state.engine() as eng:
        name, created = manager.ensure_index(eng.client, spec, alias)
    if as_json:
        dump({"alias": alias, "index": name, "created": created, "mapping_version": spec.version})
    elif created:
        click.echo(f"created {name} (mapping v{spec.version}) and pointed alias {alias} at it")
    else:
        click.echo(f"alias {alias} already exists ({name}); use 'fuserec index migrate' to apply a changed mapping")


@index.command("migrate")
@click.option("--force", is_flag=True, help="Rebuild even if the live index already has this mapping version.")
@json_option
@pass_state
def index_migrate(state: State, force: bool, as_json: bool) -> None:
    """Apply a changed mapping: new index, reindex, check doc counts, swap the alias atomically.

    Searches keep working throughout (they see the old index until the swap). The old index is kept;
    remove it with 'fuserec index prune'.
    """
    spec = state.mapping()
    with state.engine() as eng:
        rep = manager.migrate(eng.client, spec, state.settings.alias(PRODUCTS), force=force)
    if as_json:
        dump(rep.__dict__)
    else:
        click.echo(
            f"migrated {rep.alias}: {rep.old_index} (v{rep.old_version}, {rep.old_docs} docs) -> {rep.new_index} "
            f"(v{rep.new_version}, {rep.new_docs} docs) in {rep.seconds:.1f}s"
        )


@index.command("status")
@json_option
@pass_state
def index_status(state: State, as_json: bool) -> None:
    """Show the alias, its concrete indices, their mapping versions and doc counts."""
    spec = state.mapping()
    with state.engine() as eng:
        st = manager.status(eng.client, spec, state.settings.alias(PRODUCTS))
    if as_json:
        dump(st.as_dict())
        return
    if not st.indices:
        click.echo(f"alias {st.alias}: no index yet (run 'fuserec index create')")
        return
    click.echo(f"alias {st.alias} -> {', '.join(st.live) or '(none)'}")
    click.echo(f"mapping file version: v{st.file_version}; live version: v{st.live_version}")
    if st.live_version is not None and st.live_version < st.file_version:
        click.echo("  the mapping file is newer than the live index: run 'fuserec index migrate'")
    for info in st.indices:
        mark = "*" if info.live else " "
        click.echo(f" {mark} {info.name}  v{info.mapping_version}  {info.docs:>8} docs  created {info.created}")


@index.command("prune")
@click.option("--keep", default=2, show_default=True, help="How many of the newest indices to keep (live included).")
@json_option
@pass_state
def index_prune(state: State, keep: int, as_json: bool) -> None:
    """Delete old concrete indices, keeping the newest --keep ones; the live index is never deleted."""
    with state.engine() as eng:
        deleted = manager.prune(eng.client, state.settings.alias(PRODUCTS), keep=keep)
    if as_json:
        dump({"deleted": deleted})
    else:
        click.echo(f"deleted {len(deleted)} index(es)" + (": " + ", ".join(deleted) if deleted else ""))


# --------------------------------------------------------------------------------------------- ingest
@cli.group()
def ingest() -> None:
    """Load data into the engine: product catalogs, behaviour events and the search log (impressions)."""


@ingest.command("products")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "column_map",
    metavar="FIELD=COLUMN,...",
    help="Rename your columns onto ours, e.g. --map title=name,brand=manufacturer.",
)
@click.option("--replace", is_flag=True, help="Load into a new index and swap the alias only if the load succeeded.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 (and swap, with --replace) even if rows were rejected.")
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected rows go (default: FILE.rejects.jsonl).",
)
@click.option("--chunk-size", default=1000, show_default=True, help="Documents per bulk request.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@json_option
@pass_state
def ingest_products_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    replace: bool,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Validate and index a product catalog (CSV, TSV, JSON Lines or Parquet; .gz too).

    \b
    Required columns: product_id, title. Optional: description, brand, category ("a > b"), price,
    currency, rating, review_count, in_stock (yes/no/true/false/1/0), tags ("a|b"), attributes
    ("color=red|size=M"), image_url, created_at (ISO 8601 or epoch), popularity.

    Bad rows go to the rejects file with every reason; the rest are indexed. Exits 1 if any row was
    rejected (unless --allow-rejects). Re-running the same file is idempotent (doc id = product_id).
    """
    cmap = parse_column_map(column_map, PRODUCT_FIELDS) if column_map else None
    spec = state.mapping()
    with state.engine() as eng:
        rep = ingest_products(
            eng.client,
            file,
            spec,
            state.settings.alias(PRODUCTS),
            column_map=cmap,
            replace=replace,
            allow_rejects=allow_rejects,
            rejects_path=rejects_path,
            chunk_size=chunk_size,
            progress=not no_progress and not as_json,
        )
    if as_json:
        dump(rep.as_dict())
    else:
        _print_ingest_report(rep)
    if not rep.ok:
        sys.exit(1)


def _print_ingest_report(rep: Any) -> None:
    click.echo(
        f"read {rep.read} rows, indexed {rep.indexed}, rejected {rep.rejected} "
        f"in {rep.seconds:.1f}s ({rep.docs_per_second:.0f} docs/s) into {rep.index}"
    )
    if rep.created_index:
        click.echo(f"  created index {rep.index} (alias {rep.alias})")
    if rep.duplicates:
        click.echo(f"  {rep.duplicates} duplicate product_id row(s): the last one wins")
    _print_ingest_tail(rep)
    if rep.message:
        click.echo(f"  {rep.message}")


def _log_ingest_options(map_example: str, unit: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every behaviour-log ingest takes (events, impressions), with log-specific examples."""
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.argument("file", type=click.Path(dir_okay=False, path_type=Path)),
        click.option(
            "--map",
            "column_map",
            metavar="FIELD=COLUMN,...",
            help=f"Rename your columns onto ours, e.g. --map {map_example}.",
        ),
        click.option("--allow-rejects", is_flag=True, help="Exit 0 even if rows were rejected."),
        click.option(
            "--rejects",
            "rejects_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Where rejected rows go (default: FILE.rejects.jsonl).",
        ),
        click.option("--chunk-size", default=1000, show_default=True, help=f"{unit} per bulk request."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
        json_option,
        pass_state,
    ]

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def _print_ingest_tail(rep: Any) -> None:
    """The lines every ingest summary ends with: ignored columns and where the rejected rows went."""
    if rep.ignored_columns:
        click.echo(f"  ignored unknown column(s): {', '.join(rep.ignored_columns)} (see --map to rename them)")
    if rep.rejected:
        click.secho(f"  {rep.rejected} row(s) rejected, with reasons, in {rep.rejects_path}", fg="yellow")


@ingest.command("events")
@_log_ingest_options("user_id=visitor,type=event_type,timestamp=ts", "Events")
def ingest_events_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Validate and store behaviour events (CSV, TSV, JSON Lines or Parquet; .gz too).

    \b
    Required columns: user_id, type, product_id, timestamp (ISO 8601 with any timezone, or epoch
    seconds/ms; stored as UTC; more than 1 day in the future is rejected).
    Optional: event_id, session_id, query, position (rank shown, >= 1), price (>= 0), quantity (>= 1),
    request_id (ties a click to the search that showed it).

    \b
    type is one of view, click, add_to_cart, purchase (any case), or an alias such as page_view, cart,
    order or checkout (events.type_aliases in FUSEREC_CONFIG adds more).

    Events are stored in one index per UTC month (<alias>-YYYY.MM) behind the 'events' alias. Without an
    event_id column, each event's id is derived from its content, so re-running a file stores nothing twice
    ("already stored"); repeats inside the file are counted, not stored. Events about products missing
    from the catalog are stored anyway and reported with examples. Bad rows go to the rejects file with
    every reason; exits 1 if any row was rejected (unless --allow-rejects).
    """
    from fuserec_os.behaviour.event_store import ingest_events
    from fuserec_os.behaviour.events import EVENT_FIELDS

    cmap = parse_column_map(column_map, EVENT_FIELDS) if column_map else None
    settings = state.settings
    events_cfg = load_ranking_config(settings.config_path).events
    spec = state.mapping("events")
    with state.engine() as eng:
        rep = ingest_events(
            eng.client,
            file,
            spec,
            settings.alias("events"),
            cfg=events_cfg,
            products_alias=settings.alias(PRODUCTS),
            column_map=cmap,
            rejects_path=rejects_path,
            allow_rejects=allow_rejects,
            chunk_size=chunk_size,
            progress=not no_progress and not as_json,
        )
    if as_json:
        dump(rep.as_dict())
    else:
        _print_events_report(rep)
    if not rep.ok:
        sys.exit(1)


def _print_events_report(rep: Any) -> None:
    click.echo(
        f"read {rep.read} rows, stored {rep.stored}, already stored {rep.already_stored}, "
        f"rejected {rep.rejected} in {rep.seconds:.1f}s ({rep.docs_per_second:.0f} docs/s) into {rep.alias}"
    )
    if rep.indices:
        click.echo(f"  monthly indices: {', '.join(rep.indices)}")
    if rep.created_indices:
        click.echo(f"  created index(es): {', '.join(rep.created_indices)}")
    if rep.duplicates_in_file:
        click.echo(f"  {rep.duplicates_in_file} repeated event(s) in the file, counted once")
    if rep.catalog_products is None:
        click.echo("  product ids not checked: no products index yet")
    elif rep.unknown_products:
        click.secho(
            f"  {rep.unknown_products} event(s) about products not in the catalog (stored anyway), e.g. "
            + ", ".join(rep.unknown_product_examples),
            fg="yellow",
        )
    _print_ingest_tail(rep)


@ingest.command("impressions")
@_log_ingest_options("request_id=search_id,product_ids=shown,timestamp=ts", "Searches")
def ingest_impressions_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Validate and store the search log: what each search showed, in order (CSV, TSV, JSON Lines, Parquet).

    \b
    What it is for: training takes its candidates (the products each logged search showed) and the
    position-debiased query statistics (how likely a product at rank r was even looked at) from it, and
    'fuserec profiles build/update' add the same examinations to the stored query statistics that serving
    reads, so training and serving see the same logs.

    \b
    Required columns: request_id (one row per search request; ties clicks to the search), user_id,
    timestamp (ISO 8601 with any timezone, or epoch seconds/ms; stored as UTC), product_ids (in the
    order shown: a list, "a|b|c", or a JSON array). Optional: session_id, query.

    Searches are stored in one index per UTC month (<alias>-YYYY.MM) behind the 'searches' alias, with
    the request_id as id: re-running a file stores nothing twice ("already stored"); repeats inside the
    file are counted, not stored. Bad rows go to the rejects file with every reason; exits 1 if any row
    was rejected (unless --allow-rejects).
    """
    from fuserec_os.behaviour.search_log import IMPRESSION_FIELDS, ingest_impressions

    cmap = parse_column_map(column_map, IMPRESSION_FIELDS) if column_map else None
    settings = state.settings
    spec = state.mapping("searches")
    with state.engine() as eng:
        rep = ingest_impressions(
            eng.client,
            file,
            spec,
            settings.alias("searches"),
            column_map=cmap,
            rejects_path=rejects_path,
            allow_rejects=allow_rejects,
            chunk_size=chunk_size,
            progress=not no_progress and not as_json,
        )
    if as_json:
        dump(rep.as_dict())
    else:
        click.echo(
            f"read {rep.read} rows, stored {rep.stored} searches ({rep.shown} products shown), already stored "
            f"{rep.already_stored}, rejected {rep.rejected} in {rep.seconds:.1f}s ({rep.docs_per_second:.0f} "
            f"docs/s) into {rep.alias}"
        )
        if rep.indices:
            click.echo(f"  monthly indices: {', '.join(rep.indices)}")
        if rep.duplicates_in_file:
            click.echo(f"  {rep.duplicates_in_file} repeated request_id(s) in the file: the first one is stored")
        _print_ingest_tail(rep)
    if not rep.ok:
        sys.exit(1)


# --------------------------------------------------------------------------------------------- search
@cli.command()
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
@click.option("--user", "user_id", help="Shopper id (used once personalization lands).")
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
    """
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
    config = load_ranking_config(settings.config_path)
    with state.engine() as eng:
        result = SearchBackend(eng.client, settings.alias(PRODUCTS), config.search).execute(req)
    if as_json:
        dump(result.as_dict())
        return
    for w in result.warnings:
        note(f"note: {w}")
    click.echo(render_hits(result))
    if result.facets:
        click.echo(render_facets(result.facets))


# --------------------------------------------------------------------------------------------- config
@cli.command("config")
@json_option
@pass_state
def config_cmd(state: State, as_json: bool) -> None:
    """Validate and show the settings in force (env and .env) and the ranking config (FUSEREC_CONFIG).

    Exits 2 with the variable or key to fix when anything is invalid. Passwords are masked.
    """
    s = state.settings
    ranking = load_ranking_config(s.config_path)
    data = {
        "engine": "cluster" if s.opensearch_urls else "embedded (in-memory dev engine)",
        "opensearch_urls": list(s.opensearch_urls),
        "user": s.user,
        "password": "***" if s.password else None,
        "verify_certs": s.verify_certs,
        "ca_certs": str(s.ca_certs) if s.ca_certs else None,
        "timeout": s.timeout,
        "retries": s.retries,
        "index_prefix": s.index_prefix,
        "products_alias": s.alias(PRODUCTS),
        "state_dir": str(s.state_dir),
        "mappings_dir": str(s.resolved_mappings_dir()),
        "ranking_config": ranking.source,
        "search": {
            "fields": dict(ranking.search.fields),
            "max_size": ranking.search.max_size,
            "max_query_length": ranking.search.max_query_length,
        },
    }
    if as_json:
        dump(data)
        return
    for key, value in data.items():
        click.echo(f"{key:>16}: {value}")
    click.echo("configuration is valid")


# --------------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--n", "n", default=5000, show_default=True, help="Catalog size (keep <= 10k on the dev engine).")
@click.option("--users", default=1000, show_default=True, help="Simulated shoppers.")
@click.option("--days", default=14.0, show_default=True, help="Simulated period.")
@click.option("--seed", default=7, show_default=True)
@pass_state
def demo(state: State, n: int, users: int, days: float, seed: int) -> None:
    """Run the main job end to end: engine, index, catalog, ingest, searches, shoppers, events, profiles."""
    from fuserec_os.demo import run_demo

    with state.engine() as eng:
        run_demo(eng, state.settings, state.mapping(), n=n, seed=seed, echo=click.echo, users=users, days=days)


cli.add_command(generate)
cli.add_command(profiles)
cli.add_command(model)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="fuserec")
