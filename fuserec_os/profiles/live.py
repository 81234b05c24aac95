"""Live profile and statistics updates: an event recorded by a running service is folded in right away.

:func:`record_events_live` stores events like :func:`~fuserec_os.behaviour.event_store.record_events` (with
``applied_live: true`` on each document) and then, before returning, applies the ones it stored to the
profiles, query statistics and item signals in the cluster with the exact incremental update the profile job
uses (:func:`~fuserec_os.profiles.compute.update_profiles`, :func:`~fuserec_os.profiles.stats_store.add_stats`,
:func:`~fuserec_os.profiles.item_store.add`). The next search reads the updated documents (``_mget`` is
real-time: no refresh needed); the item signals are served from memory
(:class:`~fuserec_os.profiles.item_cache.ItemSignalsCache`): an updater given this process's copy
(``signals_cache``) puts the documents it wrote into it at once, other processes' copies take them at their
next poll.

How it adds up with the batch job (``fuserec profiles update``) and a rebuild:

* A rebuild (``fuserec profiles build``) reads every stored event, live or not: the live path is only a
  faster way to the same state.
* The job folds in the events ingested since its watermark *except* those with ``applied_live: true`` (it
  still moves its watermark past them). So each event is applied once: by the live path when it came through
  it, by the job otherwise (file ingests, ``record_events`` without live updates, the demo's loads).
* ``requests`` (searches seen per query in events, the exposure of keys without a logged search) counts each
  request id once: events whose (query, request id) has another stored event ingested before them are marked
  ``request_counted`` before they are added (:func:`mark_requests_counted_in_store`), in this path and in
  the job, so a click and the purchase that follows in a later batch count one request, as in a rebuild, and
  so do two processes folding events of one request at the same instant (the first-ingested batch counts it).
* Decayed numbers: a live update brings the touched profiles to ``as_of`` = the newest of (the newest new
  event + 1 ms, the profiles' own ``as_of``); a rebuild decays everything to its own ``as_of``. Decay is a
  common factor, so the two agree once brought to the same time (:meth:`UserProfile.decayed_to`), to float
  rounding; every feature is scale-free, so features are equal.

Failure: the flag is written with the event, so a live update that fails after the events were stored would
leave them out of the job's reach. If nothing was written yet, the flag is taken off the stored events again
(the job then folds them in); if the statistics were written but the profiles not, the flag stays (the
statistics are right; those users' profiles miss the events until the next full build) and the error is
reported (``LiveReport.error``). The item signals are written right after the statistics: a failure between
the two leaves the signals without the events (as the profiles) until the next full build.

Concurrency: updates within one process run one at a time (a lock). Two live updates in different processes
(two proxy replicas) touching the same user, query key or product at the same instant lose nothing: every
profile, statistics and item-signals document (and the statistics' and signals' meta documents) is read with
its version (``_seq_no`` / ``_primary_term``) and written only if it is still that version (a new one with
``op_type: create``, so a concurrent creator conflicts too); one changed meanwhile is read again, the same events
are added to it and it is written again (:mod:`~fuserec_os.engine.versioned`), up to ``MAX_ATTEMPTS`` times per
document, then the update fails with an error naming the store and how many documents kept changing
(:class:`LiveUpdateError`, handled as any failure above; the next full build repairs them). The profile job
(``fuserec profiles update``) writes the profiles, statistics and item signals the same way (the tokens ride
along on the same reads and writes; the statistics and signals add one small write of their meta document), so
a live update running during the job is not lost either.
A full build (``fuserec profiles build``) marks itself running: a live update meanwhile stores its events without
applying them, and the build folds in what was stored after its read when it has written
(:mod:`~fuserec_os.profiles.build_mark`, which also says what is left uncovered). Not covered: two batches of
one request ingested in the same millisecond by two processes both count it as already counted; and the three
stores are written one after the other, not atomically: a reader can briefly see an event in the statistics before
it is in the profile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from opensearchpy import OpenSearch, helpers

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.event_store import record_events
from fuserec_os.behaviour.events import DEFAULT_EVENTS_CONFIG, events_frame, normalize_query
from fuserec_os.behaviour.timeseries import RecordResult
from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import FuserecError
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.profiles import item_store, stats_store
from fuserec_os.profiles.build_mark import build_running
from fuserec_os.profiles.compute import ProductCatalog, UserProfile, update_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_cache import ItemSignalsCache
from fuserec_os.profiles.query_stats import REQUEST_COUNTED, QueryStats
from fuserec_os.profiles.store import read_product_vectors, read_profiles_versioned, update_stored_profiles

__all__ = ["LiveReport", "LiveUpdateError", "LiveUpdater", "mark_requests_counted_in_store", "record_events_live"]

log = logging.getLogger("fuserec.live")

#: How long a live updater keeps the catalog and product vectors before reading them again (seconds).
CATALOG_MAX_AGE_S = 600.0


class LiveUpdateError(FuserecError):
    """A live update failed; ``stats_written``: the statistics were already updated (the profiles not)."""

    def __init__(self, message: str, *, stats_written: bool) -> None:
        super().__init__(message)
        self.stats_written = stats_written


@dataclass
class LiveReport:
    """What one live update did: events folded in, profiles and statistics docs written, time, or the error."""

    events: int = 0
    users: int = 0
    stats_docs: int = 0
    item_docs: int = 0
    ms: float = 0.0
    error: str | None = None
    deferred: bool = False  # a full build was running: stored, applied by the build when it ends (build_mark.py)

    def as_dict(self) -> dict[str, Any]:
        return {
            "deferred": self.deferred,
            "events": self.events,
            "users": self.users,
            "stats_docs": self.stats_docs,
            "item_docs": self.item_docs,
            "ms": round(self.ms, 1),
            "error": self.error,
        }


def mark_requests_counted_in_store(
    client: OpenSearch, events_alias: str, events: pd.DataFrame, *, ingested_until: Any = None
) -> pd.DataFrame:
    """``events`` with the column ``request_counted``: True where another stored event (not in ``events``) of
    the same request id and normalised query was ingested before this batch's first event of it, so that event
    counts the request, not this batch.

    Why "before", not "any other": whichever batch holds the request's first-ingested event counts it, so two
    processes folding events of one request at the same instant (each seeing the other's) count it once, not
    never, and so does a live event folded before an earlier-stored one the job folds later. A tie to the
    millisecond, or a batch without ``ingested_at``, counts as already counted (the old rule).

    One aggregation over the events alias for the batch's request ids. ``ingested_until``: only stored events
    ingested at or before it count (the job: events stored after its read are not folded in yet). See the
    module docstring.
    """
    out = events.copy()
    out[REQUEST_COUNTED] = False
    if out.empty or "request_id" not in out.columns:
        return out
    has = out["request_id"].notna() & out["query_norm"].notna()
    rids = sorted({str(r) for r in out.loc[has, "request_id"]})
    if not rids:
        return out
    body = {
        "size": 0,
        "query": {
            "bool": {
                "filter": [{"terms": {"request_id": rids}}]
                + (
                    [{"range": {"ingested_at": {"lte": pd.Timestamp(ingested_until).isoformat()}}}]
                    if ingested_until is not None and not pd.isna(ingested_until)
                    else []
                ),
                "must_not": [{"ids": {"values": [str(e) for e in out["event_id"]]}}],
            }
        },
        "aggs": {
            "rid": {
                "terms": {"field": "request_id", "size": len(rids)},
                "aggs": {
                    "q": {
                        "terms": {"field": "query_norm", "size": 100},
                        "aggs": {"first": {"min": {"field": "ingested_at"}}},
                    }
                },
            }
        },
    }
    with engine_errors(f"reading earlier events of {len(rids)} requests from {events_alias}"):
        # a search sees only refreshed writes: without this, on OpenSearch the previous batch's events of the
        # same request are invisible (osmem shows writes at once) and the request is counted twice
        client.indices.refresh(index=events_alias, params={"ignore_unavailable": "true"})
        resp = client.search(index=events_alias, body=body, params={"ignore_unavailable": "true"})
    first_other: dict[tuple[str, str], float | None] = {}  # (query, request) -> first ingested_at elsewhere, ms
    for b in resp.get("aggregations", {}).get("rid", {}).get("buckets", []):
        for q in b.get("q", {}).get("buckets", []):
            seen = (normalize_query(str(q["key"])), str(b["key"]))
            value = (q.get("first") or {}).get("value")
            ms = float(value) if value is not None else None
            before = first_other.get(seen)
            first_other[seen] = ms if before is None or (ms is not None and ms < before) else before
    if not first_other:
        return out
    keys = [
        (normalize_query(q), str(r)) if isinstance(q, str) and r is not None else None
        for q, r in zip(out["query_norm"].tolist(), out["request_id"].tolist(), strict=True)
    ]
    stamps = out["ingested_at"] if "ingested_at" in out.columns else pd.Series(pd.NaT, index=out.index)
    mine: dict[tuple[str, str], float] = {}  # this batch's first ingested_at per (query, request), ms
    for key, ts in zip(keys, stamps.tolist(), strict=True):
        if key is not None and key in first_other and not pd.isna(ts):
            ms = pd.Timestamp(ts).value / 1e6
            mine[key] = min(ms, mine.get(key, ms))

    def counted(key: tuple[str, str] | None) -> bool:
        if key is None or key not in first_other:
            return False
        other, own = first_other[key], mine.get(key)
        return other is None or own is None or other <= own

    out[REQUEST_COUNTED] = [counted(k) for k in keys]
    return out


@dataclass
class LiveUpdater:
    """Folds stored events into the profiles and statistics in the cluster (see the module docstring).

    Keeps the catalog (:class:`ProductCatalog`) and the product vectors of the last full build for
    ``catalog_max_age_s`` seconds; pass ``catalog`` to use a given one (tests, tools). ``items_alias``: where the
    item signals are (None: not updated; :meth:`for_prefix` sets it); ``signals_cache``: this process's serving
    copy of them, updated at once.
    """

    client: OpenSearch
    products_alias: str
    events_alias: str
    profiles_alias: str
    vectors_alias: str
    stats_alias: str
    cfg: ProfilesConfig
    catalog: ProductCatalog | None = None
    catalog_max_age_s: float = CATALOG_MAX_AGE_S
    items_alias: str | None = None
    signals_cache: ItemSignalsCache | None = None
    state_alias: str | None = None  # where a running full build leaves its mark (None: never deferred)
    _loaded_at: float = field(default=0.0, repr=False)
    _vectors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _fixed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self._fixed = self.catalog is not None

    @classmethod
    def for_prefix(cls, client: OpenSearch, prefix: str, cfg: ProfilesConfig, **kwargs: Any) -> LiveUpdater:
        from fuserec_os.profiles.jobs import Aliases

        a = Aliases.for_prefix(prefix)
        kwargs.setdefault("items_alias", a.items)
        kwargs.setdefault("state_alias", a.state)
        return cls(client, a.products, a.events, a.profiles, a.vectors, a.stats, cfg, **kwargs)

    def _product_side(self) -> tuple[ProductCatalog, dict[str, np.ndarray]]:
        now = time.monotonic()
        if self.catalog is None or (not self._fixed and now - self._loaded_at > self.catalog_max_age_s):
            from fuserec_os.profiles.jobs import load_catalog

            if not self._fixed:
                self.catalog = load_catalog(self.client, self.products_alias)
            self._vectors = read_product_vectors(self.client, self.vectors_alias)
            self._loaded_at = now
        assert self.catalog is not None
        return self.catalog, self._vectors

    def apply(self, events: pd.DataFrame | Iterable[Mapping[str, Any]]) -> LiveReport:
        """Fold ``events`` (stored event documents or an events frame; each exactly once) into the touched
        users' profiles and the touched statistics keys. A frame with the column ``request_counted`` says itself
        which requests are already counted; otherwise the store is asked. Raises :class:`LiveUpdateError`
        (see :func:`record_events_live` for the flag's clean-up)."""
        started = time.monotonic()
        frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
        report = LiveReport(events=len(frame))
        if frame.empty:
            return report
        with self._lock:
            stats_written = False
            try:
                catalog, vectors = self._product_side()
                users = sorted(set(frame["user_id"].astype(str)))
                existing, versions = read_profiles_versioned(self.client, self.profiles_alias, users)
                newest = pd.Timestamp(frame["timestamp"].max()) + pd.Timedelta(milliseconds=1)

                def fold(current: Mapping[str, UserProfile], pending: Sequence[str]) -> dict[str, UserProfile]:
                    """The events of ``pending`` users folded into their ``current`` profiles (again, when
                    another process changed them meanwhile)."""
                    part = frame if len(pending) == len(users) else frame[frame["user_id"].astype(str).isin(pending)]
                    as_of = max([newest, *(p.as_of for p in current.values())])
                    return update_profiles(current, part, catalog, self.cfg, as_of, product_vectors=vectors)

                updated = fold(existing, users)
                marked = (
                    frame
                    if REQUEST_COUNTED in frame.columns  # the caller knows (e.g. replaying a stored log in order)
                    else mark_requests_counted_in_store(self.client, self.events_alias, frame)
                )
                new_stats = QueryStats().add_events(marked)
                report.stats_docs = stats_store.add_stats(self.client, self.stats_alias, new_stats)
                stats_written = True
                if self.items_alias is not None:
                    written = item_store.add(self.client, self.items_alias, events=frame)
                    if written:  # None: no item signals built yet (the next profile job builds them)
                        report.item_docs = len(written)
                        if self.signals_cache is not None:
                            self.signals_cache.apply_docs(written)
                report.users = update_stored_profiles(
                    self.client, self.profiles_alias, users, fold, read=versions, first=updated
                )
            except (FuserecError, ValueError) as exc:
                raise LiveUpdateError(f"{type(exc).__name__}: {exc}", stats_written=stats_written) from exc
        report.ms = (time.monotonic() - started) * 1000
        return report


def _unflag(client: OpenSearch, docs: list[dict[str, Any]], spec: MappingSpec, events_alias: str) -> None:
    """Take ``applied_live`` off stored events (the live update failed before writing): the job folds them in."""
    from fuserec_os.behaviour.timeseries import month_index

    actions = [
        {
            "_op_type": "update",
            "_index": month_index(events_alias, str(d["timestamp"])),
            "_id": str(d["event_id"]),
            "doc": {"applied_live": False},
        }
        for d in docs
    ]
    with engine_errors(f"clearing applied_live on {len(actions)} events"):
        helpers.bulk(client, actions, refresh=False)


def record_events_live(
    client: OpenSearch,
    events: Iterable[Mapping[str, Any]],
    spec: MappingSpec,
    alias: str,
    *,
    updater: LiveUpdater | None = None,
    cfg: EventsConfig = DEFAULT_EVENTS_CONFIG,
    refresh: bool = False,
) -> tuple[RecordResult, LiveReport | None]:
    """Store events (:func:`~fuserec_os.behaviour.event_store.record_events`) and, with an ``updater``, fold
    the stored ones into the profiles and statistics before returning.

    Without an updater this is ``record_events`` (the job folds the events in later). A failed live update
    never fails the recording: the events are stored either way and the report carries the error.
    """
    if updater is None:
        return record_events(client, events, spec, alias, cfg=cfg, refresh=refresh), None
    if updater.state_alias is not None and build_running(client, updater.state_alias):
        # the build would overwrite what is applied now: stored for it to fold in when it ends (build_mark.py)
        result = record_events(client, events, spec, alias, cfg=cfg, refresh=refresh)
        return result, LiveReport(events=len(result.stored), deferred=True)
    result = record_events(client, events, spec, alias, cfg=cfg, refresh=refresh, applied_live=True)
    if not result.stored:
        return result, LiveReport()
    try:
        report = updater.apply(result.stored)
    except LiveUpdateError as exc:
        error = str(exc)
        log.warning("live profile update failed for %d events: %s", len(result.stored), exc)
        if not exc.stats_written:
            try:
                _unflag(client, result.stored, spec, alias)
            except FuserecError as again:
                error += f"; clearing applied_live failed too ({again}): rebuild the profiles"
        else:
            error += "; statistics were updated, profiles not: rebuild the profiles"
        report = LiveReport(events=len(result.stored), error=error)
    return result, report
