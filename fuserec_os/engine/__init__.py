"""Which engine a command talks to, decided once at start-up.

1. ``FUSEREC_OPENSEARCH_URL`` set: that cluster (checked with ``GET /``; unreachable -> one clear error).
2. Else a background embedded engine recorded by ``fuserec engine start``: that one. If it is busy (alive but
   slow to answer) or still starting, the command says so in one line and waits for it, up to
   ``FUSEREC_ENGINE_WAIT`` seconds, then fails naming the engine and the reason.
3. Else, if there is saved data (``engine-data/``) or the recorded engine stopped without saving (crashed or
   killed): an error saying to run ``fuserec engine start``. A throwaway engine would not see that data, and
   whatever the command stored would be lost.
4. Else a temporary embedded engine for this run only, and the user is told, in one line, that nothing
   will be kept.

The loud notice (an in-memory dev engine, and how to use a real cluster) is printed once, by
``fuserec engine start``; commands that use the running engine say nothing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from opensearchpy import OpenSearch

from fuserec_os.engine.client import check_reachable, describe_urls, make_client, with_unreachable_hint
from fuserec_os.engine.embedded import (
    TemporaryEngine,
    check_engine,
    read_crash,
    start_temporary,
    unavailable,
    wait_for_engine,
)
from fuserec_os.engine.saved import data_path, has_saved_data
from fuserec_os.errors import EngineUnavailableError, FuserecError
from fuserec_os.settings import Settings

log = logging.getLogger("fuserec")

EngineKind = Literal["cluster", "embedded", "temporary"]


def _log_notice(message: str) -> None:
    log.warning("fuserec: %s", message)


@dataclass
class Engine:
    """A connected engine: the client, where it is, and what kind it is. Close it when done."""

    client: OpenSearch
    url: str
    kind: EngineKind
    info: dict[str, Any] = field(default_factory=dict)
    _server: TemporaryEngine | None = None

    @property
    def version(self) -> str:
        return str(self.info.get("version", {}).get("number", "?"))

    def explain(self, exc: FuserecError) -> FuserecError:
        """``exc`` with where to look when this engine did not answer (only a configured cluster gets "is
        OpenSearch running there? (docker compose up -d ...)"); other errors unchanged."""
        return with_unreachable_hint(exc, self.kind)

    def close(self) -> None:
        self.client.close()
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_osmem(server: Any) -> None:
    """Stop an ``OsmemServer`` and close its pipes (its own ``close`` leaves stdout open: a ResourceWarning)."""
    server.close()
    for pipe in (server.process.stdin, server.process.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()


def open_engine(settings: Settings, notify: Callable[[str], None] = _log_notice) -> Engine:
    """Connect to the engine the settings point at (see the module docstring for the order)."""
    if settings.opensearch_urls:
        where = describe_urls(settings.opensearch_urls)
        client = make_client(settings)
        try:
            info = check_reachable(client, where)
        except FuserecError as exc:
            raise with_unreachable_hint(exc, "cluster") from exc.__cause__
        return Engine(client=client, url=where, kind="cluster", info=info)
    state_dir = settings.state_dir
    live = check_engine(state_dir)
    if live.state in ("busy", "starting"):
        live = wait_for_engine(state_dir, settings.engine_wait, notify, live)
        if live.state in ("busy", "starting"):
            raise unavailable(live, settings.engine_wait)
    if live.state == "running" and live.record is not None and live.record.url:
        url = live.record.url
        client = make_client(settings, [url])
        try:
            info = check_reachable(client, url)
        except FuserecError as exc:
            raise with_unreachable_hint(exc, "embedded") from exc.__cause__
        return Engine(client=client, url=url, kind="embedded", info=info)
    crash = read_crash(state_dir)
    if crash is not None:
        raise EngineUnavailableError(
            f"{crash['message']}. Run 'fuserec engine start': it loads the last save (a temporary engine "
            "would not, and would keep nothing)."
        )
    if has_saved_data(state_dir):
        raise EngineUnavailableError(
            f"no embedded engine is running, and {data_path(state_dir)}/ holds saved indices that a temporary "
            "engine would not see: run 'fuserec engine start' first ('fuserec engine status' shows what is there)."
        )
    server = start_temporary()
    notify(
        "no engine is running, so this command uses a temporary in-memory one: nothing it stores will be kept "
        "('fuserec engine start' keeps data between commands)"
    )
    engine = Engine(client=make_client(settings, [server.url]), url=server.url, kind="temporary", _server=server)
    try:
        engine.info = check_reachable(engine.client, server.url)
    except Exception:
        engine.close()
        raise
    return engine
