"""Closed-loop simulation: simulated shoppers search through the query proxy and react to what it shows them.

The open-loop simulator (:func:`~fuserec_os.simulate.shoppers.simulate`) shows every shopper the shop's fixed
ranking, which is right for building a history but cannot measure a ranker: nobody reacts to its lists. Here
the same shoppers (the same hidden tastes, the same click and purchase model) send each search through the
proxy with their user id, with an unchanged opensearch-py client, and their clicks, carts and purchases flow
back through ``POST /_fuserec/events``, where live updates fold them into profiles and statistics before the
shopper's next session. What the proxy serves (engine order or the model, by experiment variant) is the only
thing that differs between shoppers in different variants.

Time is simulated: sessions play in start order, and the proxy's request clock (``ProxyOptions.clock``) is set
to each search's simulated time, so features, impressions and attribution windows all live on one clock.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from fuserec_os.simulate.catalog import GeneratedProduct
from fuserec_os.simulate.queries import QueryIntent, QueryVocabulary
from fuserec_os.simulate.shoppers import UserLatent, _Catalog, _make_user, _plan_sessions, _Player

__all__ = ["ClosedLoopResult", "ProxyShop", "SimClock", "newcomers", "play_closed_loop", "returning"]

USER_HEADER = "X-Fuserec-User-Id"
SESSION_HEADER = "X-Fuserec-Session-Id"


class SimClock:
    """The simulated now, read by the proxy for every request (``ProxyOptions.clock``)."""

    def __init__(self, start: datetime) -> None:
        self.ms = int(start.timestamp() * 1000)

    def set_ms(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> Any:
        import pandas as pd

        return pd.Timestamp(self.ms, unit="ms", tz="UTC")


SearchFn = Callable[[Mapping[str, Any], Mapping[str, str]], Mapping[str, Any]]
"""(search body, headers) -> the decoded ``_search`` response (an opensearch-py ``client.search`` through the proxy)."""


@dataclass
class ProxyShop:
    """The shop's result page, asked of the proxy as a shop's own front end would: a relevance search of
    ``page_size`` with the shopper's id (and session id) in headers."""

    search: SearchFn
    body_for: Callable[[str, int], dict[str, Any]]
    clock: SimClock
    page_size: int = 24
    searches: int = 0
    empty: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)

    def prepare(self, queries: Sequence[str]) -> None:
        """Nothing to batch: every search is a live request."""

    def shown_list(self, user: object, intent: QueryIntent, rng: random.Random) -> list[str]:
        raise NotImplementedError("the closed loop calls show(), which also returns the proxy's request id")

    def show(
        self, user: UserLatent, intent: QueryIntent, rng: random.Random, *, session_id: str, request_id: str, at_ms: int
    ) -> tuple[list[str], str]:
        """The page's product ids and the request id the proxy logged the impression under."""
        self.clock.set_ms(at_ms)
        self.searches += 1
        headers = {USER_HEADER: user.user_id, SESSION_HEADER: session_id}
        try:
            resp = self.search(self.body_for(intent.text, self.page_size), headers)
        except Exception as exc:  # a failed search is a shopper who saw nothing: counted, never hidden
            self.failures[type(exc).__name__] += 1
            return [], request_id
        info = resp.get("fuserec") or {}
        self.variants[str(info.get("variant") or info.get("experiment_variant") or "-")] += 1
        if info.get("fallback"):
            self.fallbacks[str(info["fallback"])] += 1
        ids = [str(h.get("_id")) for h in resp.get("hits", {}).get("hits", [])]
        self.empty += not ids
        return ids, str(info.get("request_id") or request_id)


@dataclass
class ClosedLoopResult:
    """What the closed loop did: searches sent (``empty_searches`` found nothing: the proxy logs them with nothing
    shown, and the report counts them), events sent back (and refused), and how long it took."""

    sessions: int
    searches: int
    empty_searches: int
    events: int
    events_rejected: int
    search_failures: dict[str, int]
    variants: dict[str, int]
    fallbacks: dict[str, int]
    start: datetime
    end: datetime
    seconds: float
    event_types: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "searches": self.searches,
            "empty_searches": self.empty_searches,
            "events": self.events,
            "events_rejected": self.events_rejected,
            "search_failures": self.search_failures,
            "variants": self.variants,
            "fallbacks": self.fallbacks,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round(self.seconds, 3),
            "event_types": self.event_types,
        }


def returning(users: Sequence[UserLatent], start: datetime) -> list[UserLatent]:
    """The shoppers as they come back at ``start``: same tastes and activity, present from ``start`` on.

    A shopper's ``arrival`` is when their history began; planned as is, sessions would fall anywhere since then,
    before the history's end. Late arrivals of the history are no longer new either (they have a history now).
    """
    at = start.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = []
    for u in users:
        arrival = datetime.fromisoformat(u.arrival.replace("Z", "+00:00"))
        out.append(replace(u, arrival=at, is_new=False) if arrival < start else replace(u, is_new=False))
    return out


def newcomers(
    catalog: Sequence[GeneratedProduct],
    n: int,
    start: datetime,
    *,
    taken: set[str] | frozenset[str] = frozenset(),
    seed: int = 11,
) -> list[UserLatent]:
    """``n`` shoppers the history never saw, present from ``start`` on: tastes and activity drawn as the world's
    own shoppers' were (the same generator), ids ``U0000001``-style numbers not in ``taken``.

    A shop that runs an experiment gets new visitors too, and they meet the model's cold-start path; a closed
    loop asked for more shoppers than the world holds adds them rather than quietly running with fewer.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cat = _Catalog(catalog)
    rng = random.Random(f"fuserec-loop-newcomers-{seed}")
    out: list[UserLatent] = []
    number = len(taken)
    while len(out) < n:
        number += 1
        user = _make_user(rng, number, cat, start, 1.0, new_user_share=0.0)
        if user.user_id not in taken:
            out.append(user)
    return out


EventSink = Callable[[list[dict[str, Any]]], int]
"""Sends one session's events (``POST /_fuserec/events``); returns how many were rejected."""


def play_closed_loop(
    catalog: Sequence[GeneratedProduct],
    users: Sequence[UserLatent],
    shop: ProxyShop,
    send_events: EventSink,
    *,
    start: datetime,
    days: float,
    seed: int = 11,
    vocabulary: QueryVocabulary | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ClosedLoopResult:
    """Plan sessions for ``users`` over ``days`` from ``start`` and play them in start order through ``shop``.

    Each session's events are sent back as soon as it ends, so the shopper's next session is served with them
    (live updates). ``progress(done, total)`` is called after each session.
    """
    if not users:
        raise ValueError("the closed loop needs at least one shopper")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days}")
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    end = start + timedelta(days=days)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    cat = _Catalog(catalog)
    vocab = vocabulary or QueryVocabulary()
    users = returning(users, start)
    plans = sorted(
        _plan_sessions(random.Random(f"fuserec-loop-plan-{seed}"), users, cat, vocab, start_ms, end_ms),
        key=lambda p: (p.start_ms, p.user, p.number),
    )
    player = _Player(cat, shop, random.Random(f"fuserec-loop-play-{seed}"), end_ms)  # type: ignore[arg-type]
    player.session_tag = f"L{start:%Y%m%d%H%M}-"  # the history's sessions are S0001... of the same shoppers
    started = time.monotonic()
    events = rejected = 0
    types: Counter[str] = Counter()
    for done, plan in enumerate(plans, 1):
        before = len(player.rows)
        player.play(plan, users[plan.user])
        new = [row for _, _, row in player.rows[before:]]
        if new:
            events += len(new)
            types.update(str(r["type"]) for r in new)
            rejected += send_events(new)
        if progress is not None:
            progress(done, len(plans))
    return ClosedLoopResult(
        sessions=len(plans),
        searches=shop.searches,
        empty_searches=shop.empty,
        events=events,
        events_rejected=rejected,
        search_failures=dict(shop.failures),
        variants=dict(shop.variants),
        fallbacks=dict(shop.fallbacks),
        start=start,
        end=end,
        seconds=time.monotonic() - started,
        event_types=dict(types),
    )
