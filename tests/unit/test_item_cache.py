"""ItemSignalsCache against a fake store: when it polls, what it re-reads, and that a stale document never
replaces a newer row (engine round trips are in tests/integration/test_item_signals_store.py)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from fuserec_os.profiles import item_cache as ic
from fuserec_os.profiles.item_cache import ItemSignalsCache
from fuserec_os.profiles.item_signals import ItemSignals

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _doc(pid: str, clicks: float, stamp: str) -> dict[str, Any]:
    state = ItemSignals()
    events = pd.DataFrame(
        {"product_id": [pid] * int(clicks), "type": ["click"] * int(clicks), "timestamp": [T0] * int(clicks)}
    )
    doc = state.add_events(events).to_docs()[0]
    return {**doc, "updated_at": stamp}


class FakeStore:
    """What item_cache reads: the meta document, every product, the products updated since a time."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] | None = None
        self.docs: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail = False

    def set(self, build: str, write: str, stamp: str) -> None:
        self.meta = {"updated_at": stamp, "meta": {"build": build, "write": write, "half_life_days": 14.0}}

    def read_meta(self, client: Any, alias: str) -> dict[str, Any] | None:
        self.calls.append("meta")
        if self.fail:
            raise ConnectionError("engine down")
        return self.meta

    def read_all(self, client: Any, alias: str) -> Any:
        self.calls.append("all")
        if self.fail:
            raise ConnectionError("engine down")
        if self.meta is None:
            return None
        state = ItemSignals().replace_docs(self.docs.values())
        return state, self.meta, {p: d["updated_at"] for p, d in self.docs.items()}

    def read_updated(self, client: Any, alias: str, since: str) -> list[dict[str, Any]]:
        self.calls.append(f"since {since}")
        return [d for d in self.docs.values() if d["updated_at"] >= since]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    for name in ("read_meta", "read_all", "read_updated"):
        monkeypatch.setattr(ic.item_store, name, getattr(fake, name))
    return fake


def clicks(cache: ItemSignalsCache, pid: str) -> float:
    table = cache.current()
    assert table is not None
    return float(table.counts[table.index[pid], 1]) if pid in table.index else 0.0


def test_polls_read_only_the_meta_until_it_changes_then_the_updated_products(store: FakeStore) -> None:
    now = [0.0]
    cache = ItemSignalsCache(None, "x", interval_s=30, overlap_s=120, clock=lambda: now[0])  # type: ignore[arg-type]
    assert cache.current() is None and store.calls == []  # never asked to load: no I/O at all
    store.set("b1", "w1", "2026-03-01T10:00:00.000000Z")
    store.docs = {"A": _doc("A", 1, "2026-03-01T10:00:00.000000Z")}
    assert cache.load() == "loaded" and clicks(cache, "A") == 1.0
    now[0] = 200.0  # the load's overlap is over
    store.calls.clear()
    assert cache.refresh() == "unchanged" and store.calls == ["meta"]
    # another writer: a new write id; only the products updated since the previous meta time (minus overlap)
    store.docs["B"] = _doc("B", 2, "2026-03-01T10:05:00.000000Z")
    store.set("b1", "w2", "2026-03-01T10:05:00.000000Z")
    store.calls.clear()
    assert cache.refresh() == "updated" and clicks(cache, "B") == 2.0
    assert store.calls == ["meta", "since 2026-03-01T09:58:00.000000Z"]
    # a stale copy of a document (an index not yet refreshed) never replaces a newer row
    cache.apply_docs([_doc("B", 5, "2026-03-01T10:06:00.000000Z")])
    assert clicks(cache, "B") == 5.0
    assert cache.refresh() == "updated" and clicks(cache, "B") == 5.0  # still within the overlap: re-read, kept
    # a rebuild: a new build id, read whole
    store.docs = {"C": _doc("C", 3, "2026-03-01T11:00:00.000000Z")}
    store.set("b2", "w3", "2026-03-01T11:00:00.000000Z")
    assert cache.refresh() == "loaded" and clicks(cache, "C") == 3.0 and clicks(cache, "B") == 0.0


def test_a_request_starts_a_background_poll_when_due_and_a_failed_load_is_retried(store: FakeStore) -> None:
    now = [0.0]
    cache = ItemSignalsCache(None, "x", interval_s=30, clock=lambda: now[0])  # type: ignore[arg-type]
    store.fail = True
    assert cache.load() == "error" and cache.current() is None and "engine down" in (cache.last_error or "")
    store.fail = False
    store.set("b1", "w1", "2026-03-01T10:00:00.000000Z")
    store.docs = {"A": _doc("A", 1, "2026-03-01T10:00:00.000000Z")}
    assert cache.current() is None  # not due yet: nothing started
    now[0] = 31.0
    cache.current()  # due: a poll in the background, the request does not wait
    deadline = time.monotonic() + 5
    while cache.current() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert clicks(cache, "A") == 1.0 and cache.last_error is None and cache.info()["products"] == 1
