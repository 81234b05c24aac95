"""``fuserec engine``: start, inspect and stop a background engine: osmem (in-memory) or a real OpenSearch node."""

from __future__ import annotations

import sys
from typing import Any

import click

from fuserec_os.commands.common import State, dump, json_option, note, pass_state


@click.group()
def engine() -> None:
    """Run a local engine in the background (not for production): osmem or a real OpenSearch node.

    Without FUSEREC_OPENSEARCH_URL every command uses the engine 'start' recorded if it is running (waiting up
    to FUSEREC_ENGINE_WAIT s while it is busy or starting), or, when nothing was ever saved, a temporary osmem
    that keeps nothing. osmem (the default) is in memory: 'stop' saves all indices to the state folder and the
    next 'start' reloads them. 'start --engine opensearch' (or FUSEREC_ENGINE=opensearch) runs a real
    single-node OpenSearch instead (needs a JDK 21+ and Maven); its data stays on disk in the state folder.
    """


@engine.command("start")
@click.option(
    "--engine",
    "kind",
    type=click.Choice(["osmem", "opensearch"]),
    default=None,
    help="osmem: the in-memory dev engine; opensearch: a real single-node OpenSearch (JDK 21+ and Maven) "
    "[default: FUSEREC_ENGINE, else osmem].",
)
@click.option(
    "--heap",
    default=None,
    metavar="SIZE",
    help="The OpenSearch node's Java heap (-Xmx), e.g. 2g [default: 1g]. Only with --engine opensearch.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to wait for the engine to be ready while its process is alive "
    "[default: 60 + 5 per MB of saved data; OpenSearch: 300]. A process that dies fails the start at once.",
)
@json_option
@pass_state
def engine_start(state: State, kind: str | None, heap: str | None, timeout: float | None, as_json: bool) -> None:
    """Start the engine on a free loopback port: osmem (reloads what 'stop' saved) or OpenSearch.

    osmem is recorded as 'starting' at once, so 'status' and 'stop' see it while it loads. Damaged saved
    indices are moved aside (and named) so the others load; an engine that stopped without saving (crashed or
    killed) is reported with the time of the last save. OpenSearch is built once (Maven), then started and
    recorded when it is ready (yellow), its data in the state folder's opensearch-node/.

    If an engine of the other kind is running, it is left alone: said (exit 0) without --engine, refused
    (exit 2) with it.
    """
    from fuserec_os.engine import embedded as emb

    settings = state.settings
    explicit = kind is not None
    kind = kind or settings.engine
    if heap is not None and kind != "opensearch":
        raise click.UsageError("--heap is for --engine opensearch (osmem has no heap to size)")
    if not settings.embedded:
        note("note: FUSEREC_OPENSEARCH_URL is set, so commands use that cluster, not the engine started here.")
    res = emb.start_background(
        settings.state_dir,
        timeout=timeout,
        notify=lambda m: note(f"fuserec: {m}"),
        kind=kind,
        heap=heap,
        explicit=explicit,
    )
    st = res.state
    if st.kind == "opensearch":
        data_dir = f"{st.home}/data" if st.home else "?"
        data: dict[str, Any] = {
            "kind": "opensearch",
            "url": st.url,
            "pid": st.pid,
            "version": st.version,
            "started_at": st.started_at,
            "state": res.status,
            "already_running": res.already_running,
            "data": data_dir,
        }
        if as_json:
            dump(data)
            return
        verb = "already running" if res.already_running else "started"
        other = f" (asked for {kind}; 'fuserec engine stop' first to switch)" if kind != st.kind else ""
        click.echo(f"OpenSearch {st.version} {verb} at {st.url} (pid {st.pid}){other}; its data stays in {data_dir}/")
        return
    data = {
        "kind": "embedded",
        "url": st.url,
        "pid": st.pid,
        "started_at": st.started_at,
        "state": res.status,
        "already_running": res.already_running,
        "last_save": st.saved_at,
        "quarantined": [q.as_dict() for q in res.quarantined],
        "previous_crash": res.previous_crash,
    }
    if not res.already_running:  # said once per start, on stderr (so --json stays parseable), not on every command
        note("fuserec: " + emb.EMBEDDED_NOTICE.format(url=st.url))
    if as_json:
        dump(data)
        return
    verb = "already running" if res.already_running else "started"
    if kind != st.kind:
        verb += f" (asked for {kind}; 'fuserec engine stop' first to switch)"
    busy = " but busy (it did not answer in time; it is alive)" if res.status == "busy" else ""
    loaded = f", loaded the save of {st.saved_at}" if st.saved_at and not res.already_running else ""
    click.echo(f"embedded engine {verb} at {st.url} (pid {st.pid}){busy}{loaded}; state in {settings.state_dir}/")


@engine.command("status")
@json_option
@pass_state
def engine_status(state: State, as_json: bool) -> None:
    """Say which engine commands will use and what it holds. Exits 1 unless the embedded one answers.

    The embedded engine is 'running' (it answers), 'busy' (alive, but did not answer within 2 s: a large
    ingest does that), 'starting' (loading its saved data) or 'stopped'.
    """
    from fuserec_os.engine import embedded as emb
    from fuserec_os.engine.client import engine_errors, make_client
    from fuserec_os.engine.saved import data_path, has_saved_data

    settings = state.settings
    indices: dict[str, int] = {}
    if not settings.embedded:
        with state.engine() as eng:
            data = {"kind": "cluster", "url": eng.url, "version": eng.version, "running": True, "state": "running"}
    else:
        live = emb.check_engine(settings.state_dir)
        st = live.record
        saved = data_path(settings.state_dir)
        crash = emb.read_crash(settings.state_dir)
        data = {
            "kind": "opensearch" if st is not None and st.kind == "opensearch" else "embedded",
            "version": st.version if st else None,
            "state": live.state,
            "running": live.state != "stopped",
            "reason": live.reason if live.state in ("busy", "starting") else None,
            "url": st.url if st else None,
            "pid": st.pid if st else None,
            "started_at": st.started_at if st else None,
            "last_save": st.saved_at if st else None,
            "saved_data": str(saved) if has_saved_data(settings.state_dir) else None,
            "previous_crash": crash,
        }
        if live.state == "running" and st is not None:
            client = make_client(settings, [str(st.url)])
            with engine_errors("listing indices", where=st.url):
                rows = client.cat.indices(format="json")
            client.close()
            indices = {r["index"]: int(r["docs.count"]) for r in rows if not r["index"].startswith(".")}
            data["indices"] = indices
        if crash is not None:
            note(f"fuserec: {crash['message']}; 'fuserec engine start' loads the last save")
    if as_json:
        dump(data)
    elif data["kind"] == "cluster":
        click.echo(f"cluster at {data['url']} (OpenSearch {data['version']}) is reachable")
    elif data["kind"] == "opensearch":
        click.echo(
            f"OpenSearch {data['version']} {data['state']} at {data['url']} (pid {data['pid']}, since "
            f"{data['started_at']}){': ' + str(data['reason']) if data['reason'] else ''}"
        )
        for name, docs in sorted(indices.items()):
            click.echo(f"  {name}: {docs} docs")
    elif data["state"] == "running":
        click.echo(f"embedded engine running at {data['url']} (pid {data['pid']}, since {data['started_at']})")
        for name, docs in sorted(indices.items()):
            click.echo(f"  {name}: {docs} docs")
    elif data["state"] == "busy":
        click.echo(
            f"embedded engine busy at {data['url']} (pid {data['pid']}, since {data['started_at']}): "
            f"{data['reason']}. It is alive and keeps its data; commands wait up to FUSEREC_ENGINE_WAIT s for it, "
            "and 'fuserec engine stop' saves and stops it once it answers."
        )
    elif data["state"] == "starting":
        click.echo(
            f"embedded engine starting (pid {data['pid']}, since {data['started_at']}): {data['reason']}; "
            "commands wait up to FUSEREC_ENGINE_WAIT s for it"
        )
    else:
        saved_note = f"; saved data in {data['saved_data']} will be loaded" if data["saved_data"] else ""
        node_data = emb.opensearch_home(settings.state_dir) / "data"
        if node_data.is_dir() and any(node_data.iterdir()):
            saved_note += f"; 'fuserec engine start --engine opensearch' uses the OpenSearch data in {node_data}/"
        click.echo(f"embedded engine not running (start it with 'fuserec engine start'{saved_note})")
    if data["kind"] != "cluster" and data["state"] != "running":
        sys.exit(1)


@engine.command("stop")
@click.option("--no-save", is_flag=True, help="Discard the data instead of saving it for the next start.")
@json_option
@pass_state
def engine_stop(state: State, no_save: bool, as_json: bool) -> None:
    """Save every index (settings, mappings, aliases, docs) to the state folder, then stop the engine.

    An OpenSearch node keeps its data on disk: it is just stopped (SIGTERM; it flushes and closes).

    A busy engine is waited for (FUSEREC_ENGINE_WAIT s) so it can be saved; if it cannot be saved it is left
    running and the command fails saying so (--no-save stops it anyway). A still-starting engine is stopped
    and the saved data stays as it was. Exits 1 if the engine had stopped without saving (crashed or killed).
    """
    from fuserec_os.engine import embedded as emb

    settings = state.settings
    res = emb.stop_background(
        settings.state_dir, save=not no_save, wait=settings.engine_wait, notify=lambda m: note(f"fuserec: {m}")
    )
    if not res.stopped:
        crash = res.previous_crash
        if as_json:
            dump({"stopped": False, "reason": "not running", "previous_crash": crash})
        else:
            click.echo("embedded engine is not running; nothing to stop")
        if crash is not None:
            note(f"fuserec: {crash['message']}; 'fuserec engine start' loads the last save")
            sys.exit(1)
        return
    rec = res.record
    if rec is not None and rec.kind == "opensearch":
        data_dir = f"{rec.home}/data" if rec.home else "?"
        if as_json:
            dump({"stopped": True, "was": res.was, "kind": "opensearch", "version": rec.version, "data": data_dir})
        else:
            click.echo(f"stopped OpenSearch {rec.version}; its data stays in {data_dir}/ (the next start uses it)")
        return
    report = res.saved
    data: dict[str, Any] = {"stopped": True, "was": res.was, "saved": None}
    if report is not None:
        data["saved"] = {
            "path": str(report.path),
            "indices": report.indices,
            "documents": report.documents,
            "saved_at": report.saved_at,
        }
    if as_json:
        dump(data)
    elif report is not None:
        click.echo(
            f"embedded engine stopped; saved {len(report.indices)} index(es), {report.documents} docs to "
            f"{report.path}/ at {report.saved_at} (the next 'fuserec engine start' loads them)"
        )
    elif res.was == "starting":
        click.echo("embedded engine stopped while it was still starting; the saved data is unchanged")
    else:
        click.echo("embedded engine stopped; data discarded (--no-save)")
