"""``fuserec generate``: seeded synthetic catalogs and shopper behaviour for demos, tests and benchmarks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, pass_state
from fuserec_os.errors import IndexStateError


def sibling(path: Path, role: str) -> Path:
    """``events.jsonl`` + ``impressions`` -> ``events.impressions.jsonl`` (same folder, same format)."""
    return path.with_name(f"{path.stem}.{role}{path.suffix}")


@click.group()
def generate() -> None:
    """Generate realistic synthetic data (seeded) for demos, tests and benchmarks."""


@generate.command("catalog")
@click.option("--n", "n", default=5000, show_default=True, help="Number of products (keep <= 10k on the dev engine).")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file: .jsonl, .csv or .parquet.",
)
@click.option(
    "--latent",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the hidden product attributes (style, quality, price band) go, for simulations "
    "[default: OUTPUT's name + .latent.jsonl]. Never part of the catalog itself.",
)
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the catalog as a shop system exports it (.csv or .jsonl): sku, name, department, "
    "short_description and long_description columns, to try loading with --map.",
)
def generate_catalog_cmd(n: int, seed: int, output: Path, latent: Path | None, export: Path | None) -> None:
    """Write a seeded product catalog with a category tree, brands, prices, ratings and popularity.

    \b
    Examples:
      fuserec generate catalog --n 5000 -o catalog.jsonl
      fuserec generate catalog --n 500 -o catalog.jsonl --export shop.csv
      fuserec ingest products shop.csv \\
          --map product_id=sku,title=name,category=department,description=short_description+long_description
    """
    from fuserec_os.simulate.catalog import generate_catalog, latent_path_for, write_catalog

    latent = latent or latent_path_for(output)
    try:
        products = generate_catalog(n, seed=seed)
        write_catalog(products, output, latent_path=latent)
        if export is not None:
            from fuserec_os.simulate.shapes import catalog_export_rows, write_table

            write_table(catalog_export_rows(products), export)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"wrote {len(products)} products to {output} (hidden attributes for simulations: {latent})")
    if export is not None:
        from fuserec_os.simulate.shapes import CATALOG_EXPORT_MAP

        click.echo(f"wrote the shop export to {export}; load it with:")
        click.echo(f"  fuserec ingest products {export} --map {CATALOG_EXPORT_MAP}")


@generate.command("events")
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The catalog file the products index was loaded from (see 'generate catalog') "
    "[default: the one 'fuserec demo' wrote, <state dir>/demo/catalog.jsonl].",
)
@click.option(
    "--latent",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Its hidden attributes [default: CATALOG's name + .latent.jsonl].",
)
@click.option("--users", default=5000, show_default=True, help="Number of simulated shoppers.")
@click.option("--days", default=30.0, show_default=True, help="Length of the simulated period.")
@click.option("--start", default="2024-04-01T00:00:00Z", show_default=True, help="Start of the period (UTC).")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Event log: .jsonl or .parquet (the format 'fuserec ingest events' reads).",
)
@click.option(
    "--impressions",
    type=click.Path(dir_okay=False, path_type=Path),
    help="What each search showed, in order [default: OUTPUT's name + .impressions].",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The shoppers' true hidden preferences, for oracle evaluations [default: OUTPUT's name + .truth]. "
    "Never ingest it: it is not data a shop has.",
)
@click.option(
    "--shape",
    type=click.Choice(["full", "clicks", "ratings"]),
    default="full",
    show_default=True,
    help="full: the shop's own log (every event type, request ids, impressions). clicks: a click log as real "
    "shops export it (visitor, product, click time, search term, search time; no type, no request id, no "
    "search log). ratings: a rating log (user, item, 0.5-5 stars, epoch seconds, tag-style query).",
)
@json_option
@pass_state
def generate_events_cmd(
    state: State,
    catalog: Path | None,
    latent: Path | None,
    users: int,
    days: float,
    start: str,
    seed: int,
    output: Path,
    impressions: Path | None,
    truth: Path | None,
    shape: str,
    as_json: bool,
) -> None:
    """Simulate shoppers searching and browsing the catalog; write their events and impressions.

    \b
    Users have hidden tastes (categories, brands, style, price band, quality), type imperfect queries
    (informal words like 'tee', typos, broad and specific queries), see results from a shop ranker
    (BM25 from the engine blended with category merchandising), click under position bias, add to cart
    and buy. Deterministic for a seed. The products index must hold CATALOG ('fuserec ingest products').
    Also reports BM25's recall@100 for what shoppers clicked and bought.

    \b
    --shape clicks / ratings write OUTPUT (.csv or .jsonl) the way real logs come, to load with options only:
      fuserec generate events --catalog catalog.jsonl --shape clicks -o clicks.csv
      fuserec ingest events clicks.csv --set type=click \\
          --map user_id=visitor_id,product_id=sku,timestamp=clicked_at,query=search_term,query_time=searched_at
      fuserec generate events --catalog catalog.jsonl --shape ratings -o ratings.csv
      fuserec ingest events ratings.csv --map user_id=userId,product_id=itemId,query=tag
    """
    from fuserec_os.engine.client import engine_errors
    from fuserec_os.search.retrieval import EngineRetriever
    from fuserec_os.simulate.catalog import latent_path_for
    from fuserec_os.simulate.shoppers import load_catalog, simulate, write_simulation

    if catalog is None:
        catalog = state.settings.state_dir / "demo" / "catalog.jsonl"
        if not catalog.is_file():
            raise click.BadParameter(
                f"no --catalog given and no demo catalog at {catalog}: pass the catalog file the products index "
                "was loaded from (fuserec generate catalog -o catalog.jsonl; fuserec ingest products catalog.jsonl)",
                param_hint="--catalog",
            )
    elif not catalog.is_file():
        raise click.BadParameter(f"{catalog}: no such file", param_hint="--catalog")
    latent = latent or latent_path_for(catalog)
    if not latent.is_file():
        raise click.BadParameter(
            f"{latent}: no such file (write it with 'fuserec generate catalog ... --latent')", param_hint="--latent"
        )
    try:
        began = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{start!r} is not ISO 8601 (e.g. 2024-04-01T00:00:00Z)", param_hint="--start"
        ) from None
    allowed = (".jsonl", ".parquet") if shape == "full" else (".csv", ".jsonl")
    if output.suffix not in allowed:
        raise click.BadParameter(f"{output.name}: use {' or '.join(allowed)} (--shape {shape})", param_hint="--output")
    products = load_catalog(catalog, latent)
    alias = state.alias("products")
    with state.engine() as eng:
        with engine_errors(f"counting {alias}"):
            indexed = int(eng.client.count(index=alias)["count"]) if eng.client.indices.exists(index=alias) else 0
        if indexed == 0:
            raise IndexStateError(
                f"the products index '{alias}' is empty: run 'fuserec ingest products {catalog}' first."
            )
        if indexed != len(products):
            note(f"note: {alias} holds {indexed} products but {catalog} has {len(products)}: is it the same catalog?")
        result = simulate(products, EngineRetriever(eng.client, alias), users=users, days=days, seed=seed, start=began)
    if shape != "full":
        _write_shape(result, shape, output, truth or output.with_name(f"{output.stem}.truth.jsonl"), seed, as_json)
        return
    impressions = impressions or sibling(output, "impressions")
    truth = truth or sibling(output, "truth")
    write_simulation(result, output, impressions, truth)
    if as_json:
        dump({"events": str(output), "impressions": str(impressions), "truth": str(truth), "stats": result.stats})
        return
    click.echo(result.summary())
    click.echo(f"wrote {len(result.events)} events to {output}; impressions: {impressions}; true preferences: {truth}")


def _write_shape(result: Any, shape: str, output: Path, truth: Path, seed: int, as_json: bool) -> None:
    """Write the simulated log as a real click or rating log (no search log), and the truth beside it."""
    from fuserec_os.simulate.shapes import CLICK_LOG_MAP, RATING_LOG_MAP, click_log_rows, rating_log_rows, write_table
    from fuserec_os.simulate.shoppers import write_simulation

    if shape == "clicks":
        rows = click_log_rows(result.events, result.impressions)
        command = f"fuserec ingest events {output} --set type=click --map {CLICK_LOG_MAP}"
    else:
        rows = rating_log_rows(result.events, seed=seed)
        command = f"fuserec ingest events {output} --map {RATING_LOG_MAP}"
    write_table(rows, output)
    write_simulation(result, output.with_name(f"{output.stem}.full.jsonl"), None, truth)
    if as_json:
        dump({"events": str(output), "rows": len(rows), "shape": shape, "truth": str(truth), "command": command})
        return
    click.echo(result.summary())
    click.echo(f"wrote {len(rows)} rows ({shape} log) to {output}; true preferences: {truth}; load it with:")
    click.echo(f"  {command}")
