"""``fuserec index``: the products index behind its alias: create, migrate (zero downtime), status, prune."""

from __future__ import annotations

import click

from fuserec_os.commands.common import PRODUCTS, State, dump, json_option, pass_state


@click.group()
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
    from fuserec_os.index import manager

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
    from fuserec_os.index import manager

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
    from fuserec_os.index import manager

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
    from fuserec_os.index import manager

    with state.engine() as eng:
        deleted = manager.prune(eng.client, state.settings.alias(PRODUCTS), keep=keep)
    if as_json:
        dump({"deleted": deleted})
    else:
        click.echo(f"deleted {len(deleted)} index(es)" + (": " + ", ".join(deleted) if deleted else ""))
