"""``fuserec engine``: start, inspect and stop the embedded in-memory dev engine (osmem) in the background."""

from __future__ import annotations

import sys
from typing import Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, pass_state


@click.group()
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
    from fuserec_os.engine import embedded as emb

    settings = state.settings
    if not settings.embedded:
        note("note: FUSEREC_OPENSEARCH_URL is set, so commands use that cluster, not the embedded engine.")
    was = emb.running_engine(settings.state_dir)
    st = emb.start_background(settings.state_dir)
    data = {"url": st.url, "pid": st.pid, "started_at": st.started_at, "already_running": was is not None}
    if was is None:  # said once per start, on stderr (so --json stays parseable), not on every command
        note("fuserec: " + emb.EMBEDDED_NOTICE.format(url=st.url))
    if as_json:
        dump(data)
        return
    verb = "already running" if was else "started"
    click.echo(f"embedded engine {verb} at {st.url} (pid {st.pid}); state in {settings.state_dir}/")


@engine.command("status")
@json_option
@pass_state
def engine_status(state: State, as_json: bool) -> None:
    """Say which engine commands will use and what it holds. Exits 1 if the embedded one is not running."""
    from fuserec_os.engine import embedded as emb
    from fuserec_os.engine.client import engine_errors, make_client

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
    from fuserec_os.engine import embedded as emb

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
