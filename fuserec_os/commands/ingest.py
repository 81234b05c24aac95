"""``fuserec ingest``: validate and load product catalogs, behaviour events and the search log (impressions).

The same rules for every file: an empty file (no rows, whatever the format) exits 8 with "FILE has no rows"; a
file that stops parsing part way exits 8 saying what was stored before it and how to go on (with ``--json`` the
partial report is printed on stdout too); rejected rows go to the rejects file and exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, pass_state

#: The defaults of the bounds (fuserec_os.index.validate.MAX_PRICE, fuserec_os.behaviour.search_log.MAX_SHOWN),
#: repeated here so --help stays cheap; tests keep them equal.
DEFAULT_MAX_PRICE = 10_000_000.0
DEFAULT_MAX_SHOWN = 1000

_max_price_option = click.option(
    "--max-price",
    type=float,
    default=DEFAULT_MAX_PRICE,
    show_default="10,000,000",
    help="Reject a price above this (a larger one is usually a unit or export mistake, and it would sort first).",
)


def _set_option(example: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--set",
        "constants",
        metavar="FIELD=VALUE",
        multiple=True,
        help=f"One value for a field your file has no column for, on every row (repeatable), e.g. --set {example}. "
        f"Checked like a cell of that column; the file must not have that column too. {what}",
    )


@contextmanager
def _partial_report(as_json: bool) -> Iterator[None]:
    """With --json, a file that failed part way still prints what was done before it (the error follows)."""
    from fuserec_os.errors import InputFileError

    try:
        yield
    except InputFileError as exc:
        if as_json and exc.report is not None:
            dump(exc.report)
        raise


@click.group()
def ingest() -> None:
    """Load data into the engine: product catalogs, behaviour events and the search log (impressions)."""


@ingest.command("products")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "column_map",
    metavar="FIELD=COLUMN,...",
    help="Rename your columns onto ours, e.g. --map title=name,brand=manufacturer. title, description, "
    "category and tags can take several columns joined with +: --map description=short_desc+long_desc "
    "(non-empty values joined by a space; category by ' > ', tags by '|').",
)
@_set_option("currency=EUR", "Not product_id.")
@click.option("--replace", is_flag=True, help="Load into a new index and swap the alias only if the load succeeded.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 (and swap, with --replace) even if rows were rejected.")
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected rows go (default: FILE.rejects.jsonl).",
)
@click.option("--chunk-size", default=1000, show_default=True, help="Documents per bulk request.")
@_max_price_option
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@json_option
@pass_state
def ingest_products_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    constants: tuple[str, ...],
    replace: bool,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    max_price: float,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Validate and index a product catalog (CSV, TSV, JSON Lines or Parquet; .gz too).

    \b
    Required columns: product_id, title. Optional: description, brand, category ("a > b"), price,
    currency, rating, review_count, in_stock (yes/no/true/false/1/0), tags ("a|b"), attributes
    ("color=red|size=M"), image_url, created_at (ISO 8601 or epoch), popularity.

    \b
    Ids are at most 512 bytes (UTF-8). Numbers must be finite (NaN is rejected, not dropped); price is at
    most --max-price, rating 0-5, popularity at most 1e12.

    Bad rows go to the rejects file with every reason; the rest are indexed. Exits 1 if any row was
    rejected (unless --allow-rejects), 8 if the file has no rows or stops parsing part way (the error says
    what was indexed before it). Re-running the same file is idempotent (doc id = product_id). A first
    load that indexes nothing leaves no index behind: fix the file and run the same command again.

    \b
    Examples:
      fuserec ingest products catalog.csv
      fuserec ingest products shop.csv --map product_id=sku,title=name,description=short_desc+long_desc
      fuserec ingest products feed.jsonl --set currency=EUR --replace
    """
    from fuserec_os.index.ingest import ingest_products
    from fuserec_os.index.readers import parse_column_map, parse_constants
    from fuserec_os.index.validate import PRODUCT_FIELDS

    cmap = parse_column_map(column_map, PRODUCT_FIELDS) if column_map else None
    consts = parse_constants(
        constants, PRODUCT_FIELDS, not_settable={"product_id": "it is the document id, one per product"}
    )
    spec = state.mapping()
    with state.engine() as eng, _partial_report(as_json):
        rep = ingest_products(
            eng.client,
            file,
            spec,
            state.settings.alias(PRODUCTS),
            column_map=cmap,
            constants=consts,
            replace=replace,
            allow_rejects=allow_rejects,
            rejects_path=rejects_path,
            chunk_size=chunk_size,
            progress=not no_progress and not as_json,
            max_price=max_price,
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


def _log_ingest_options(
    map_example: str, unit: str, *extra: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every behaviour-log ingest takes (events, impressions), with log-specific examples, plus
    ``extra`` ones."""
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
        *extra,
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
@_log_ingest_options(
    "user_id=visitor,type=event_type,timestamp=ts (query can take several columns: query=genre+tag)",
    "Events",
    _set_option("type=click", "Not event_id or request_id."),
    _max_price_option,
)
def ingest_events_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    constants: tuple[str, ...],
    max_price: float,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Validate and store behaviour events (CSV, TSV, JSON Lines or Parquet; .gz too).

    \b
    Required columns: user_id, type, product_id, timestamp (ISO 8601 with any timezone, or epoch
    seconds/ms; stored as UTC; more than 1 day in the future is rejected).
    Optional: event_id, session_id, query, position (rank shown, >= 1), price (>= 0, at most --max-price),
    quantity (>= 1), request_id (ties a click to the search that showed it), rating (an explicit rating,
    0-5 by default), query_time (when the search was made; not after the event's timestamp), source
    (where the event came from, e.g. web or app).

    \b
    type is one of view, click, add_to_cart, purchase (any case), or an alias such as page_view, cart,
    order or checkout (events.type_aliases in FUSEREC_CONFIG adds more). A log without a type column
    gets one with --set type=click, or from its rating: by default a rating >= 4 counts as a purchase
    and a lower one as a view (events.ratings in FUSEREC_CONFIG); the rating is stored too.

    \b
    Without a request_id (and no search log), training derives the searches: the events of one user
    after the same normalised query, each within events.derived_search_gap_minutes (30) of the previous
    one (by query_time when given), are one search.

    Events are stored in one index per UTC month (<alias>-YYYY.MM) behind the 'events' alias. Without an
    event_id column, each event's id is derived from its content, so re-running a file stores nothing twice
    ("already stored"); identical repeats inside the file are counted, not stored, and an event_id reused
    for other content is rejected, naming both rows. Events about products missing from the catalog are
    stored anyway and reported with examples. Bad rows go to the rejects file with every reason; exits 1 if
    any row was rejected (unless --allow-rejects), 8 if the file has no rows or stops parsing part way.

    \b
    Examples:
      fuserec ingest events events.jsonl
      fuserec ingest events clicks.csv --map user_id=visitor,product_id=sku,timestamp=ts,query=search_term \\
          --set type=click --set source=web
      fuserec ingest events ratings.csv --map user_id=userId,product_id=movieId,query=tag
    """
    from fuserec_os.behaviour.event_store import ingest_events
    from fuserec_os.behaviour.events import EVENT_FIELDS, NOT_SETTABLE
    from fuserec_os.index.readers import parse_column_map, parse_constants

    cmap = parse_column_map(column_map, EVENT_FIELDS) if column_map else None
    consts = parse_constants(constants, EVENT_FIELDS, not_settable=NOT_SETTABLE)
    settings = state.settings
    events_cfg = state.ranking.events
    spec = state.mapping("events")
    with state.engine() as eng, _partial_report(as_json):
        rep = ingest_events(
            eng.client,
            file,
            spec,
            settings.alias("events"),
            cfg=events_cfg,
            products_alias=settings.alias(PRODUCTS),
            column_map=cmap,
            constants=consts,
            rejects_path=rejects_path,
            allow_rejects=allow_rejects,
            chunk_size=chunk_size,
            progress=not no_progress and not as_json,
            max_price=max_price,
        )
    if as_json:
        dump(rep.as_dict())
    else:
        _print_events_report(rep)
    if not rep.ok:
        sys.exit(1)


def month_range(names: list[str]) -> str:
    """Monthly index names for a summary line: up to three listed, more as the first and the last month,
    ``events-2019.10 … 2020.06 (9 monthly indices)``, so a log spanning years stays one line (--json lists all)."""
    if len(names) <= 3:
        return ", ".join(names)
    ordered = sorted(names)
    first, last = ordered[0], ordered[-1]
    stem, _, _ = first.rpartition("-")
    shown_last = last[len(stem) + 1 :] if last.startswith(stem + "-") else last
    return f"{first} … {shown_last} ({len(ordered)} monthly indices)"


def _print_events_report(rep: Any) -> None:
    click.echo(
        f"read {rep.read} rows, stored {rep.stored}, already stored {rep.already_stored}, "
        f"rejected {rep.rejected} in {rep.seconds:.1f}s ({rep.docs_per_second:.0f} docs/s) into {rep.alias}"
    )
    if rep.indices:
        click.echo(f"  monthly indices: {month_range(rep.indices)}")
    if rep.created_indices:
        click.echo(f"  created index(es): {month_range(rep.created_indices)}")
    if rep.duplicates_in_file:
        click.echo(f"  {rep.duplicates_in_file} identical repeat(s) of an event in the file, counted once")
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
@_log_ingest_options(
    "request_id=search_id,product_ids=shown,timestamp=ts",
    "Searches",
    click.option(
        "--max-shown",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_SHOWN,
        show_default=True,
        help="Reject a search showing more products than this (one row is one page of results).",
    ),
)
def ingest_impressions_cmd(
    state: State,
    file: Path,
    column_map: str | None,
    allow_rejects: bool,
    rejects_path: Path | None,
    chunk_size: int,
    max_shown: int,
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
    order shown: a list, "a|b|c", or a JSON array; at most --max-shown). A search that found nothing
    is a search too: write [] (or leave the cell empty in CSV); a null or a missing column is an error.
    Optional: session_id, query.

    Searches are stored in one index per UTC month (<alias>-YYYY.MM) behind the 'searches' alias, with
    the request_id as id: re-running a file stores nothing twice ("already stored"); identical repeats
    inside the file are counted, not stored, and a request_id reused for another search is rejected. Bad
    rows go to the rejects file with every reason; exits 1 if any row was rejected (unless
    --allow-rejects), 8 if the file has no rows or stops parsing part way.
    """
    from fuserec_os.behaviour.search_log import IMPRESSION_FIELDS, ingest_impressions
    from fuserec_os.index.readers import parse_column_map

    cmap = parse_column_map(column_map, IMPRESSION_FIELDS) if column_map else None
    settings = state.settings
    spec = state.mapping("searches")
    with state.engine() as eng, _partial_report(as_json):
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
            max_shown=max_shown,
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
            click.echo(f"  monthly indices: {month_range(rep.indices)}")
        if rep.duplicates_in_file:
            click.echo(f"  {rep.duplicates_in_file} identical repeat(s) of a search in the file, counted once")
        if rep.empty:
            click.echo(f"  {rep.empty} of the stored searches showed nothing (an empty product_ids: no hits)")
        _print_ingest_tail(rep)
    if not rep.ok:
        sys.exit(1)
