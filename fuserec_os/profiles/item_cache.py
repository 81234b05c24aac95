"""The serving copy of the item signals: loaded once, kept fresh in the background, never read per request.

Why in memory: a request scores ~120 candidates, and reading 120 item documents per request would double the
proxy's reads for features that change slowly. So each process holds one :class:`ItemSignals` with every stored
product (:func:`~fuserec_os.profiles.item_store.read_all`: one scan at start-up or when a model that uses them
is loaded), and a request reads :meth:`ItemSignalsCache.current` (no I/O).

Fresh, three ways:

* **this process's live updates** (:class:`~fuserec_os.profiles.live.LiveUpdater` with ``signals_cache``) put the
  documents they just wrote into the copy at once (:meth:`ItemSignalsCache.apply_docs`);
* **every other writer** (another replica's live updates, ``fuserec profiles update``): every ``interval_s``
  seconds the first :meth:`~ItemSignalsCache.current` after it starts a poll in a background thread: ONE
  ``_mget`` of the small meta document. Unchanged: nothing more. Changed (a new ``write`` id): the product
  documents with ``updated_at`` at or after the meta time seen at the previous poll minus ``overlap_s`` are
  searched and replace their rows when newer than what the copy holds. The query repeats on every poll for
  ``overlap_s`` after a change, so a document that became searchable only after the poll (the index's refresh
  interval) is still picked up; ``overlap_s`` must exceed the refresh interval plus the clock skew between
  writers and readers (default 120 s);
* **a full build** (a new ``build`` id in the meta document): the whole copy is read again and swapped in.

Each update copies the table and swaps it in one assignment (copy on write), so a request always reads one
consistent table. Replicas therefore agree within one poll interval (plus the index refresh) of any write, and
at once for their own live updates. A failed read keeps the current copy (``last_error`` says why); without any
stored signals :meth:`current` is None and the ``item_*`` features are missing, as at training without events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.profiles import item_store
from fuserec_os.profiles.item_signals import ItemSignals

__all__ = ["ItemSignalsCache"]

log = logging.getLogger("fuserec.signals")

DEFAULT_INTERVAL_S = 30.0
DEFAULT_OVERLAP_S = 120.0


def _minus(stamp: str, seconds: float) -> str:
    ts = pd.Timestamp(stamp) - pd.Timedelta(seconds=seconds)
    return str(ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


class ItemSignalsCache:
    """One process's copy of the stored item signals (see the module docstring)."""

    def __init__(
        self,
        client: OpenSearch,
        alias: str,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        overlap_s: float = DEFAULT_OVERLAP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.alias = alias
        self.interval_s = interval_s
        self.overlap_s = overlap_s
        self.clock = clock
        self.last_error: str | None = None
        self.loaded = False  # a load was attempted and succeeded (the table may still be None: nothing stored)
        self._table: ItemSignals | None = None
        self._stamps: dict[str, str] = {}  # product -> updated_at of the document its row holds
        self._build: str | None = None
        self._write: str | None = None
        self._seen_at: str | None = None  # the meta document's updated_at at the previous poll
        self._changed_at = -float("inf")
        self._checked_at = -float("inf")
        self._lock = threading.Lock()
        self._polling = False
        self._wanted = False  # a load was asked for: from then on polls run (and retry a failed load)

    # --- the request path ---------------------------------------------------------------------------------
    def current(self) -> ItemSignals | None:
        """The copy to read for one request (no I/O; starts a background poll when one is due)."""
        due = self._wanted and self.interval_s > 0 and not self._polling
        if due and self.clock() - self._checked_at >= self.interval_s:
            self._polling = True
            threading.Thread(target=self._poll_quietly, name="fuserec-item-signals", daemon=True).start()
        return self._table

    def _poll_quietly(self) -> None:
        try:
            self.refresh()
        finally:
            self._polling = False

    # --- loading and refreshing -----------------------------------------------------------------------------
    def load(self) -> str:
        """Read every stored product (blocking). Returns ``loaded``, ``missing`` (nothing stored) or ``error``
        (the copy stays as it was; the next poll tries again)."""
        with self._lock:
            self._wanted = True
            return self._load()

    def ensure_loaded(self) -> str | None:
        """:meth:`load` unless a load succeeded before (a model that needs the signals was just loaded)."""
        return None if self.loaded else self.load()

    def _load(self) -> str:
        self._checked_at = self.clock()
        try:
            got = item_store.read_all(self.client, self.alias)
        except Exception as exc:  # serving goes on with what it has
            return self._failed("loading", exc)
        was_missing = self.loaded and self._table is None
        self.loaded = True
        self.last_error = None
        if got is None:
            self._table, self._build, self._write, self._seen_at = None, None, None, None
            self._stamps = {}
            if was_missing:  # said once, not at every poll
                return "missing"
            log.warning(
                "fuserec: no item signals in %s: the item_* features are missing until 'fuserec profiles build' "
                "writes them",
                self.alias,
            )
            return "missing"
        table, meta, self._stamps = got
        inner = meta.get("meta") or {}
        self._table = table
        self._build, self._write, self._seen_at = inner.get("build"), inner.get("write"), meta.get("updated_at")
        self._changed_at = self.clock()  # documents not yet searchable at the scan come with the next polls
        log.info("item signals: %d products loaded from %s", len(table), self.alias)
        return "loaded"

    def refresh(self) -> str:
        """One poll (blocking; see the module docstring). Returns ``unchanged``, ``updated``, ``loaded``,
        ``missing`` or ``error``."""
        with self._lock:
            self._wanted = True
            now = self.clock()
            self._checked_at = now
            try:
                meta = item_store.read_meta(self.client, self.alias)
            except Exception as exc:
                return self._failed("polling", exc)
            inner: Mapping[str, Any] = (meta or {}).get("meta") or {}
            if meta is None or not self.loaded or self._table is None or inner.get("build") != self._build:
                return self._load()
            if inner.get("write") != self._write:
                self._changed_at = now
            if now - self._changed_at > self.overlap_s or self._seen_at is None:
                self._seen_at = meta.get("updated_at") or self._seen_at
                return "unchanged"
            try:
                docs = item_store.read_updated(self.client, self.alias, _minus(self._seen_at, self.overlap_s))
            except Exception as exc:
                return self._failed("polling", exc)
            self._apply(docs)
            self._write, self._seen_at = inner.get("write"), meta.get("updated_at") or self._seen_at
            return "updated"

    def apply_docs(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Take product documents this process just wrote (live updates): they serve from the next request."""
        with self._lock:
            if self._table is not None:
                self._apply(list(docs))

    def _apply(self, docs: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows of ``docs`` newer than the ones held (copy on write, one swap)."""
        assert self._table is not None
        newer = [d for d in docs if str(d.get("updated_at") or "") >= self._stamps.get(str(d["product_id"]), "")]
        if not newer:
            return
        table = self._table.copy()
        table.replace_docs(newer)
        for d in newer:
            self._stamps[str(d["product_id"])] = str(d.get("updated_at") or "")
        self._table = table

    def _failed(self, what: str, exc: Exception) -> str:
        self.last_error = f"{what} item signals from {self.alias}: {type(exc).__name__}: {exc}"
        log.warning("fuserec: %s (serving goes on with the copy it has)", self.last_error)
        return "error"

    def info(self) -> dict[str, Any]:
        """For health endpoints: products held, build, last error."""
        table = self._table
        return {
            "products": len(table) if table is not None else 0,
            "build": self._build,
            "loaded": self.loaded,
            "error": self.last_error,
        }
