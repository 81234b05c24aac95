"""The search log, written off the request path: personalized searches queue up and are flushed in batches.

A request only appends to an in-memory queue (bounded: when the engine is away for long, the oldest entries are
dropped and counted, never the request failed). A background task flushes every ``interval`` seconds through
:func:`~fuserec_os.behaviour.search_log.record_impressions` in a thread (the same validation and document
shape as a file ingest, so training reads proxy-logged searches like any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger("fuserec.serve")

Writer = Callable[[Sequence[Mapping[str, Any]]], Any]
"""Stores a batch (runs in a worker thread); returns a RecordResult-like object with ``accepted``/``rejected``."""


class ImpressionLog:
    def __init__(
        self,
        writer: Writer,
        *,
        interval: float = 1.0,
        max_queue: int = 100_000,
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.writer = writer
        self.interval = interval
        self.queue: deque[Mapping[str, Any]] = deque(maxlen=max_queue)
        self.on_count = on_count or (lambda key, n: None)
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    def add(self, row: Mapping[str, Any]) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.on_count("dropped", 1)
        self.queue.append(row)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> int:
        """Write what is queued; returns how many were accepted. Failures put the batch back (bounded)."""
        async with self._flush_lock:
            if not self.queue:
                return 0
            batch = list(self.queue)
            self.queue.clear()
            try:
                result = await asyncio.to_thread(self.writer, batch)
            except Exception as exc:
                log.warning("fuserec serve: could not write %d impressions (will retry): %s", len(batch), exc)
                self.on_count("retry", len(batch))
                self.queue.extendleft(reversed(batch))
                return 0
            accepted = int(getattr(result, "accepted", 0)) + int(getattr(result, "already_stored", 0))
            rejected = list(getattr(result, "rejected", []))
            self.on_count("written", accepted)
            if rejected:
                self.on_count("rejected", len(rejected))
                log.warning("fuserec serve: %d impressions rejected, first: %s", len(rejected), rejected[0])
            return accepted

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.flush()
