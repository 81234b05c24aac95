"""Training examples from logged searches, with every feature computed as of the search (no leakage).

A *logged search* is one impression (request id, user, query, time, the products shown in order) or, when no
impressions are logged, a request id seen on events that carry a query; events with a query and no request id
form searches by user, normalised query and time (:func:`derive_request_ids`). Candidates then come from the
engine's top-K plus the products engaged earlier after the same normalised query (BM25 misses a share of what
shoppers want, and a reranker cannot rank what it never sees). Labels are graded from the events that carry
the search's request id: purchase 3 > add_to_cart 2 > click 1 > shown 0.

Point in time: searches are processed in time order. Before a search is featurised, the query statistics and
behavioural candidates get the events (and logged searches) between the previous search and this one, and the
searching user's profile holds their events strictly before it (updated in batches of consecutive searches:
:func:`_profiles_per_search`; the profiles' exact incremental update), and query counts are additive with each
request counted once (:func:`~fuserec_os.profiles.query_stats.mark_counted_requests`). So no event at or after
a search influences its features, and none before it is missing: online, live updates
(:mod:`fuserec_os.profiles.live`) keep the stored profiles and statistics as fresh.
Product latent vectors are refitted as of each day on the events before it (:mod:`fuserec_os.learn.vectors`:
a single fit before validation let each training search's own engagement into its ``latent_dot``). Which
events the test period holds out of the statistics and vectors: :mod:`fuserec_os.learn.splits`.

Item signals (:class:`~fuserec_os.profiles.item_signals.ItemSignals`: every shopper's decayed counts, debiased
rates, ratings, recency, trend) advance with the query statistics, so they too hold exactly the events and logged
searches before each search (and are frozen with them); each candidate row also carries its ``item_engagement``
(decayed clicks + 2 carts + 3 purchases), the score of the behaviour popularity baseline.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fuserec_os.behaviour.config import DEFAULT_DERIVED_SEARCH_GAP_MINUTES
from fuserec_os.behaviour.events import normalize_query
from fuserec_os.errors import ConfigError
from fuserec_os.features.assemble import Candidates, RequestContext, assemble
from fuserec_os.features.items import ItemTable
from fuserec_os.features.spec import FeatureSet
from fuserec_os.learn.splits import SplitSpec, assign_splits, held_out_events
from fuserec_os.learn.vectors import refit_times, vectors_in_time
from fuserec_os.profiles.compute import ProductCatalog, UserProfile, update_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.item_signals import ItemSignals, PreparedEvents, PreparedImpressions
from fuserec_os.profiles.query_stats import QueryStats, mark_counted_requests
from fuserec_os.rerank.blend import Gate
from fuserec_os.timefmt import utc_iso

GRADES: Mapping[str, int] = {"click": 1, "add_to_cart": 2, "purchase": 3}
DEFAULT_DERIVED_GAP = pd.Timedelta(minutes=DEFAULT_DERIVED_SEARCH_GAP_MINUTES)


class ScoredRetriever(Protocol):
    """The engine's ranked (product id, score) lists for queries (BM25 through the engine, cached)."""

    def search_scored(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]: ...


@dataclass
class Dataset:
    """Examples over candidate rows (see docs/personalization.md); rows of one search are contiguous."""

    X: np.ndarray
    names: tuple[str, ...]
    labels: np.ndarray
    groups: np.ndarray
    searches: pd.DataFrame
    candidates: pd.DataFrame
    product_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    cuts: tuple[pd.Timestamp, pd.Timestamp] | None = None
    seconds: float = 0.0

    def rows(self, split: str) -> np.ndarray:
        """Boolean mask over rows for ``train`` / ``valid`` / ``test``."""
        per_search = (self.searches["split"] == split).to_numpy()
        return np.asarray(per_search[self.groups])

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, labels, groups renumbered 0..) of one split."""
        mask = self.rows(split)
        g = self.groups[mask]
        _, renumbered = np.unique(g, return_inverse=True)
        return self.X[mask], self.labels[mask], renumbered.astype(np.int32)

    def summary(self) -> dict[str, Any]:
        counts = self.searches["split"].value_counts().to_dict()
        return {
            "searches": {k: int(counts.get(k, 0)) for k in ("train", "valid", "test")},
            "rows": len(self.labels),
            "positives": int((self.labels > 0).sum()),
            "features": len(self.names),
            "valid_from": self.cuts[0].isoformat() if self.cuts else None,
            "test_from": self.cuts[1].isoformat() if self.cuts else None,
        }


#: Prefix of the request ids :func:`derive_request_ids` makes up (never a shop's own id format).
DERIVED_PREFIX = "derived-"


def derive_request_ids(events: pd.DataFrame, gap: pd.Timedelta) -> tuple[pd.DataFrame, int]:
    """Give events with a query and no request id the id of a search derived from the log; returns (events, the
    number of searches derived).

    A click log without a search log or request ids still says who searched what and when: the events of one
    user after the same normalised query, each within ``gap`` of the previous one, are one search. Times are
    ``query_time`` (when the search was made) where given, else the event's ``timestamp``. The id is a hash of
    user, query and the search's first time, so the same log always derives the same ids (and evaluation sets
    compare). Events that have a request id are left as they are.
    """
    if events.empty or "request_id" not in events.columns:
        return events, 0
    query = events["query_norm"] if "query_norm" in events.columns else events["query"]
    need = events["request_id"].isna() & query.notna() & (query.astype(str).str.strip() != "")
    if not need.any():
        return events, 0
    at = pd.to_datetime(events.loc[need, "timestamp"], utc=True)
    if "query_time" in events.columns:
        asked = pd.to_datetime(events.loc[need, "query_time"], utc=True)
        at = asked.where(asked.notna(), at)
    sub = pd.DataFrame(
        {"user": events.loc[need, "user_id"].astype(str), "q": query[need].map(normalize_query), "at": at}
    ).sort_values(["user", "q", "at"], kind="stable")
    same = (sub["user"] == sub["user"].shift()) & (sub["q"] == sub["q"].shift())
    starts = ~same | (sub["at"] - sub["at"].shift() > gap)
    number = starts.cumsum()
    first_at = sub["at"].where(starts).ffill()
    keys = sub["user"] + "\x1f" + sub["q"] + "\x1f" + first_at.map(lambda t: t.isoformat())
    ids = {key: DERIVED_PREFIX + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16] for key in keys.unique()}
    out = events.copy()
    out.loc[sub.index, "request_id"] = keys.map(ids).to_numpy()
    return out, int(number.iloc[-1])


def logged_searches(events: pd.DataFrame, impressions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per logged search with a query: search_id, request_id, user_id, query, query_norm, timestamp, shown.

    ``shown`` is the list of product ids in display order (impressions; empty for a search that found nothing),
    or None (derived from events). A search
    from events happened at the earliest ``query_time`` of its events, or else just before its first event.
    """
    if impressions is not None and not impressions.empty:
        imp = impressions[impressions["query"].fillna("").astype(str).str.strip() != ""]
        out = pd.DataFrame(
            {
                "request_id": imp["request_id"].astype(str),
                "user_id": imp["user_id"].astype(str),
                "query": imp["query"].astype(str),
                "timestamp": pd.to_datetime(imp["timestamp"], utc=True),
                "shown": imp["product_ids"].map(list),
            }
        )
    else:
        ev = events[events["request_id"].notna() & events["query"].notna()]
        at = pd.to_datetime(ev["timestamp"], utc=True) - pd.Timedelta(milliseconds=1)
        if "query_time" in ev.columns:
            asked = pd.to_datetime(ev["query_time"], utc=True)
            at = asked.where(asked.notna(), at)
        first = (
            ev.assign(searched_at=at)
            .groupby("request_id", sort=False)
            .agg(user_id=("user_id", "first"), query=("query", "first"), timestamp=("searched_at", "min"))
        )
        out = first.reset_index()
        out["shown"] = None
    out["query_norm"] = out["query"].map(normalize_query)
    out = out.sort_values(["timestamp", "request_id"], ignore_index=True)
    out.insert(0, "search_id", np.arange(len(out), dtype=np.int64))
    return out


def graded_labels(events: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(request_id, product_id) -> best grade among the events carrying that request id."""
    ev = events[events["request_id"].notna() & events["type"].isin(list(GRADES))]
    grades = ev["type"].map(GRADES)
    best: dict[tuple[str, str], int] = {}
    for rid, pid, g in zip(ev["request_id"].astype(str), ev["product_id"].astype(str), grades, strict=True):
        key = (rid, pid)
        if g > best.get(key, 0):
            best[key] = int(g)
    return best


def _ns(col: pd.Series) -> np.ndarray:
    """UTC nanoseconds of a timestamp column (for searchsorted)."""
    values: np.ndarray = pd.DatetimeIndex(pd.to_datetime(col, utc=True)).as_unit("ns").asi8
    return values


def _profiles_per_search(
    searches: pd.DataFrame,
    ev: pd.DataFrame,
    ev_ns: np.ndarray,
    catalog: ProductCatalog,
    cfg: ProfilesConfig,
) -> list[UserProfile | None]:
    """Each search's user profile from that user's events strictly before the search (None: no such event).

    One ``update_profiles`` call per search would cost most of the dataset build, so consecutive searches are
    batched: a batch grows while no user in it has an event between their first search in the batch and a later
    one, so every user's profile is the same for all their searches in the batch; the batch's users are updated
    in one call (as of the latest first-search time: decay is a common factor, and every profile feature is a
    share, a ratio or a normalised vector, so the features do not depend on the profile's ``as_of``).
    """
    by_user = {
        str(u): np.asarray(rows) for u, rows in ev.groupby(ev["user_id"].astype(str), sort=False).indices.items()
    }
    users = searches["user_id"].astype(str).tolist()
    times = _ns(searches["timestamp"])
    profiles: dict[str, UserProfile] = {}
    applied: dict[str, int] = {}  # per user: how many of their events (in time order) the profile holds
    out: list[UserProfile | None] = []
    i, n = 0, len(users)
    while i < n:
        first: dict[str, int] = {}
        j = i
        while j < n:
            u, t = users[j], int(times[j])
            if u in first:
                rows = by_user.get(u)
                if rows is not None:
                    u_ns = ev_ns[rows]
                    if np.searchsorted(u_ns, t, side="left") > np.searchsorted(u_ns, first[u], side="left"):
                        break  # an event of u between their searches in this batch: next batch
            else:
                first[u] = t
            j += 1
        parts = []
        for u, t in first.items():
            rows = by_user.get(u)
            if rows is None:
                continue
            upto = int(np.searchsorted(ev_ns[rows], t, side="left"))
            done = applied.get(u, 0)
            if upto > done:
                parts.append(rows[done:upto])
                applied[u] = upto
        if parts:
            as_of = pd.Timestamp(max(first.values()), tz="UTC")
            touched = ev.iloc[np.concatenate(parts)]
            mine = {u: profiles[u] for u in set(touched["user_id"].astype(str)) if u in profiles}
            profiles.update(update_profiles(mine, touched, catalog, cfg, as_of))
        out.extend(profiles.get(users[k]) for k in range(i, j))
        i = j
    return out


def query_type(query_norm: str) -> str:
    """``broad`` for one-word queries ("shoes"), ``specific`` otherwise ("trail running shoes")."""
    return "broad" if len(query_norm.split()) <= 1 else "specific"


def build_dataset(
    events: pd.DataFrame,
    catalog: ProductCatalog,
    feature_set: FeatureSet,
    profiles_cfg: ProfilesConfig,
    retriever: ScoredRetriever,
    *,
    impressions: pd.DataFrame | None = None,
    split: SplitSpec | None = None,
    derived_search_gap: pd.Timedelta | None = DEFAULT_DERIVED_GAP,
    engine_k: int = 100,
    behavioural_k: int = 20,
    progress: Callable[[str], None] | None = None,
    products: pd.DataFrame | None = None,
    product_vectors: Mapping[str, np.ndarray] | None = None,
    test_events: pd.DataFrame | None = None,
) -> Dataset:
    """Featurise every logged search with at least one engaged product (see the module docstring).

    ``products`` (the catalog's documents) adds the item features a ProductCatalog does not carry (title
    terms, reviews, popularity, stock, age); without it they are missing for every row. ``product_vectors``
    (a stored model's own) are what the test searches read (training and validation ones read the vectors
    refitted as of their day, :mod:`fuserec_os.learn.vectors`).
    ``derived_search_gap``: events with a query and no request id form searches (:func:`derive_request_ids`);
    None leaves them out. Profiles and query statistics read the events as stored, as serving does.
    ``test_events``: held-out events that were never stored (``model evaluate --test-file``): their searches are
    the test searches; the split says which events the statistics may count (:mod:`fuserec_os.learn.splits`).
    """
    started = time.monotonic()
    say = progress or (lambda _m: None)
    split = split or SplitSpec()
    events, labelled, in_file, test_requests = _with_test_events(events, test_events, derived_search_gap, say)
    searches = logged_searches(labelled, impressions)
    labels = graded_labels(labelled)
    engaged = {rid for rid, _ in labels}
    searches = searches[searches["request_id"].isin(engaged)]
    # a logged search that showed nothing (no hits) has no candidate to learn from, whatever an event says
    showed_nothing = searches["shown"].map(lambda shown: shown is not None and len(shown) == 0).astype(bool)
    searches = searches[~showed_nothing].reset_index(drop=True)
    if split.test_until is not None:
        searches = searches[searches["timestamp"] <= pd.Timestamp(split.test_until)].reset_index(drop=True)
    searches["search_id"] = np.arange(len(searches), dtype=np.int64)
    searches["split"], (valid_from, test_from) = assign_splits(searches, split, test_requests)
    say(f"{len(searches):,} searches with engagement; valid from {utc_iso(valid_from)}, test from {utc_iso(test_from)}")
    held = held_out_events(events["user_id"], events["timestamp"], searches, split, test_from, in_file)

    # product vectors as of each search, never fitted on held-out events (learn/vectors.py)
    items = ItemTable.from_catalog(catalog, None, products=products)
    refits = refit_times(searches["timestamp"].min(), valid_from, test_from)
    in_time = vectors_in_time(
        events[~held], catalog, profiles_cfg, items, refits, final=product_vectors is None, say=say
    )
    vectors = in_time.final if product_vectors is None else dict(product_vectors)
    stored = items.with_vectors(vectors) if product_vectors is not None else None  # a stored model's test searches

    queries = sorted(set(searches["query"]))
    engine = dict(zip(queries, retriever.search_scored(queries, engine_k), strict=True))
    say(f"engine scores for {len(queries)} distinct queries")

    # point in time: every search sees the events (and logged searches) strictly before its own timestamp
    ev = mark_counted_requests(events.sort_values("timestamp", kind="stable").reset_index(drop=True))
    ev_ns = _ns(ev["timestamp"])
    counted = ~held[np.argsort(_ns(events["timestamp"]), kind="stable")] | (not split.freeze_stats)
    imp = impressions if impressions is not None and not impressions.empty else None
    imp_ns = np.zeros(0, dtype=np.int64)
    imp_counted = np.ones(0, dtype=bool)
    if imp is not None:
        imp = imp.assign(timestamp=pd.to_datetime(imp["timestamp"], utc=True))
        imp = imp.sort_values("timestamp", kind="stable").reset_index(drop=True)
        imp_ns = _ns(imp["timestamp"])
        imp_counted = ~_held_impressions(imp, searches, split, test_from, test_requests) | (not split.freeze_stats)

    t_start = time.monotonic()
    user_profiles = _profiles_per_search(searches, ev, ev_ns, catalog, profiles_cfg)
    timing_profiles = time.monotonic() - t_start
    stats = QueryStats().track_sums()  # priors read after every search: keep their sums running
    signals = ItemSignals.from_config(profiles_cfg)  # the item signals, advanced with the statistics
    # the item signals see what the statistics see (held-out events and searches stay out when frozen): their
    # prepared arrays hold the counted rows only, and *_cum maps a position in ev / imp to one in those rows
    ev_arrays = PreparedEvents.from_frame(ev[counted])
    ev_cum = np.concatenate(([0], np.cumsum(counted)))
    imp_arrays = PreparedImpressions.from_frame(imp[imp_counted]) if imp is not None else None
    imp_cum = np.concatenate(([0], np.cumsum(imp_counted)))
    behavioural: dict[str, dict[str, int]] = {}
    at_valid: tuple[QueryStats, dict[str, dict[str, int]], ItemSignals] | None = None  # frozen for validation
    blocks: list[np.ndarray] = []
    y_parts: list[np.ndarray] = []
    g_parts: list[np.ndarray] = []
    cand_rows: list[dict[str, Any]] = []
    seg_user: list[int] = []
    ev_done = imp_done = 0
    names: tuple[str, ...] = ()
    timing = {"profiles": timing_profiles, "stats": 0.0, "features": 0.0}
    for position, row in enumerate(searches.to_dict("records")):
        now = pd.Timestamp(row["timestamp"])
        now_ns = now.value
        t0 = time.monotonic()
        hi = int(np.searchsorted(ev_ns, now_ns, side="left"))
        if hi > ev_done:  # the statistics and behavioural candidates need every earlier event (not held out)
            new = ev.iloc[ev_done:hi][counted[ev_done:hi]]
            stats.add_events(new)
            signals.add_prepared(ev_arrays, int(ev_cum[ev_done]), int(ev_cum[hi]))
            _add_behavioural(behavioural, new)
            ev_done = hi
        if imp is not None:
            ihi = int(np.searchsorted(imp_ns, now_ns, side="left"))
            if ihi > imp_done:
                stats.add_impressions(imp.iloc[imp_done:ihi][imp_counted[imp_done:ihi]])
                if imp_arrays is not None:
                    signals.add_prepared_impressions(imp_arrays, int(imp_cum[imp_done]), int(imp_cum[ihi]))
                imp_done = ihi
        read_stats, read_behavioural, read_signals = stats, behavioural, signals
        if split.freeze_stats and row["split"] == "valid":  # validation rehearses the test: as of its start
            if at_valid is None:
                at_valid = (stats.copy(), {q: dict(per) for q, per in behavioural.items()}, signals.copy())
            read_stats, read_behavioural, read_signals = at_valid
        user = user_profiles[position]
        t2 = time.monotonic()
        timing["stats"] += t2 - t0
        search_id = int(row["search_id"])
        request_id, query, query_norm = str(row["request_id"]), str(row["query"]), str(row["query_norm"])
        shown: list[str] | None = [str(p) for p in row["shown"]] if row["shown"] is not None else None
        seg_user.append(user.n_events if user is not None else 0)
        ranked = engine.get(query, [])
        scores = dict(ranked)
        ranks = {pid: i + 1 for i, (pid, _) in enumerate(ranked)}
        shown_at: dict[str, int] = {}
        if shown is not None:
            for position, pid in enumerate(shown, start=1):
                shown_at.setdefault(pid, position)  # a product shown twice keeps its first rank
            cands = list(shown_at)
            source = ["shown"] * len(cands)
        else:
            cands = [pid for pid, _ in ranked]
            seen = set(cands)
            extra = [p for p, _ in sorted(read_behavioural.get(query_norm, {}).items(), key=lambda kv: -kv[1])]
            extra = [p for p in extra if p not in seen][:behavioural_k]
            source = ["engine"] * len(cands) + ["behavioural"] * len(extra)
            cands += extra
        if not cands:
            continue
        c = Candidates(
            product_ids=cands,
            engine_scores=np.array([scores.get(p, math.nan) for p in cands], dtype=np.float64),
            engine_ranks=np.array([ranks.get(p, math.nan) for p in cands], dtype=np.float64),
            score_range=_score_range(ranked),
        )
        ctx = RequestContext(
            query=query, user=user, now=now, stats=read_stats.view(query_norm), item_signals=read_signals
        )
        table = stored if stored is not None and row["split"] == "test" else in_time.at(now)
        feats = assemble(feature_set, table, ctx, c)
        engagement = read_signals.engagement(cands, now_ns)  # the behaviour popularity baseline's score
        names = feats.names
        blocks.append(feats.X)
        y_parts.append(np.array([labels.get((request_id, p), 0) for p in cands], dtype=np.int8))
        g_parts.append(np.full(len(cands), search_id, dtype=np.int64))
        for i, pid in enumerate(cands):
            cand_rows.append(
                {
                    "search_id": search_id,
                    "product_id": pid,
                    "engine_score": c.engine_scores[i],
                    "engine_rank": c.engine_ranks[i],
                    "shown_rank": shown_at[pid] if shown is not None else math.nan,
                    "source": source[i],
                    "item_engagement": engagement[i],
                }
            )
        timing["features"] += time.monotonic() - t2
    say(
        "point-in-time features: profiles {profiles:.1f} s, statistics {stats:.1f} s, features {features:.1f} s".format(
            **timing
        )
    )
    if not blocks:
        raise ConfigError("no training examples: no logged search had candidates (is the products index loaded?)")
    searches["user_events"] = np.asarray(seg_user, dtype=np.int64)
    searches["user_segment"] = Gate().segments(searches["user_events"].to_numpy())
    searches["query_type"] = searches["query_norm"].map(query_type)
    group_ids = np.concatenate(g_parts)
    kept = np.unique(group_ids)
    searches = searches[searches["search_id"].isin(kept)].reset_index(drop=True)
    searches["search_id"] = np.arange(len(searches))
    groups = np.searchsorted(kept, group_ids).astype(np.int32)  # kept is sorted: old id -> new contiguous id
    candidates = pd.DataFrame(cand_rows)
    candidates["search_id"] = np.searchsorted(kept, candidates["search_id"].to_numpy())
    return Dataset(
        X=np.vstack(blocks).astype(np.float32),
        names=names,
        labels=np.concatenate(y_parts),
        groups=groups,
        searches=searches,
        candidates=candidates,
        product_vectors=vectors,
        cuts=(valid_from, test_from),
        seconds=time.monotonic() - started,
    )


def _score_range(ranked: Sequence[tuple[str, float]]) -> tuple[float, float] | None:
    """(lowest, highest) engine score of the engine's top ``engine_k``: what serving's window gives ``bm25_norm``
    (see :class:`~fuserec_os.features.assemble.Candidates`), so a shown page of 10 is scaled as online."""
    values = [float(s) for _, s in ranked if math.isfinite(float(s))]
    return (min(values), max(values)) if values else None


def _add_behavioural(acc: dict[str, dict[str, int]], events: pd.DataFrame) -> None:
    """Count engaged products per normalised query (the behavioural candidates of later searches)."""
    ev = events[events["query_norm"].notna() & events["type"].isin(list(GRADES))]
    for q, pid in zip(ev["query_norm"].astype(str), ev["product_id"].astype(str), strict=True):
        per = acc.setdefault(q, {})
        per[pid] = per.get(pid, 0) + 1


def _with_test_events(
    events: pd.DataFrame,
    test_events: pd.DataFrame | None,
    gap: pd.Timedelta | None,
    say: Callable[[str], None],
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray | None, set[str] | None]:
    """(every event, the same with derived request ids, which came from the test file, the request ids of the
    test searches: the file's that no stored event has). Searches are derived in each part on its own, so no
    derived search mixes stored and held-out events."""
    parts = [events] if test_events is None else [events, test_events]
    labelled_parts = []
    derived = 0
    for part in parts:
        labelled, n = derive_request_ids(part, gap) if gap is not None else (part, 0)
        labelled_parts.append(labelled)
        derived += n
    if derived and gap is not None:
        say(
            f"{derived:,} searches derived from events without a request id (one user, one query, "
            f"events at most {gap / pd.Timedelta(minutes=1):g} min apart)"
        )
    if test_events is None:
        return events, labelled_parts[0], None, None
    in_file = np.r_[np.zeros(len(events), dtype=bool), np.ones(len(test_events), dtype=bool)]
    stored_rids, rids = (set(p["request_id"].dropna().astype(str)) for p in labelled_parts)
    return (  # a search that began in the stored log is not a test search, whatever the file adds to it
        pd.concat(parts, ignore_index=True),
        pd.concat(labelled_parts, ignore_index=True),
        in_file,
        rids - stored_rids,
    )


def _held_impressions(
    imp: pd.DataFrame, searches: pd.DataFrame, split: SplitSpec, cut: pd.Timestamp, test_requests: set[str] | None
) -> np.ndarray:
    """Which logged searches (impressions) the test period holds out: those of a test file's searches, else as
    :func:`~fuserec_os.learn.splits.held_out_events` holds out events."""
    in_file = imp["request_id"].astype(str).isin(test_requests).to_numpy() if test_requests is not None else None
    return held_out_events(imp["user_id"], imp["timestamp"], searches, split, cut, in_file)
