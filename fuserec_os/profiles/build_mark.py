"""The mark a full profile build leaves in the state index while it runs, so that live updates wait for it.

Why: a full build (``fuserec profiles build``) reads every stored event, computes the profiles, query statistics
and item signals, and writes them whole. A live update (the proxy's event endpoint, ``record_events_live``) that
landed between the build's read and its write was overwritten by it: the build had not read that event, and the
profile job skips events already applied live, so the event was lost from the profiles and statistics until the
next full build.

With the mark, a live update that finds a build running stores its events without applying them
(``applied_live: false``): the build folds in every event stored after its read, right after its write (an
incremental update from its own watermark), and live updates apply at once again when the mark is gone. Nothing
is lost; such events show in the features a little later (after the build) instead of at once.

The mark carries an expiry (:data:`LEASE`), so a build killed before it cleared its mark stops deferring live
updates after that time (the deferred events are stored either way, and the next ``fuserec profiles update``
folds them in). Left uncovered: a live update that checked for the mark just before the build set it and wrote
its events only after the build had read the events (between the two there is the build's catalog read); it is
applied live and overwritten as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.index.state import delete_state, get_state, put_state

__all__ = ["BUILD_MARK", "LEASE", "build_running", "clear_build_mark", "set_build_mark"]

BUILD_MARK = "profiles-build-running"
LEASE = timedelta(hours=6)


def set_build_mark(client: OpenSearch, state_index: str, *, now: datetime | None = None) -> None:
    """Say a full build is running (visible to every process at once)."""
    started = now or datetime.now(timezone.utc)
    doc = {"started_at": started.isoformat(), "expires_at": (started + LEASE).isoformat()}
    put_state(client, state_index, BUILD_MARK, doc)


def clear_build_mark(client: OpenSearch, state_index: str) -> None:
    delete_state(client, state_index, BUILD_MARK)


def build_running(client: OpenSearch, state_index: str, *, now: datetime | None = None) -> bool:
    """Whether a full build is running: its mark is there and has not expired."""
    doc = get_state(client, state_index, BUILD_MARK)
    if not doc:
        return False
    expires = doc.get("expires_at")
    return expires is None or pd.Timestamp(expires) > pd.Timestamp(now or datetime.now(timezone.utc))
