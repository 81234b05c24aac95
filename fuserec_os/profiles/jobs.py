"""Profile jobs: full build (from the stored events or from files) and incremental update, with a watermark.

The watermark lives in the cluster (state doc ``profiles``), so any cron host can run ``fuserec profiles
update``. It records the newest ``ingested_at`` folded in, plus the ids of the events ingested in the last
:data:`OVERLAP` before it: the next update re-reads that overlap and skips those ids. Why: on a real cluster a
document becomes searchable up to a refresh interval after its ``ingested_at``, so an event written while an
update was reading could carry an ``ingested_at`` older than the watermark; without the overlap it would be
missed, and without the ids it would be counted twice (profiles keep no event ids).

Latent vectors are refit only by a full build; an update keeps each user's vector and folds in new users.

The query-product engagement statistics (:mod:`fuserec_os.profiles.stats_store`, alias ``<prefix>query-stats``)
come from the same events plus the stored search log (:mod:`fuserec_os.behaviour.search_log`, alias
``<prefix>searches``: position-weighted examinations), so serving reads what training computes. A build
replaces them (fresh index, atomic alias swap); an update adds the same de-duplicated events it folds into the
profiles, so the watermark and its overlap cover both, and the searches ingested since their own watermark
(kept in the same state doc, under ``impressions``, with the request ids of its overlap: the same idea). A state
doc without that entry (written before the search log was stored) means no search is in the statistics yet, so
the next update adds all of them. An update writes the profiles, then the statistics, then the watermarks: a
failure in between leaves the watermarks behind and the next update folds those events in again (as it always
did for the profiles).

The item signals (:mod:`fuserec_os.profiles.item_store`, alias ``<prefix>item-signals``: every shopper's decayed
counts, position-debiased rates, ratings, recency and trend per product) ride along with the statistics: a build
replaces them from the same events and searches, an update adds the same new events and searches to the touched
products (right after the statistics, before the watermarks), and an update finding none stored (profiles built
before they existed) builds them from everything the profiles include, as it does for the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from opensearchpy import OpenSearch

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.event_store import delete_user_events, event_indices, read_events
from fuserec_os.behaviour.events import events_frame, normalize_event
from fuserec_os.behaviour.search_log import delete_user_impressions, read_impressions, search_indices
from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import IndexStateError
from fuserec_os.index.products import read_products
from fuserec_os.index.readers import read_rows
from fuserec_os.index.rejects import RejectsWriter, default_rejects_path
from fuserec_os.index.state import get_state, put_state, state_index
from fuserec_os.profiles import item_store, stats_store
from fuserec_os.profiles.build_mark import clear_build_mark, set_build_mark
from fuserec_os.profiles.compute import (
    ProductCatalog,
    ProfileSet,
    UserProfile,
    build_profiles,
    iso_utc,
    to_utc,
    update_profiles,
)
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import ItemSignals
from fuserec_os.profiles.live import mark_requests_counted_in_store
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.profiles.store import (
    DEFAULT_THREADS,
    delete_profile,
    read_product_vectors,
    read_profiles_versioned,
    update_stored_profiles,
    write_product_vectors,
    write_profiles,
)

STATE_NAME = "profiles"
STATS_ALIAS = "query-stats"
ITEMS_ALIAS = "item-signals"
OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class Aliases:
    """Where the profile jobs read and write (tenant prefix applied)."""

    products: str
    events: str
    searches: str
    profiles: str
    vectors: str
    stats: str
    state: str
    prefix: str = ""
    items: str = ITEMS_ALIAS

    @classmethod
    def for_prefix(cls, prefix: str) -> Aliases:
        return cls(
            prefix=prefix,
            products=f"{prefix}products",
            events=f"{prefix}events",
            searches=f"{prefix}searches",
            profiles=f"{prefix}profiles",
            vectors=f"{prefix}product-vectors",
            stats=f"{prefix}{STATS_ALIAS}",
            state=state_index(prefix),
            items=f"{prefix}{ITEMS_ALIAS}",
        )


@dataclass
class ProfileJobReport:
    mode: str
    events: int = 0
    impressions: int = 0
    users: int = 0
    products: int = 0
    vectors: int = 0
    stats_docs: int = 0
    item_docs: int = 0
    live_skipped: int = 0
    caught_up: int = 0  # a full build: events stored after its read, folded in right after its write
    as_of: str | None = None
    watermark: str | None = None
    rejected: int = 0
    rejects_path: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return d


class _Clock:
    def __init__(self, report: ProfileJobReport) -> None:
        self.report = report
        self.t = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.report.seconds[name] = now - self.t
        self.t = now


def load_catalog(client: OpenSearch, products_alias: str) -> ProductCatalog:
    """The product catalog (every doc behind the alias), prepared for profile building."""
    return ProductCatalog.from_frame(read_products(client, products_alias, "building profiles"))


def _store(
    client: OpenSearch,
    aliases: Aliases,
    built: ProfileSet,
    stats: QueryStats,
    signals: ItemSignals,
    report: ProfileJobReport,
) -> None:
    report.users = write_profiles(client, aliases.profiles, built.profiles.values(), refresh=True)
    if built.product_vectors:
        write_product_vectors(client, aliases.vectors, built.product_vectors, built.as_of)
    report.vectors = len(built.product_vectors)
    report.stats_docs = stats_store.replace_stats(client, aliases.stats, stats)
    report.item_docs = item_store.replace_signals(client, aliases.items, signals)
    report.as_of = iso_utc(built.as_of)


def _before(events: pd.DataFrame, impressions: pd.DataFrame, as_of: datetime | None) -> tuple[Any, Any]:
    """The events and logged searches a build uses: only ``timestamp < as_of`` when given."""
    if as_of is not None:
        if len(events):
            events = events[events["timestamp"] < to_utc(as_of)]
        if len(impressions):
            impressions = impressions[impressions["timestamp"] < to_utc(as_of)]
    return events, impressions


def _build_stats(events: pd.DataFrame, impressions: pd.DataFrame, as_of: datetime | None) -> QueryStats:
    """The engagement statistics of the events and logged searches a build uses (only ``timestamp < as_of``
    when given)."""
    events, impressions = _before(events, impressions, as_of)
    return QueryStats().add_events(events).add_impressions(impressions)


def _build_signals(
    events: pd.DataFrame, impressions: pd.DataFrame, as_of: datetime | None, cfg: ProfilesConfig
) -> ItemSignals:
    """The item signals of the events and logged searches a build uses (as :func:`_build_stats`)."""
    events, impressions = _before(events, impressions, as_of)
    return ItemSignals.from_config(cfg).add_events(events).add_impressions(impressions)


def _read_searches(client: OpenSearch, aliases: Aliases, **kwargs: Any) -> pd.DataFrame:
    """The stored search log (``read_impressions`` arguments), empty when nothing was ever ingested."""
    return read_impressions(client, aliases.searches, **kwargs)


def _watermark_state(events: pd.DataFrame, fallback: datetime, id_column: str = "event_id") -> dict[str, Any]:
    """The watermark after folding ``events`` (or searches: ``id_column="request_id"``) in: newest
    ingested_at, and the ids within the overlap."""
    stamps = events["ingested_at"].dropna() if "ingested_at" in events else pd.Series([], dtype=object)
    if stamps.empty:
        newest = pd.Timestamp(fallback)
        recent: list[str] = []
    else:
        newest = pd.Timestamp(stamps.max())
        recent = sorted(events.loc[events["ingested_at"] > newest - OVERLAP, id_column].astype(str))
    return {
        "watermark": iso_utc(newest),
        "recent_ids": recent,
        "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def build_from_store(
    client: OpenSearch, aliases: Aliases, cfg: ProfilesConfig, as_of: datetime | None = None
) -> ProfileJobReport:
    """Rebuild every profile (and the product vectors) from all stored events; reset the watermark.

    While it runs, live updates store their events without applying them (:mod:`~fuserec_os.profiles.build_mark`);
    a full build then folds in what was stored after its read (an update from its own watermark), so no live event
    is lost to the build's write. A point-in-time build (``as_of``) leaves them to the next full build."""
    set_build_mark(client, aliases.state)
    try:
        report = _build_from_store(client, aliases, cfg, as_of)
    finally:
        clear_build_mark(client, aliases.state)
    if as_of is None:
        with engine_errors(f"refreshing {aliases.events} before folding in the events stored during the build"):
            # what live updates stored during the build must be searchable now, not at the next refresh
            client.indices.refresh(index=aliases.events, params={"ignore_unavailable": "true"})
        caught_up = update_from_store(client, aliases, cfg)
        report.caught_up = caught_up.events
        if caught_up.events:
            report.watermark, report.as_of = caught_up.watermark, caught_up.as_of
    return report


def _build_from_store(
    client: OpenSearch, aliases: Aliases, cfg: ProfilesConfig, as_of: datetime | None
) -> ProfileJobReport:
    report = ProfileJobReport(mode="build")
    clock = _Clock(report)
    started = datetime.now(timezone.utc)
    catalog = load_catalog(client, aliases.products)
    report.products = len(catalog)
    clock.lap("read_catalog")
    if not event_indices(client, aliases.events):
        raise IndexStateError(
            f"no events behind '{aliases.events}': run 'fuserec ingest events FILE' first, or build from files "
            "with 'fuserec profiles build --from FILE'."
        )
    events = read_events(client, aliases.events, before=as_of)
    report.events = len(events)
    clock.lap("read_events")
    searches = _read_searches(client, aliases, before=as_of)
    report.impressions = len(searches)
    clock.lap("read_impressions")
    built = build_profiles(events, catalog, cfg, as_of=as_of)
    stats = _build_stats(events, searches, as_of)
    signals = _build_signals(events, searches, as_of, cfg)
    clock.lap("compute")
    _store(client, aliases, built, stats, signals, report)
    clock.lap("write")
    state = _watermark_state(events, started)
    state["impressions"] = _impressions_state(searches, started)
    state["point_in_time"] = as_of is not None
    put_state(client, aliases.state, STATE_NAME, {**state, "as_of": report.as_of, "mode": "build"})
    report.watermark = state["watermark"]
    return report


def _impressions_state(searches: pd.DataFrame, fallback: datetime) -> dict[str, Any]:
    """The search log's watermark entry of the state doc (``watermark``, ``recent_ids``: request ids)."""
    state = _watermark_state(searches, fallback, "request_id")
    return {"watermark": state["watermark"], "recent_ids": state["recent_ids"]}


def read_event_file(
    path: Path,
    events_cfg: EventsConfig,
    column_map: Mapping[str, str] | None = None,
    rejects_path: Path | None = None,
) -> tuple[pd.DataFrame, int, Path]:
    """Events from a file (any format the ingest reads), validated like the ingest; bad rows to a rejects file."""
    rejects = RejectsWriter(rejects_path or default_rejects_path(path))
    rejects.path.unlink(missing_ok=True)
    docs = []
    try:
        for row_number, row in read_rows(path, column_map):
            doc, reasons = normalize_event(row, events_cfg)
            if doc is None:
                rejects.add(row_number, row, reasons)
            else:
                docs.append(doc)
    finally:
        rejects.close()
    frame = events_frame(docs).drop_duplicates("event_id", keep="last")
    return frame, rejects.count, rejects.path


def build_from_file(
    client: OpenSearch,
    aliases: Aliases,
    cfg: ProfilesConfig,
    path: Path,
    events_cfg: EventsConfig,
    column_map: Mapping[str, str] | None = None,
    as_of: datetime | None = None,
    rejects_path: Path | None = None,
) -> ProfileJobReport:
    """Rebuild every profile straight from an event file (a data-lake export), without storing the events.

    The watermark is set to now: a later ``update`` folds in only events ingested into the cluster after this.
    The statistics also include the stored search log (before ``as_of``), with its own watermark as in a
    build from the store.
    """
    started = datetime.now(timezone.utc)
    report = ProfileJobReport(mode="build-from-file")
    clock = _Clock(report)
    catalog = load_catalog(client, aliases.products)
    report.products = len(catalog)
    clock.lap("read_catalog")
    events, report.rejected, rejected_to = read_event_file(path, events_cfg, column_map, rejects_path)
    report.rejects_path = str(rejected_to) if report.rejected else None
    report.events = len(events)
    clock.lap("read_events")
    searches = _read_searches(client, aliases, before=as_of)
    report.impressions = len(searches)
    clock.lap("read_impressions")
    built = build_profiles(events, catalog, cfg, as_of=as_of)
    stats = _build_stats(events, searches, as_of)
    signals = _build_signals(events, searches, as_of, cfg)
    clock.lap("compute")
    _store(client, aliases, built, stats, signals, report)
    clock.lap("write")
    now = datetime.now(timezone.utc)
    state = _watermark_state(events.iloc[0:0], now)
    # Events of the file that were also ingested into the cluster just before now would be re-read by the next
    # update's overlap window: remember their ids so they are not counted twice.
    if event_indices(client, aliases.events):
        recent = read_events(client, aliases.events, since_ingested=now - OVERLAP)
        state["recent_ids"] = sorted(set(recent["event_id"]) & set(events["event_id"]))
    state["impressions"] = _impressions_state(searches, started)
    state["point_in_time"] = as_of is not None
    put_state(client, aliases.state, STATE_NAME, {**state, "as_of": report.as_of, "mode": "build-from-file"})
    report.watermark = state["watermark"]
    return report


def update_from_store(client: OpenSearch, aliases: Aliases, cfg: ProfilesConfig) -> ProfileJobReport:
    """Fold the events ingested since the watermark into the profiles of their users (no full recompute), and
    those events and the searches logged since their watermark into the query statistics."""
    started = datetime.now(timezone.utc)
    report = ProfileJobReport(mode="update")
    clock = _Clock(report)
    state = get_state(client, aliases.state, STATE_NAME)
    if state is None:
        raise IndexStateError("no profiles were built yet: run 'fuserec profiles build' once, then 'update'.")
    if state.get("point_in_time"):
        raise IndexStateError(
            f"the last build was point-in-time (--as-of {state.get('as_of')}): events after that time were left out "
            "on purpose, so an update cannot continue from it. Run a full 'fuserec profiles build' first."
        )
    watermark = pd.Timestamp(state["watermark"])
    seen = set(state.get("recent_ids") or [])
    events = read_events(client, aliases.events, since_ingested=(watermark - OVERLAP).to_pydatetime())
    events = events[~events["event_id"].isin(seen)]
    # events recorded with live updates are already in the profiles and statistics (profiles/live.py): the
    # watermark moves past them, nothing else
    folded = events[~events["applied_live"]] if "applied_live" in events.columns else events
    report.events = len(folded)
    report.live_skipped = len(events) - len(folded)
    clock.lap("read_events")
    imp_state = state.get("impressions")
    imp_prev: Mapping[str, Any] = imp_state if isinstance(imp_state, Mapping) else {}
    imp_watermark = pd.Timestamp(imp_prev["watermark"]) if imp_prev.get("watermark") else None
    imp_seen = set(imp_prev.get("recent_ids") or [])
    if imp_watermark is not None:
        searches = _read_searches(client, aliases, since_ingested=(imp_watermark - OVERLAP).to_pydatetime())
        searches = searches[~searches["request_id"].isin(imp_seen)]
    else:  # a state from before the search log was stored: no search is in the statistics yet
        searches = _read_searches(client, aliases)
    report.impressions = len(searches)
    clock.lap("read_impressions")
    if events.empty and searches.empty:
        report.watermark = state["watermark"]
        report.as_of = state.get("as_of")
        return report
    report.as_of = state.get("as_of")
    if not folded.empty:
        catalog = load_catalog(client, aliases.products)
        report.products = len(catalog)
        users = sorted(set(folded["user_id"]))
        existing, versions = read_profiles_versioned(client, aliases.profiles, users)
        vectors = read_product_vectors(client, aliases.vectors)
        clock.lap("read_state")
        newest = folded["timestamp"].max() + pd.Timedelta(milliseconds=1)
        state_as_of = [pd.Timestamp(state["as_of"])] if state.get("as_of") else []

        def fold(current: Mapping[str, UserProfile], pending: Sequence[str]) -> dict[str, UserProfile]:
            """The new events of ``pending`` users folded into their ``current`` profiles (again for those a
            live update changed meanwhile: written only if unchanged, so neither update is lost)."""
            part = folded if len(pending) == len(users) else folded[folded["user_id"].isin(pending)]
            as_of = max([newest, *state_as_of, *(p.as_of for p in current.values())])
            return update_profiles(current, part, catalog, cfg, as_of, product_vectors=vectors)

        updated = fold(existing, users)
        as_of = max([newest, *state_as_of, *(p.as_of for p in existing.values())])
        clock.lap("compute")
        report.users = update_stored_profiles(
            client, aliases.profiles, users, fold, read=versions, first=updated, threads=DEFAULT_THREADS, refresh=True
        )
        report.as_of = iso_utc(as_of)
    if stats_store.read_meta(client, aliases.stats) is None:  # profiles built before the stats existed
        backfill = _backfill_stats(client, aliases, state, events, searches, imp_watermark, imp_seen)
        report.stats_docs = stats_store.replace_stats(client, aliases.stats, backfill)
    else:
        newest_read = events["ingested_at"].max() if len(events) else None
        marked = mark_requests_counted_in_store(client, aliases.events, folded, ingested_until=newest_read)
        new = QueryStats().add_events(marked).add_impressions(searches)
        report.stats_docs = stats_store.add_stats(client, aliases.stats, new, refresh=True)
    written = item_store.add(client, aliases.items, events=folded, impressions=searches, refresh=True)
    if written is None:  # profiles built before the item signals existed: all the profiles include, at once
        ev_all, logged = _included(client, aliases, state, events, searches, imp_watermark, imp_seen)
        signals = ItemSignals.from_config(cfg).add_events(ev_all).add_impressions(logged)
        report.item_docs = item_store.replace_signals(client, aliases.items, signals)
    else:
        report.item_docs = len(written)
    clock.lap("write")
    new_state: dict[str, Any]
    if events.empty:  # the events' watermark stays where it was
        new_state = {k: state[k] for k in ("watermark", "recent_ids") if k in state}
        new_state["updated_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        merged = pd.concat([events, _overlap_frame(state, watermark)], ignore_index=True)
        new_state = _watermark_state(merged, watermark.to_pydatetime())
    if imp_watermark is None:
        new_state["impressions"] = _impressions_state(searches, started)
    else:
        imp_merged = pd.concat(
            [searches[["request_id", "ingested_at"]], _overlap_frame(imp_prev, imp_watermark, "request_id")],
            ignore_index=True,
        )
        new_state["impressions"] = _impressions_state(imp_merged, imp_watermark.to_pydatetime())
    put_state(client, aliases.state, STATE_NAME, {**new_state, "as_of": report.as_of, "mode": "update"})
    report.watermark = new_state["watermark"]
    return report


def _backfill_stats(
    client: OpenSearch,
    aliases: Aliases,
    state: Mapping[str, Any],
    events: pd.DataFrame,
    searches: pd.DataFrame,
    imp_watermark: pd.Timestamp | None,
    imp_seen: set[str],
) -> QueryStats:
    """Statistics of every stored event the profiles include after this update (when none were stored yet):
    those ingested before the overlap window, the previous run's overlap ids, and this run's new events; and
    likewise of the logged searches (all of this run's when no search watermark was kept yet)."""
    stored, logged = _included(client, aliases, state, events, searches, imp_watermark, imp_seen)
    return QueryStats().add_events(stored).add_impressions(logged)


def _included(
    client: OpenSearch,
    aliases: Aliases,
    state: Mapping[str, Any],
    events: pd.DataFrame,
    searches: pd.DataFrame,
    imp_watermark: pd.Timestamp | None,
    imp_seen: set[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stored event and logged search the profiles include after this update (see :func:`_backfill_stats`)."""
    watermark = pd.Timestamp(state["watermark"])
    seen = set(state.get("recent_ids") or [])
    new_ids = set(events["event_id"])
    stored = read_events(client, aliases.events)
    included = (stored["ingested_at"] <= watermark - OVERLAP) | stored["event_id"].isin(seen | new_ids)
    if imp_watermark is None:
        logged = searches
    else:
        logged = _read_searches(client, aliases)
        keep = (logged["ingested_at"] <= imp_watermark - OVERLAP) | logged["request_id"].isin(
            imp_seen | set(searches["request_id"])
        )
        logged = logged[keep]
    return stored[included], logged


def _overlap_frame(state: Mapping[str, Any], watermark: pd.Timestamp, id_column: str = "event_id") -> pd.DataFrame:
    """The previous run's overlap ids, kept so they stay skipped while still inside the overlap window."""
    ids = list(state.get("recent_ids") or [])
    return pd.DataFrame({id_column: ids, "ingested_at": pd.Series([watermark] * len(ids), dtype="datetime64[ns, UTC]")})


@dataclass(frozen=True)
class ErasureReport:
    user_id: str
    profiles: int
    events: int
    impressions: int = 0

    @property
    def documents(self) -> int:
        return self.profiles + self.events + self.impressions


def erase_user(client: OpenSearch, aliases: Aliases, user_id: str) -> ErasureReport:
    """Right to erasure: delete the user's profile, every event of theirs and every search they made (the
    search log). Returns what was removed. The aggregated query statistics hold no user ids."""
    profiles = delete_profile(client, aliases.profiles, user_id)
    events = delete_user_events(client, aliases.events, user_id) if event_indices(client, aliases.events) else 0
    searches = (
        delete_user_impressions(client, aliases.searches, user_id) if search_indices(client, aliases.searches) else 0
    )
    return ErasureReport(user_id, profiles, events, searches)


Progress = Callable[[str], None]
