"""Experiments served by the query proxy, through the unchanged opensearch-py client, on a real engine.

Same shop as ``test_proxy.py`` (two brands of running shoes, a shopper who buys Aeropace, a brand-affinity
model in the registry). Checked: the variant each shopper gets is the salted hash's (in two proxy instances
alike), the control is engine order and the treatment the model, a variant's blend weight is used, every search
under the experiment is logged with its experiment and variant (or teams), ``ab stop`` reaches a running
proxy through the cluster, and interleaving mixes both rankings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.search_log import read_impressions
from fuserec_os.experiments.assign import assign
from fuserec_os.experiments.config import ExperimentsConfig
from fuserec_os.experiments.state import stop_experiment
from fuserec_os.settings import Settings

from .proxy_helpers import RunningProxy
from .test_proxy import FAN, SHOES, USER, _app, _ids, world  # noqa: F401 (world: the shared shop fixture)

pytestmark = pytest.mark.integration

SHOPPERS = [FAN, *(f"shopper-{i}" for i in range(24))]


def _ab(name: str, *, treatment: dict[str, Any] | None = None, salt: str | None = None) -> ExperimentsConfig:
    raw: dict[str, Any] = {
        "mode": "ab",
        "variants": {
            "control": {"share": 0.5, "control": True, "engine": True},
            "treatment": {"share": 0.5, **(treatment or {"model_version": "active"})},
        },
    }
    if salt is not None:
        raw["salt"] = salt
    return ExperimentsConfig.from_dict({name: raw})


def _salt_putting_fan_in(variant: str, name: str) -> str:
    """A salt under which the fan lands in ``variant`` (found by trying, as the hash decides)."""
    for i in range(200):
        salt = f"{name}-{i}"
        exp = _ab(name, salt=salt).get(name)
        got = assign(exp, FAN)
        assert got is not None and got.variant is not None
        if got.variant.name == variant:
            return salt
    raise AssertionError("no salt in 200 puts the fan there: the hash is not uniform")


def _flush_impressions(running: RunningProxy) -> None:
    task = running.proxy.impressions._task
    assert task is not None
    asyncio.run_coroutine_threadsafe(running.proxy.impressions.flush(), task.get_loop()).result(timeout=30)


@pytest.fixture(scope="module")
def ab_config() -> ExperimentsConfig:
    return _ab("shoes-ab", salt=_salt_putting_fan_in("treatment", "shoes-ab"))


@pytest.fixture(scope="module")
def ab_proxy(world: Settings, ab_config: ExperimentsConfig) -> Iterator[RunningProxy]:  # noqa: F811
    with RunningProxy(_app(world, experiments=ab_config, experiments_seconds=3600.0)) as p:
        yield p


def test_each_shopper_gets_the_hashed_variant_in_two_proxy_instances(
    world: Settings,  # noqa: F811
    ab_config: ExperimentsConfig,
    ab_proxy: RunningProxy,
) -> None:
    exp = ab_config.get("shoes-ab")
    alias = world.alias("products")
    with RunningProxy(_app(world, experiments=ab_config, experiments_seconds=3600.0)) as second:
        for shopper in SHOPPERS:
            expected = assign(exp, shopper)
            assert expected is not None and expected.variant is not None
            for proxy in (ab_proxy, second):
                resp = proxy.client().search(index=alias, body={**SHOES, "size": 5}, headers={USER: shopper})
                info = resp["fuserec"]
                assert info["experiment"] == "shoes-ab" and info["variant"] == expected.variant.name, shopper
                if expected.variant.name == "control":
                    assert info["fallback"] == "variant_engine" and info["applied"] is False
    variants = {assign(exp, s).variant.name for s in SHOPPERS}  # type: ignore[union-attr]
    assert variants == {"control", "treatment"}  # both arms are exercised by this set of shoppers


def test_control_serves_engine_order_and_treatment_the_model(
    world: Settings,  # noqa: F811
    client: OpenSearch,
    ab_config: ExperimentsConfig,
    ab_proxy: RunningProxy,
) -> None:
    exp = ab_config.get("shoes-ab")
    alias = world.alias("products")
    body = {**SHOES, "size": 10}
    engine = _ids(client.search(index=alias, body=body))
    control_shopper = next(s for s in SHOPPERS if assign(exp, s).variant.name == "control")  # type: ignore[union-attr]
    proxied = ab_proxy.client()
    control = proxied.search(index=alias, body=body, headers={USER: control_shopper})
    assert _ids(control) == engine
    fan = proxied.search(index=alias, body={**body, "_source": ["brand"]}, headers={USER: FAN})
    assert fan["fuserec"]["variant"] == "treatment" and fan["fuserec"]["applied"] is True
    assert [h["_source"]["brand"] for h in fan["hits"]["hits"]] == ["Aeropace"] * 10
    # the experiment's own work is timed (the benchmark reads it)
    assert fan["fuserec"]["timings_ms"]["experiment"] >= 0


def test_every_search_under_the_experiment_is_logged_with_its_variant(
    world: Settings,  # noqa: F811
    client: OpenSearch,
    ab_config: ExperimentsConfig,
    ab_proxy: RunningProxy,
) -> None:
    exp = ab_config.get("shoes-ab")
    alias = world.alias("products")
    sent: dict[str, str] = {}
    for shopper in SHOPPERS[:8]:
        resp = ab_proxy.client().search(index=alias, body={**SHOES, "size": 4}, headers={USER: shopper})
        sent[resp["fuserec"]["request_id"]] = assign(exp, shopper).variant.name  # type: ignore[union-attr]
    _flush_impressions(ab_proxy)
    client.indices.refresh(index=f"{world.index_prefix}*")
    logged = read_impressions(client, world.alias("searches"))
    rows = logged[logged["request_id"].isin(list(sent))]
    assert len(rows) == len(sent)
    for row in rows.itertuples():
        assert row.experiment == "shoes-ab" and row.variant == sent[row.request_id]
        assert len(row.product_ids) == 4


def test_a_variant_blend_weight_overrides_the_gate(world: Settings, client: OpenSearch) -> None:  # noqa: F811
    name = "blend-zero"
    salt = _salt_putting_fan_in("treatment", name)
    config = _ab(name, treatment={"blend": 0.0}, salt=salt)
    alias = world.alias("products")
    body = {**SHOES, "size": 10}
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        fan = p.client().search(index=alias, body=body, headers={USER: FAN})
    assert fan["fuserec"]["variant"] == "treatment" and fan["fuserec"]["applied"] is True
    assert _ids(fan) == _ids(client.search(index=alias, body=body))  # blend 0: the model has no weight


def test_ab_stop_reaches_a_running_proxy_through_the_cluster(world: Settings, client: OpenSearch) -> None:  # noqa: F811
    config = _ab("to-stop")
    alias = world.alias("products")
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        before = p.client().search(index=alias, body={**SHOES, "size": 3}, headers={USER: FAN})
        assert before["fuserec"]["experiment"] == "to-stop"
        stop_experiment(client, world.index_prefix, "to-stop", by="cli", reason="test")
        p.proxy.experiments.check()  # what the poll does every experiments_seconds
        after = p.client().search(index=alias, body={**SHOES, "size": 3}, headers={USER: FAN})
    assert "experiment" not in after["fuserec"] and after["fuserec"]["applied"] is True


def test_interleaving_mixes_both_rankings_and_logs_each_products_team(
    world: Settings,  # noqa: F811
    client: OpenSearch,
) -> None:
    config = ExperimentsConfig.from_dict(
        {
            "mixed": {
                "mode": "interleave",
                "variants": {"engine": {"control": True, "engine": True}, "model": {"model_version": "active"}},
            }
        }
    )
    alias = world.alias("products")
    body = {**SHOES, "size": 10, "_source": ["brand"]}
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        resp = p.client().search(index=alias, body=body, headers={USER: FAN})
        _flush_impressions(p)
    info = resp["fuserec"]
    assert info["experiment"] == "mixed" and info["variant"] == "interleaved"
    brands = [h["_source"]["brand"] for h in resp["hits"]["hits"]]
    assert 0 < brands.count("Aeropace") < 10  # the model's picks (Aeropace) and the engine's, mixed
    client.indices.refresh(index=f"{world.index_prefix}*")
    logged = read_impressions(client, world.alias("searches"))
    row = logged[logged["request_id"] == info["request_id"]].iloc[0]
    assert row["experiment"] == "mixed" and len(row["teams"]) == len(row["product_ids"]) == 10
    assert set(row["teams"]) <= {"engine", "model", ""} and {"engine", "model"} <= set(row["teams"])


def test_an_anonymous_shopper_is_assigned_by_session_and_logged_under_it(
    world: Settings,  # noqa: F811
    client: OpenSearch,
    ab_config: ExperimentsConfig,
    ab_proxy: RunningProxy,
) -> None:
    exp = ab_config.get("shoes-ab")
    alias = world.alias("products")
    proxied = ab_proxy.client()
    sent = {}
    for i in range(6):
        session = f"anon-session-{i}"
        resp = proxied.search(index=alias, body={**SHOES, "size": 4}, headers={"X-Fuserec-Session-Id": session})
        expected = assign(exp, None, session)
        assert expected is not None and expected.variant is not None
        assert resp["fuserec"]["variant"] == expected.variant.name and resp["fuserec"]["applied"] is (
            expected.variant.name == "treatment"
        )
        sent[resp["fuserec"]["request_id"]] = session
    plain = proxied.search(index=alias, body={**SHOES, "size": 4})
    assert "fuserec" not in plain  # neither id: served as without the experiment
    _flush_impressions(ab_proxy)
    client.indices.refresh(index=f"{world.index_prefix}*")
    logged = read_impressions(client, world.alias("searches"))
    rows = logged[logged["request_id"].isin(list(sent))]
    assert len(rows) == len(sent)
    assert all(row.user_id == sent[row.request_id] == row.session_id for row in rows.itertuples())


def test_a_tripped_guardrail_checked_in_the_background_stops_the_experiment(
    world: Settings,  # noqa: F811
) -> None:
    raw = {"guarded": {"variants": {"control": {"share": 0.5, "control": True, "engine": True},
                                    "treatment": {"share": 0.5, "model_version": "active"}},
                       "guardrail": {"metric": "ctr"}}}  # fmt: skip
    config = ExperimentsConfig.from_dict(raw)
    alias = world.alias("products")
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        router = p.proxy.experiments
        assert router.guardrail_check is not None  # an experiment with a guardrail gets the background check
        calls: list[int] = []

        def tripped() -> None:  # what check_guardrails does when it trips: stop the experiment in the cluster
            calls.append(1)
            stop_experiment(p.proxy.sync, world.index_prefix, "guarded", by="guardrail", reason="ctr dropped")

        router.guardrail_check = tripped
        assert p.client().search(index=alias, body=SHOES, headers={USER: FAN})["fuserec"]["experiment"] == "guarded"
        router.check_guardrails()
        after = p.client().search(index=alias, body=SHOES, headers={USER: FAN})
    assert calls == [1] and "experiment" not in after["fuserec"]


NOTHING = {"query": {"bool": {"must": [{"match": {"title": "xylophone"}}]}}}
"""A personalizable search no product matches (and no query statistics name): an empty page."""


def _stored_search(client: OpenSearch, world: Settings, request_id: str) -> dict[str, Any]:  # noqa: F811
    """The search-log document of ``request_id`` as stored (not through the frame, which fills in defaults)."""
    found = client.search(index=world.alias("searches"), body={"query": {"ids": {"values": [request_id]}}})
    (hit,) = found["hits"]["hits"]
    source: dict[str, Any] = hit["_source"]
    return source


def test_a_search_that_finds_nothing_is_logged_and_counted_by_the_report(
    world: Settings,  # noqa: F811
    client: OpenSearch,
) -> None:
    """Issue 12: an empty page is a search. Logged with nothing shown under its variant (and without an
    experiment, for a known shopper), so the A/B report counts it in its variant's searches (conversion per
    search included) instead of leaving a variant that finds nothing more often looking better."""
    import httpx

    from fuserec_os.experiments.report import experiment_report

    name = "empty-ab"
    config = _ab(name)
    exp = config.get(name)
    alias = world.alias("products")
    shoppers = SHOPPERS[:12]
    variant_of = {s: assign(exp, s).variant.name for s in shoppers}  # type: ignore[union-attr]
    assert set(variant_of.values()) == {"control", "treatment"}
    found: dict[str, str] = {}  # shopper -> the request id of their search that found something
    empty: dict[str, str] = {}  # shopper -> the request id of their search that found nothing
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        proxied = p.client()
        for shopper in shoppers:
            hit = proxied.search(index=alias, body={**SHOES, "size": 4}, headers={USER: shopper})
            assert len(hit["hits"]["hits"]) == 4
            found[shopper] = hit["fuserec"]["request_id"]
            miss = proxied.search(index=alias, body={**NOTHING, "size": 4}, headers={USER: shopper})
            assert miss["hits"]["hits"] == [] and miss["fuserec"]["variant"] == variant_of[shopper]
            empty[shopper] = miss["fuserec"]["request_id"]
        # one purchase per variant, on a search that showed the product (request id): conversion = 1 / searches
        buyers = {v: next(s for s in shoppers if variant_of[s] == v) for v in ("control", "treatment")}
        now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1)
        events = [
            {"user_id": s, "type": "purchase", "product_id": "A01", "price": 10.0, "request_id": found[s],
             "timestamp": now.isoformat(), "event_id": f"empty-ab-{s}"}
            for s in buyers.values()
        ]  # fmt: skip
        posted = httpx.post(f"{p.url}/_fuserec/events", json={"events": events}, timeout=30)
        assert posted.status_code == 200 and posted.json()["accepted"] == 2, posted.text
        _flush_impressions(p)
        assert 'fuserec_impressions_total{result="rejected"}' not in httpx.get(f"{p.url}/_fuserec/metrics").text
    client.indices.refresh(index=f"{world.index_prefix}*")

    for shopper, request_id in empty.items():
        doc = _stored_search(client, world, request_id)
        assert doc["product_ids"] == [] and doc["n_shown"] == 0, doc
        assert (doc["experiment"], doc["variant"], doc["user_id"]) == (name, variant_of[shopper], shopper)
        assert doc["query"] == "xylophone"

    report = experiment_report(client, world.index_prefix, exp, replicates=200)
    for v in report.variants:
        users = sum(1 for s in shoppers if variant_of[s] == v.name)
        assert (v.users, v.searches, v.purchased) == (users, 2 * users, 1), v  # the empty searches count
        assert v.metric("conversion") == pytest.approx(1 / (2 * users))
        assert v.metric("ctr") == pytest.approx(1 / (2 * users))  # a purchase counts as engagement

    # without an experiment: a known shopper's empty search is logged too (the search log is every search)
    with RunningProxy(_app(world)) as p:
        miss = p.client().search(index=alias, body={**NOTHING, "size": 4}, headers={USER: FAN})
        assert miss["hits"]["hits"] == [] and "experiment" not in miss["fuserec"]
        _flush_impressions(p)
    client.indices.refresh(index=f"{world.index_prefix}*")
    doc = _stored_search(client, world, miss["fuserec"]["request_id"])
    assert doc["product_ids"] == [] and doc["n_shown"] == 0 and doc["user_id"] == FAN and "experiment" not in doc


def test_an_interleaved_search_that_finds_nothing_is_logged_with_no_teams(
    world: Settings,  # noqa: F811
    client: OpenSearch,
) -> None:
    from fuserec_os.experiments.report import experiment_report

    config = ExperimentsConfig.from_dict(
        {"il-empty": {"mode": "interleave", "variants": {"engine": {"control": True, "engine": True},
                                                         "model": {"model_version": "active"}}}}
    )  # fmt: skip
    alias = world.alias("products")
    with RunningProxy(_app(world, experiments=config, experiments_seconds=3600.0)) as p:
        hit = p.client().search(index=alias, body={**SHOES, "size": 4}, headers={USER: FAN})
        miss = p.client().search(index=alias, body={**NOTHING, "size": 4}, headers={USER: FAN})
        _flush_impressions(p)
    assert miss["hits"]["hits"] == [] and miss["fuserec"]["variant"] == "interleaved"
    client.indices.refresh(index=f"{world.index_prefix}*")
    doc = _stored_search(client, world, miss["fuserec"]["request_id"])
    assert (doc["product_ids"], doc["teams"], doc["n_shown"], doc["experiment"]) == ([], [], 0, "il-empty")
    assert len(_stored_search(client, world, hit["fuserec"]["request_id"])["teams"]) == 4
    report = experiment_report(client, world.index_prefix, config.get("il-empty"), replicates=100)
    assert report.interleave is not None and report.interleave.searches == 2  # the empty one is a search
    assert not any("without teams" in n for n in report.notes)
