"""The closed-loop simulation with a fake shop (no proxy): who searches when, what goes back, and that shoppers
react to the lists they are shown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fuserec_os.simulate.catalog import GeneratedProduct, generate_catalog
from fuserec_os.simulate.closed_loop import ProxyShop, SimClock, newcomers, play_closed_loop, returning
from fuserec_os.simulate.shoppers import UserLatent, simulate, utility

from .test_shoppers import CategoryRetriever

START = datetime(2024, 5, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def catalog() -> list[GeneratedProduct]:
    return generate_catalog(400, seed=4)


@pytest.fixture(scope="module")
def shoppers(catalog: list[GeneratedProduct]) -> list[UserLatent]:
    history = simulate(catalog, CategoryRetriever(catalog), users=120, days=5, seed=2, start=START - timedelta(days=5))
    return history.users


class FakeProxy:
    """Answers a search as the proxy would: a page of ids, a request id; ranks by ``rank(user, text)``."""

    def __init__(self, catalog: Sequence[GeneratedProduct], by_taste: bool) -> None:
        self.catalog = list(catalog)
        self.by_taste = by_taste
        self.calls: list[tuple[str, int]] = []
        self.clock: SimClock | None = None
        self.ids: set[str] = set()
        self.users: dict[str, UserLatent] = {}

    def __call__(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Mapping[str, Any]:
        assert self.clock is not None
        user = headers["X-Fuserec-User-Id"]
        self.calls.append((user, self.clock.ms))
        rid = f"req-{len(self.calls)}"
        self.ids.add(rid)
        return {"hits": {"hits": [{"_id": pid} for pid in self.ranked(user, body["text"])[: body["size"]]]},
                "fuserec": {"request_id": rid, "variant": "t" if self.by_taste else "c"}}  # fmt: skip

    def ranked(self, user: str, text: str) -> list[str]:
        """Catalog order, or the shopper's true taste (no query intent): the best a ranker could do."""
        if not self.by_taste:
            return [str(p.doc["product_id"]) for p in self.catalog]
        u = self.users[user]
        return [str(p.doc["product_id"]) for p in sorted(self.catalog, key=lambda p: -utility(u, p))]


def _run(catalog: list[GeneratedProduct], shoppers: list[UserLatent], by_taste: bool) -> tuple[Any, FakeProxy, list]:
    fake = FakeProxy(catalog, by_taste)
    fake.users = {u.user_id: u for u in shoppers}
    clock = SimClock(START)
    fake.clock = clock
    shop = ProxyShop(fake, lambda text, size: {"text": text, "size": size}, clock, page_size=12)
    sent: list[list[dict[str, Any]]] = []

    def sink(rows: list[dict[str, Any]]) -> int:
        sent.append(rows)
        return 0

    result = play_closed_loop(catalog, shoppers, shop, sink, start=START, days=2, seed=5)
    return result, fake, sent


def test_sessions_play_in_time_order_inside_the_period_and_events_name_the_proxys_request(
    catalog: list[GeneratedProduct], shoppers: list[UserLatent]
) -> None:
    result, fake, sent = _run(catalog, shoppers, by_taste=False)
    times = [ms for _, ms in fake.calls]
    assert times == sorted(times)  # the proxy's clock only moves forward
    start_ms, end_ms = START.timestamp() * 1000, (START + timedelta(days=2)).timestamp() * 1000
    assert all(start_ms <= t < end_ms for t in times)  # returning shoppers: no session before the history's end
    assert result.searches == len(fake.calls) > 0 and result.sessions >= len(sent)
    events = [e for batch in sent for e in batch]
    assert result.events == len(events) and result.event_types.get("click", 0) > 0
    searched = [e for e in events if e["query"] is not None]
    assert searched and all(e["request_id"] in fake.ids for e in searched)  # attribution by the proxy's ids
    for batch in sent:  # one session per batch: what the shopper's next session is served with
        assert len({e["session_id"] for e in batch}) == 1


def test_shoppers_react_to_what_they_are_shown(catalog: list[GeneratedProduct], shoppers: list[UserLatent]) -> None:
    plain, _, _ = _run(catalog, shoppers, by_taste=False)
    tasteful, _, _ = _run(catalog, shoppers, by_taste=True)
    # the same planned sessions (same seed); lists ranked by each shopper's true taste get more clicks
    assert tasteful.sessions == plain.sessions
    assert tasteful.event_types.get("click", 0) > 1.3 * plain.event_types.get("click", 0)


def test_returning_shoppers_start_at_the_loop_and_are_not_new(shoppers: list[UserLatent]) -> None:
    back = returning(shoppers, START)
    assert all(u.arrival >= "2024-05-01T00:00:00.000Z" and not u.is_new for u in back)
    assert [u.user_id for u in back] == [u.user_id for u in shoppers]
    assert [u.brand_affinity for u in back] == [u.brand_affinity for u in shoppers]  # tastes unchanged


def test_newcomers_are_new_ids_with_tastes_like_the_worlds_and_play_from_the_start(
    catalog: list[GeneratedProduct], shoppers: list[UserLatent]
) -> None:
    taken = {u.user_id for u in shoppers}
    new = newcomers(catalog, 30, START, taken=taken, seed=3)
    assert len(new) == 30 and len({u.user_id for u in new}) == 30 and not taken & {u.user_id for u in new}
    assert all(u.arrival.startswith("2024-05-01T00:00") and not u.is_new for u in new)
    assert all(u.top_affinity and u.activity > 0 for u in new)  # drawn by the world's generator
    assert newcomers(catalog, 30, START, taken=taken, seed=3) == new  # same seed, same shoppers
    assert newcomers(catalog, 0, START, taken=taken) == []
    with pytest.raises(ValueError, match="n must be >= 0"):
        newcomers(catalog, -1, START)
    # they search and click like the world's shoppers (a few may plan no session in a day)
    result, fake, _ = _run(catalog, new, by_taste=True)
    assert result.searches > 0 and {u for u, _ in fake.calls} <= {u.user_id for u in new}


def test_a_failed_search_is_counted_and_the_shopper_sees_nothing(
    catalog: list[GeneratedProduct], shoppers: list[UserLatent]
) -> None:
    def broken(body: Mapping[str, Any], headers: Mapping[str, str]) -> Mapping[str, Any]:
        raise ConnectionError("proxy down")

    clock = SimClock(START)
    shop = ProxyShop(broken, lambda text, size: {"text": text}, clock)
    result = play_closed_loop(catalog, shoppers[:20], shop, lambda rows: 0, start=START, days=1, seed=1)
    assert result.search_failures == {"ConnectionError": result.searches} and result.searches > 0
    assert result.event_types.get("click", 0) == 0


def test_bad_arguments_are_refused(catalog: list[GeneratedProduct], shoppers: list[UserLatent]) -> None:
    shop = ProxyShop(lambda b, h: {}, lambda t, s: {}, SimClock(START))
    with pytest.raises(ValueError, match="at least one shopper"):
        play_closed_loop(catalog, [], shop, lambda rows: 0, start=START, days=1)
    with pytest.raises(ValueError, match="days must be > 0"):
        play_closed_loop(catalog, shoppers, shop, lambda rows: 0, start=START, days=0)


# ------------------------------------------------------------------------------ A/A and A/B on the simulator


class ExperimentProxy(FakeProxy):
    """The fake proxy under an experiment: assigns by the salted hash, serves each variant's ranking (taste or
    catalog order), and logs every search with its variant, as the proxy's search log does."""

    def __init__(self, catalog: Sequence[GeneratedProduct], experiment: Any, serves: Mapping[str, bool]) -> None:
        super().__init__(catalog, by_taste=True)
        self.experiment = experiment
        self.serves = serves
        self.log: list[dict[str, Any]] = []

    def __call__(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Mapping[str, Any]:
        from fuserec_os.experiments.assign import assign

        assert self.clock is not None
        user = headers["X-Fuserec-User-Id"]
        variant = assign(self.experiment, user).variant.name  # type: ignore[union-attr]
        self.by_taste = self.serves[variant]
        shown = self.ranked(user, body["text"])[: body["size"]]
        rid = f"req-{len(self.log)}"
        self.log.append({"request_id": rid, "user_id": user, "session_id": headers.get("X-Fuserec-Session-Id"),
                         "timestamp": self.clock().isoformat(), "query": body["text"], "product_ids": shown,
                         "experiment": self.experiment.name, "variant": variant})  # fmt: skip
        return {"hits": {"hits": [{"_id": pid} for pid in shown]}, "fuserec": {"request_id": rid, "variant": variant}}


def _experiment_run(
    catalog: list[GeneratedProduct], shoppers: list[UserLatent], *, seed: int, serves: Mapping[str, bool]
) -> Any:
    from fuserec_os.behaviour.events import events_frame, normalize_event
    from fuserec_os.behaviour.search_log import impressions_frame, normalize_impression
    from fuserec_os.experiments.config import ExperimentsConfig
    from fuserec_os.experiments.report import compute_report

    name = f"sim-{seed}"
    exp = ExperimentsConfig.from_dict(
        {
            name: {
                "variants": {
                    "control": {"share": 0.5, "control": True, "engine": True},
                    "treatment": {"share": 0.5, "engine": True},
                }
            }
        }
    ).get(name)
    proxy = ExperimentProxy(catalog, exp, serves)
    proxy.users = {u.user_id: u for u in shoppers}
    clock = SimClock(START)
    proxy.clock = clock
    shop = ProxyShop(proxy, lambda text, size: {"text": text, "size": size}, clock, page_size=12)
    sent: list[dict[str, Any]] = []
    play_closed_loop(catalog, shoppers, shop, lambda rows: sent.extend(rows) or 0, start=START, days=6, seed=seed)
    imps = impressions_frame(normalize_impression(r)[0] for r in proxy.log)
    evs = events_frame(normalize_event(e)[0] for e in sent)
    return compute_report(exp, imps, evs, replicates=400, seed=seed)


def test_an_aa_experiment_on_the_simulator_is_rarely_significant_and_a_real_difference_is_found(
    catalog: list[GeneratedProduct], shoppers: list[UserLatent]
) -> None:
    """Both variants serve the same ranking (A/A): over 8 seeds at 95%, at most 2 verdicts may call a difference
    (expected 0.4; P(>= 3) is about 0.006). The same setup with the treatment ranking by the shoppers' true
    tastes against catalog order (a large real difference) is found: the test has power, it is not vacuous."""
    same = {"control": True, "treatment": True}
    significant = 0
    for seed in range(8):
        report = _experiment_run(catalog, shoppers, seed=seed, serves=same)
        (ctr,) = [x for x in report.lifts if x.metric == "ctr"]
        assert ctr.ci is not None  # enough data for an interval
        significant += ctr.significant
    assert significant <= 2
    real = _experiment_run(catalog, shoppers, seed=0, serves={"control": False, "treatment": True})
    (ctr,) = [x for x in real.lifts if x.metric == "ctr"]
    assert ctr.significant and ctr.lift is not None and ctr.lift > 0
