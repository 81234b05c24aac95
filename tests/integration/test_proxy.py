"""The query proxy (``fuserec serve``) in front of a real engine, used through the unchanged opensearch-py client.

One catalog of 40 running shoes from two brands (equal text, so engine order is close to arbitrary), a shopper
who buys one brand, query statistics for a query no product text matches, and a tiny brand-affinity model in the
registry. The proxy runs in-process (uvicorn in a thread on a free port). Scores are never asserted exactly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.profiles.compute import build_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.jobs import STATS_ALIAS
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.profiles.stats_store import write_stats
from fuserec_os.profiles.store import write_profiles
from fuserec_os.rerank.stage import RerankSettings
from fuserec_os.serve.app import ProxyOptions, create_app
from fuserec_os.settings import Settings

from .proxy_helpers import RunningProxy, brand_artifact, register

pytestmark = pytest.mark.integration

USER = "X-Fuserec-User-Id"
FAN = "aero-fan"
N_PER_BRAND = 20
T0 = pd.Timestamp.now(tz="UTC").floor("s")


def _products() -> list[dict[str, Any]]:
    rows = []
    for i in range(N_PER_BRAND):
        for brand, code in (("Kinetix", "K"), ("Aeropace", "A")):
            rows.append(
                {
                    "product_id": f"{code}{i:02d}",
                    "title": f"{brand} running shoes model {i}",
                    "brand": brand,
                    "category": "shoes > running",
                    "price": 50.0 + i * 3 + (1 if code == "A" else 0),
                    "in_stock": True,
                }
            )
    rows.append({"product_id": "X-SANDAL", "title": "Trail sandal", "brand": "Kinetix", "price": 30.0,
                 "category": "shoes > sandals", "in_stock": True})  # fmt: skip
    rows.append({"product_id": "X-SANDAL-OOS", "title": "Trail sandal deluxe", "brand": "Kinetix", "price": 40.0,
                 "category": "shoes > sandals", "in_stock": False})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def world(
    client: OpenSearch, base_settings: Settings, spec: MappingSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    prefix = f"p{uuid.uuid4().hex[:10]}-"
    settings = replace(base_settings, index_prefix=prefix)
    path = tmp_path_factory.mktemp("proxy") / "catalog.jsonl"
    products = _products()
    path.write_text("".join(json.dumps(p) + "\n" for p in products))
    rep = ingest_products(client, path, spec, settings.alias("products"), progress=False)
    assert rep.ok
    client.indices.refresh(index=settings.alias("products"))
    day = pd.Timedelta(days=1)
    rows = [(FAN, "purchase", f"A{i:02d}", T0 - (i + 1) * day, None) for i in range(6)]
    rows += [("other", "click", "K01", T0 - day, None)]
    rows += [("z1", "click", "X-SANDAL", T0 - day, "zoomies"), ("z2", "click", "X-SANDAL-OOS", T0 - day, "zoomies")]
    rows += [("z3", "purchase", "X-SANDAL-OOS", T0 - day, "zoomies")]
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "product_id": [r[2] for r in rows],
            "timestamp": pd.Series([r[3] for r in rows], dtype="datetime64[ns, UTC]"),
            "query": [r[4] for r in rows],
            "request_id": [f"r{i}" for i in range(len(rows))],
        }
    )
    built = build_profiles(events, pd.DataFrame(products), ProfilesConfig(latent_dims=2), as_of=T0)
    write_profiles(client, settings.alias("profiles"), built, refresh=True)
    write_stats(client, settings.alias(STATS_ALIAS), QueryStats().add_events(events), refresh=True)
    register(client, prefix, brand_artifact().to_bytes())
    yield settings
    for name in client.indices.get(index=f"{prefix}*"):
        client.indices.delete(index=name)


def _app(settings: Settings, **kw: Any) -> Any:
    opts = {"urls": settings.opensearch_urls, "reload_seconds": 3600.0, "impression_seconds": 0.2, **kw}
    # a generous budget unless a test is about the budget: on a loaded 2-core CI machine 25 ms is not a promise
    opts.setdefault("rerank", RerankSettings(budget_ms=5000))
    return create_app(settings, ProxyOptions(**opts))


@pytest.fixture(scope="module")
def running(world: Settings) -> Iterator[RunningProxy]:
    with RunningProxy(_app(world, rerank=RerankSettings(window=100, budget_ms=5000))) as p:
        yield p


@pytest.fixture(scope="module")
def proxied(running: RunningProxy) -> Iterator[OpenSearch]:
    c = running.client()
    yield c
    c.close()


SHOES = {"query": {"bool": {"must": [{"match": {"title": "running shoes"}}]}}}


def _ids(resp: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_without_the_header_the_proxy_answers_like_the_engine(
    world: Settings, client: OpenSearch, proxied: OpenSearch
) -> None:
    alias = world.alias("products")
    body = {**SHOES, "size": 15, "aggs": {"brands": {"terms": {"field": "brand"}}}, "track_total_hits": True}
    direct = client.search(index=alias, body=body)
    via = proxied.search(index=alias, body=body)
    assert _ids(via) == _ids(direct)
    assert via["hits"]["total"] == direct["hits"]["total"]
    assert via["aggregations"] == direct["aggregations"]
    assert "fuserec" not in via


def test_a_brand_fan_gets_the_brand_first_and_the_fuserec_section(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    body = {**SHOES, "size": 10, "aggs": {"brands": {"terms": {"field": "brand"}}},
            "highlight": {"fields": {"title": {}}}, "_source": ["title", "brand"]}  # fmt: skip
    plain = proxied.search(index=alias, body=body)
    fan = proxied.search(index=alias, body=body, headers={USER: FAN})
    info = fan["fuserec"]
    print("personalized timings (ms):", info["timings_ms"])
    assert info["applied"] is True and info["fallback"] is None and info["model_version"] == "v1"
    assert {"engine", "reads", "personal_io", "features", "score", "stage", "total"} <= set(info["timings_ms"])
    assert info["request_id"]
    brands = [h["_source"]["brand"] for h in fan["hits"]["hits"]]
    assert brands == ["Aeropace"] * 10, brands
    assert [h["_source"]["brand"] for h in plain["hits"]["hits"]] != brands or _ids(plain) != _ids(fan)
    assert fan["aggregations"] == plain["aggregations"]  # aggregations survive
    assert all("highlight" in h and "title" in h["highlight"] for h in fan["hits"]["hits"])
    assert all(set(h["_source"]) <= {"title", "brand"} for h in fan["hits"]["hits"])  # _source filtering kept
    scores = [h["_score"] for h in fan["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)  # blended scores, in order
    assert fan["hits"]["total"] == plain["hits"]["total"]
    assert "hits" not in info  # explanations are opt-in


def _recorded(running: RunningProxy, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The search bodies the proxy sends the engine, in order (recorded in our own client; the engine is real)."""
    engine = running.proxy.engine
    sent: list[Any] = []
    real = engine.request

    async def request(method: str, path: str, **kw: Any) -> Any:
        body = json.loads(kw["content"]) if kw.get("content") and path.endswith("/_search") else None
        if body is not None:
            sent.append(body)
        return await real(method, path, **kw)

    monkeypatch.setattr(engine, "request", request)
    return sent


# words that only some titles have: each hit's highlight differs by its brand and its model number
HIGHLIGHTED = {"query": {"bool": {"must": [{"match": {"title": "Aeropace Kinetix shoes 3 7 12"}}]}}, "size": 10,
               "highlight": {"fields": {"title": {}}, "pre_tags": ["["], "post_tags": ["]"]}}  # fmt: skip


def test_a_personalized_page_is_highlighted_as_the_engine_highlights_it(
    world: Settings, client: OpenSearch, proxied: OpenSearch
) -> None:
    alias = world.alias("products")
    direct = client.search(index=alias, body={**HIGHLIGHTED, "size": 100})
    want = {h["_id"]: h.get("highlight") for h in direct["hits"]["hits"]}
    assert len({json.dumps(v) for v in want.values()}) > 4  # the highlights tell the hits apart
    fan = proxied.search(index=alias, body=HIGHLIGHTED, headers={USER: FAN})
    assert fan["fuserec"]["applied"] is True
    hits = fan["hits"]["hits"]
    assert [h["_source"]["brand"] for h in hits] == ["Aeropace"] * 10  # reranked: not the engine's page
    assert _ids(fan) != [h["_id"] for h in direct["hits"]["hits"][:10]]
    for h in hits:
        assert h.get("highlight") == want[h["_id"]], h["_id"]


FILTER_PATHS = [
    "hits.hits._id", "hits.hits._source.brand,hits.total", "aggregations.**", "**.value", "hits.hits._sour*",
    "hits.hits._source.*itle", "-hits.hits._source", "-_shards,-hits.hits._source.title", "nothing.here",
    "hits.hits._id,-hits.hits._id", "aggregations.brands.buckets.key", "-**.doc_count",
]  # fmt: skip


@pytest.mark.parametrize("path", FILTER_PATHS)
def test_the_proxys_filter_path_filters_as_the_engine_does(world: Settings, client: OpenSearch, path: str) -> None:
    from fuserec_os.serve.filter_path import apply_filter_path

    alias = world.alias("products")
    body = {**SHOES, "size": 3, "aggs": {"brands": {"terms": {"field": "brand"}}}, "sort": ["_doc"]}
    whole = client.search(index=alias, body=body)
    filtered = client.search(index=alias, body=body, params={"filter_path": path})
    ours = apply_filter_path(whole, path)
    for answer in (ours, filtered):
        if isinstance(answer, dict):
            answer.pop("took", None)
    assert ours == filtered


def test_filter_path_applies_to_the_personalized_answer(
    world: Settings, client: OpenSearch, proxied: OpenSearch
) -> None:
    alias = world.alias("products")
    body = {**SHOES, "size": 10, "aggs": {"brands": {"terms": {"field": "brand"}}}}
    full = proxied.search(index=alias, body=body, headers={USER: FAN})
    assert full["fuserec"]["applied"] is True
    for path in ("hits.hits._id,hits.hits._source.brand", "hits.hits._source.brand,hits.total,aggregations.**"):
        want = client.search(index=alias, body=body, params={"filter_path": path})  # what the engine keeps
        got = proxied.search(index=alias, body=body, params={"filter_path": path}, headers={USER: FAN})
        assert set(got) == set(want), path  # the same top-level keys: no fuserec section, no took
        assert [h.keys() for h in got["hits"]["hits"]] == [h.keys() for h in want["hits"]["hits"]], path
        assert [h["_source"]["brand"] for h in got["hits"]["hits"]] == ["Aeropace"] * 10, path  # personalized
    ids = proxied.search(index=alias, body=body, params={"filter_path": "hits.hits._id"}, headers={USER: FAN})
    assert _ids(ids) == _ids(full)  # the same page as without filter_path
    excluded = proxied.search(index=alias, body=body, params={"filter_path": "-hits.hits._source"}, headers={USER: FAN})
    assert _ids(excluded) == _ids(full) and not any("_source" in h for h in excluded["hits"]["hits"])
    assert excluded["fuserec"]["applied"] is True
    searches = [{"index": alias}, body, {"index": alias}, {**body, "sort": [{"price": "asc"}]}]
    both = proxied.msearch(body=searches, params={"filter_path": "responses.hits.hits._id"}, headers={USER: FAN})
    by_price = client.search(index=alias, body={**body, "sort": [{"price": "asc"}]})  # passed through
    assert both == {
        "responses": [{"hits": {"hits": [{"_id": i} for i in ids]}} for ids in (_ids(full), _ids(by_price))]
    }


@pytest.mark.parametrize(("params", "headers"), [({"format": "yaml"}, {}), ({}, {"Accept": "application/yaml"})])
def test_a_yaml_search_passes_through_as_the_engine_answers_it(
    world: Settings, running: RunningProxy, params: dict[str, str], headers: dict[str, str]
) -> None:
    import httpx

    path = f"/{world.alias('products')}/_search"
    body = {**SHOES, "size": 3}
    answer = httpx.post(running.url + path, params=params, json=body, headers={USER: FAN, **headers}, timeout=30)
    direct = httpx.post(world.opensearch_urls[0] + path, params=params, json=body, headers=headers, timeout=30)
    assert answer.status_code == direct.status_code == 200, answer.text  # was a 500: YAML read as JSON
    assert answer.headers["X-Fuserec-Personalized"].startswith("false; ")
    assert answer.headers["content-type"] == direct.headers["content-type"]  # YAML from OpenSearch; osmem: JSON
    if answer.text.startswith("{"):
        assert {**answer.json(), "took": 0} == {**direct.json(), "took": 0}
    else:  # the same YAML but for the time taken
        lines = [[ln for ln in r.text.splitlines() if not ln.startswith("took:")] for r in (answer, direct)]
        assert lines[0] == lines[1] and "hits:" in answer.text


def test_pretty_indents_the_personalized_answer(world: Settings, running: RunningProxy) -> None:
    import httpx

    url = f"{running.url}/{world.alias('products')}"
    body = {**SHOES, "size": 3}
    compact = httpx.post(f"{url}/_search", json=body, headers={USER: FAN}, timeout=30)
    pretty = httpx.post(f"{url}/_search?pretty", json=body, headers={USER: FAN}, timeout=30)
    assert compact.text.startswith('{"') and pretty.text.startswith('{\n  "')  # was compact either way
    assert _ids(pretty.json()) == _ids(compact.json()) and pretty.json()["fuserec"]["applied"] is True
    lines = [json.dumps({"index": world.alias("products")}), json.dumps(body), ""]
    both = httpx.post(f"{url}/_msearch?pretty=true", content="\n".join(lines), headers={USER: FAN}, timeout=30)
    assert both.text.startswith('{\n  "') and _ids(both.json()["responses"][0]) == _ids(compact.json())


def test_explain_header_adds_per_hit_explanations(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    resp = proxied.search(index=alias, body={**SHOES, "size": 5}, headers={USER: FAN, "X-Fuserec-Explain": "true"})
    hits = resp["fuserec"]["hits"]
    assert [h["_id"] for h in hits] == _ids(resp)  # the page, in page order
    assert all(h["new_rank"] == i for i, h in enumerate(hits, start=1))
    words = [e["feature"] for h in hits for e in h["explanation"]]
    assert "brand affinity: Aeropace" in words, words
    assert all(isinstance(e["contribution"], float) for h in hits for e in h["explanation"])


def test_a_price_sort_and_size_0_pass_through_untouched(
    world: Settings, client: OpenSearch, proxied: OpenSearch
) -> None:
    alias = world.alias("products")
    body = {**SHOES, "sort": [{"price": "asc"}], "size": 12}
    via = proxied.search(index=alias, body=body, headers={USER: FAN})
    assert _ids(via) == _ids(client.search(index=alias, body=body)) and "fuserec" not in via
    zero = proxied.search(index=alias, body={**SHOES, "size": 0, "aggs": {"b": {"terms": {"field": "brand"}}}},
                          headers={USER: FAN})  # fmt: skip
    assert zero["hits"]["hits"] == [] and "fuserec" not in zero and zero["aggregations"]["b"]["buckets"]


def test_msearch_personalizes_each_item(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    body = [{"index": alias}, {**SHOES, "size": 5}, {"index": alias}, {**SHOES, "size": 5, "sort": [{"price": "asc"}]},
            {}, {"query": {"match": {"title": "shoes"}}, "size": 5}]  # fmt: skip
    resp = proxied.msearch(body=body, headers={USER: FAN})
    first, second, third = resp["responses"]
    assert first["fuserec"]["applied"] and [h["_source"]["brand"] for h in first["hits"]["hits"]] == ["Aeropace"] * 5
    assert "fuserec" not in second  # sorted by price: untouched
    assert third.get("status") in (200, None) or "error" in third  # no index in the header, none in the URL
    per_index = proxied.msearch(index=alias, body=[{}, {**SHOES, "size": 5}, {}, {**SHOES, "size": 3}],
                                headers={USER: FAN})  # fmt: skip
    assert all(r["fuserec"]["applied"] for r in per_index["responses"])
    assert len(per_index["responses"][1]["hits"]["hits"]) == 3


def test_writes_and_admin_are_refused_with_403(world: Settings, proxied: OpenSearch, client: OpenSearch) -> None:
    with pytest.raises(osx.AuthorizationException) as err:
        proxied.indices.create(index=f"{world.index_prefix}evil")
    assert err.value.info["error"]["type"] == "security_exception"
    with pytest.raises(osx.AuthorizationException):
        proxied.bulk(body=[{"index": {"_index": world.alias("products"), "_id": "E1"}}, {"title": "evil"}])
    with pytest.raises(osx.AuthorizationException):
        proxied.indices.delete(index=world.alias("products"))
    with pytest.raises(osx.AuthorizationException):
        proxied.index(index=world.alias("products"), id="E2", body={"title": "evil"})
    assert not client.indices.exists(index=f"{world.index_prefix}evil")
    # reads pass
    assert proxied.info()["version"]["number"]
    assert proxied.count(index=world.alias("products"))["count"] == 2 * N_PER_BRAND + 2
    assert proxied.get(index=world.alias("products"), id="K01")["_source"]["brand"] == "Kinetix"
    assert proxied.cluster.health()["status"] in ("green", "yellow")
    assert proxied.indices.exists(index=world.alias("products"))


def test_paging_across_the_window_boundary_has_no_duplicates_or_gaps(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    full = proxied.search(index=alias, body={**SHOES, "size": 100})
    expected = set(_ids(full))
    seen: list[str] = []
    for page in range(7):
        resp = proxied.search(index=alias, body={**SHOES, "from": page * 7, "size": 7},
                              headers={USER: FAN, "X-Fuserec-Window": "10"})  # fmt: skip
        assert resp["fuserec"]["window"] == 10
        seen += _ids(resp)
    assert len(seen) == len(set(seen)), "a product shown twice"
    assert set(seen) == expected, "a product never shown"
    window = [pid[0] for pid in seen[:10]]  # the reranked window: the fan's brand first
    assert window == sorted(window), window


def test_behavioural_candidates_respect_the_filters(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    q = {"bool": {"must": [{"match": {"title": "zoomies"}}], "filter": [{"term": {"in_stock": True}}]}}
    resp = proxied.search(index=alias, body={"query": q}, headers={USER: FAN})
    assert _ids(resp) == ["X-SANDAL"]
    assert resp["fuserec"]["behavioural_candidates"] == 1
    unfiltered = proxied.search(index=alias, body={"query": {"bool": {"must": [{"match": {"title": "zoomies"}}]}}},
                                headers={USER: FAN})  # fmt: skip
    assert set(_ids(unfiltered)) == {"X-SANDAL", "X-SANDAL-OOS"}
    lone = proxied.search(index=alias, body={"query": {"match": {"title": "zoomies"}}}, headers={USER: FAN})
    assert set(_ids(lone)) == {"X-SANDAL", "X-SANDAL-OOS"}  # a lone match clause has no filters to respect
    fs = {"function_score": {"query": {"match": {"title": "zoomies"}}}}
    opaque = proxied.search(index=alias, body={"query": fs}, headers={USER: FAN})
    assert _ids(opaque) == [] and any("behavioural candidates skipped" in n for n in opaque["fuserec"]["notes"])


def test_a_behavioural_guess_is_used_only_when_the_fresh_statistics_agree(
    world: Settings, proxied: OpenSearch, running: RunningProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    alias = world.alias("products")
    body = {"query": {"bool": {"must": [{"match": {"title": "zippies"}}]}}}  # no product text has the word

    def click(pid: str) -> None:  # recorded through the proxy: the query statistics are updated at once
        event = {"user_id": "z9", "type": "click", "product_id": pid, "timestamp": T0.isoformat(), "query": "zippies"}
        answer = httpx.post(f"{running.url}/_fuserec/events", json={"events": [event]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text

    def behavioural_ids(sent: list[Any]) -> list[list[str]]:
        return [
            b["query"]["bool"]["filter"][-1]["ids"]["values"]
            for b in sent
            if "highlight" not in b and "ids" in json.dumps(b.get("query"))
        ]

    click("K03")
    sent = _recorded(running, monkeypatch)
    real = running.proxy.engine.request
    order: list[str] = []  # when the statistics read ended and the behavioural query started, per search

    async def request(method: str, path: str, **kw: Any) -> Any:
        content = kw.get("content") or b""
        if path.endswith("/_search") and b'"ids"' in content and b"highlight" not in content:
            order.append("behavioural query sent")
        out = await real(method, path, **kw)
        if path == "/_mget":
            order.append("statistics read")
        return out

    monkeypatch.setattr(running.proxy.engine, "request", request)
    first = proxied.search(index=alias, body=body, headers={USER: FAN})
    assert order == ["statistics read", "behavioural query sent"]  # nothing to guess from yet
    order.clear()
    second = proxied.search(index=alias, body=body, headers={USER: FAN})  # the first one's ids are the guess
    assert order == ["behavioural query sent", "statistics read"]  # started beside the read, not after it
    assert _ids(first) == _ids(second) == ["K03"]
    assert behavioural_ids(sent) == [["K03"], ["K03"]]  # the guess was right: no second query for it
    click("A05")
    sent.clear()
    third = proxied.search(index=alias, body=body, headers={USER: FAN})
    assert set(_ids(third)) == {"K03", "A05"}  # the fresh statistics, not the guess
    guessed, fresh = behavioural_ids(sent)
    assert guessed == ["K03"] and set(fresh) == {"K03", "A05"}
    assert third["fuserec"]["behavioural_candidates"] == 2


def test_collapse_gets_no_behavioural_candidates_and_stays_one_per_group(world: Settings, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    collapsed = {"query": {"bool": {"must": [{"match": {"title": "zoomies"}}]}}, "collapse": {"field": "brand"}}
    resp = proxied.search(index=alias, body=collapsed, headers={USER: FAN})
    assert _ids(resp) == []  # both engaged products are Kinetix: adding them would show one brand twice
    assert "behavioural candidates skipped: collapse" in resp["fuserec"]["notes"]
    shoes = proxied.search(index=alias, body={**SHOES, "collapse": {"field": "brand"}}, headers={USER: FAN})
    assert shoes["fuserec"]["applied"] is True
    assert sorted(h["fields"]["brand"][0] for h in shoes["hits"]["hits"]) == ["Aeropace", "Kinetix"]


def test_stored_fields_none_passes_through(world: Settings, client: OpenSearch, proxied: OpenSearch) -> None:
    alias = world.alias("products")
    body = {**SHOES, "size": 5, "stored_fields": "_none_"}
    resp = proxied.search(index=alias, body=body, headers={USER: FAN})
    assert len(resp["hits"]["hits"]) == 5 == len(client.search(index=alias, body=body)["hits"]["hits"])
    assert "fuserec" not in resp  # hits without ids: passed through (it was one hit)


def test_unknown_user_and_zero_budget_fall_back_to_engine_order(
    world: Settings, client: OpenSearch, proxied: OpenSearch
) -> None:
    alias = world.alias("products")
    body = {**SHOES, "size": 10}
    engine = _ids(client.search(index=alias, body=body))
    unknown = proxied.search(index=alias, body=body, headers={USER: "nobody-" + uuid.uuid4().hex})
    assert unknown["fuserec"]["fallback"] == "no_profile" and _ids(unknown) == engine
    with RunningProxy(_app(world, rerank=RerankSettings(budget_ms=0))) as p:
        c = p.client()
        resp = c.search(index=alias, body=body, headers={USER: FAN})
        c.close()
    assert resp["fuserec"]["fallback"] == "budget" and resp["fuserec"]["applied"] is False
    assert _ids(resp) == engine


def test_a_model_that_raises_gives_engine_order(world: Settings, client: OpenSearch, running: RunningProxy) -> None:
    alias = world.alias("products")
    holder = running.proxy.holder
    good = holder.model
    broken = replace(good, artifact=replace(good.artifact, scorer=_Raising(good.artifact.scorer)))
    holder.swap(broken)
    try:
        c = running.client()
        resp = c.search(index=alias, body={**SHOES, "size": 10}, headers={USER: FAN})
        c.close()
    finally:
        holder.swap(good)
    assert resp["fuserec"]["fallback"] == "model_error"
    assert _ids(resp) == _ids(client.search(index=alias, body={**SHOES, "size": 10}))


class _Raising:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, X: Any) -> Any:
        raise RuntimeError("boom")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    "user",
    ["Zoë-ünïcødé-用户", "x" * 10_000, "a\"b'c", '{"match_all": {}}', "title:* OR 1=1", "*", "../../_all", "a\\b"],
)
def test_odd_user_ids_give_a_clear_answer_never_a_500(world: Settings, running: RunningProxy, user: str) -> None:
    import httpx

    r = httpx.post(f"{running.url}/{world.alias('products')}/_search", json={**SHOES, "size": 3},
                   headers={USER: user.encode("utf-8")}, timeout=30)  # fmt: skip
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json()["fuserec"]["fallback"] == "no_profile"
    else:
        assert r.json()["error"]["type"] and r.json()["status"] == 400


def test_bad_input_gets_a_clear_4xx(world: Settings, running: RunningProxy) -> None:
    import httpx

    url = f"{running.url}/{world.alias('products')}/_search"
    r = httpx.post(url, content=b'{"query": {', headers={USER: FAN, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["reason"]
    r = httpx.post(url, content=b'{"query": {', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = httpx.post(url, content=b"x" * (world.proxy_max_body + 10), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "FUSEREC_PROXY_MAX_BODY" in r.json()["error"]["reason"]
    r = httpx.post(url, json=SHOES, headers={USER: FAN, "X-Fuserec-Window": "100000"})
    assert r.status_code == 400 and "max_window" in r.json()["error"]["reason"]
    r = httpx.post(url, json={**SHOES, "size": -3}, headers={USER: FAN})
    assert r.status_code == 400


def test_events_impressions_metrics_and_health(world: Settings, client: OpenSearch, running: RunningProxy) -> None:
    import asyncio

    import httpx

    from fuserec_os.behaviour.event_store import read_events
    from fuserec_os.behaviour.search_log import read_impressions

    r = httpx.post(f"{running.url}/{world.alias('products')}/_search", json={**SHOES, "size": 4},
                   headers={USER: FAN}, timeout=30)  # fmt: skip
    request_id = r.json()["fuserec"]["request_id"]
    assert r.headers["X-Fuserec-Request-Id"] == request_id
    batch = [
        {"user_id": FAN, "type": "click", "product_id": r.json()["hits"]["hits"][0]["_id"],
         "timestamp": T0.isoformat(), "request_id": request_id, "query": "running shoes"},
        {"user_id": FAN, "type": "teleport", "product_id": "A01", "timestamp": "yesterday"},
    ]  # fmt: skip
    ev = httpx.post(f"{running.url}/_fuserec/events", json={"events": batch}, timeout=30)
    assert ev.status_code == 200, ev.text
    out = ev.json()
    assert out["accepted"] == 1 and [x["index"] for x in out["rejected"]] == [1] and out["errors"] is True
    assert httpx.post(f"{running.url}/_fuserec/events", content=b"[{", timeout=30).status_code == 400
    fut = asyncio.run_coroutine_threadsafe(running.proxy.impressions.flush(), _loop_of(running))
    fut.result(timeout=30)
    client.indices.refresh(index=f"{world.index_prefix}*")
    stored = read_events(client, world.alias("events"))
    assert request_id in set(stored["request_id"].dropna())
    searches = read_impressions(client, world.alias("searches"))
    assert request_id in set(searches["request_id"])
    metrics = httpx.get(f"{running.url}/_fuserec/metrics").text
    assert 'fuserec_rerank_total{outcome="applied"}' in metrics
    assert 'fuserec_model_info{version="v1"} 1' in metrics
    assert "fuserec_request_seconds_bucket" in metrics
    health = httpx.get(f"{running.url}/_fuserec/health").json()
    assert health["status"] == "ok" and health["model_version"] == "v1"


def _loop_of(running: RunningProxy) -> Any:
    task = running.proxy.impressions._task
    assert task is not None
    return task.get_loop()


def test_the_proxy_process_never_imports_tensorflow(world: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    script = f"""
import asyncio, json, sys
import httpx
from fuserec_os.serve.app import ProxyOptions, create_app
from fuserec_os.settings import Settings
settings = Settings.from_values({{"FUSEREC_OPENSEARCH_URL": {world.opensearch_urls[0]!r},
                                  "FUSEREC_INDEX_PREFIX": {world.index_prefix!r}}})
app = create_app(settings, ProxyOptions(reload_seconds=3600))
async def main():
    async with app.router.lifespan_context(app):
        t = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=t, base_url="http://proxy") as c:
            r = await c.post("/{world.alias("products")}/_search", json={{"size": 3}}, headers={{"{USER}": "{FAN}"}})
            print(json.dumps({{"status": r.status_code, "fuserec": r.json().get("fuserec")}}))
asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, last = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(first)["status"] == 200 and json.loads(first)["fuserec"]["model_version"] == "v1"
    assert json.loads(last) == []


def test_engine_stopped_gives_503_and_the_proxy_recovers_when_it_is_back(world: Settings) -> None:
    """Its own osmem engine (also when the suite runs against a real cluster): stopped, then started again."""
    import httpx
    from osmem_server import OsmemServer

    from fuserec_os.engine import close_osmem

    from .proxy_helpers import free_port

    port = free_port()
    server = OsmemServer.start(japanese=False, addr=f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    settings = replace(world, opensearch_urls=(url,), timeout=5.0)
    try:
        with RunningProxy(_app(settings, urls=(url,), load_at_start=False)) as p:
            c = p.client(max_retries=0)
            assert c.info()["version"]["number"]
            close_osmem(server)
            with pytest.raises(osx.TransportError) as err:
                c.search(index="anything", body={"query": {"match_all": {}}})
            assert err.value.status_code == 503
            assert err.value.info["error"]["type"] == "engine_unavailable_exception"
            assert httpx.get(f"{p.url}/_fuserec/health").status_code == 503
            server = OsmemServer.start(japanese=False, addr=f"127.0.0.1:{port}")
            assert c.info()["version"]["number"]  # no restart of the proxy
            assert httpx.get(f"{p.url}/_fuserec/health").json()["status"] == "ok"
            c.close()
    finally:
        close_osmem(server)


def test_hot_reload_under_traffic_swaps_without_a_failed_request_and_refuses_a_corrupt_model(
    world: Settings, client: OpenSearch
) -> None:
    import threading
    import time

    import httpx

    alias = world.alias("products")
    url_path = f"/{alias}/_search"
    with RunningProxy(_app(world, reload_seconds=0.2)) as p:
        assert p.proxy.holder.version == "v1"
        failures: list[str] = []
        versions: list[str | None] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=p.url, timeout=30) as h:
                while not stop.is_set():
                    r = h.post(url_path, json={**SHOES, "size": 5}, headers={USER: FAN})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        versions.append(r.json()["fuserec"]["model_version"])

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            v2 = register(client, world.index_prefix, brand_artifact(weight=5.0).to_bytes())
            deadline = time.monotonic() + 60
            while p.proxy.holder.version != v2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert p.proxy.holder.version == v2
            time.sleep(0.5)
            bad = register(client, world.index_prefix, b"PK\x03\x04 not a model at all", promote=False)
            from fuserec_os.rerank.registry import ModelRegistry

            ModelRegistry(client, world.index_prefix).promote(bad, force=True)
            deadline = time.monotonic() + 60
            while bad not in p.proxy.reloader.refused and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not failures, failures[:3]
        assert bad in p.proxy.reloader.refused and p.proxy.holder.version == v2
        assert versions[0] == "v1" and versions[-1] == v2 and set(versions) == {"v1", v2}
        metrics = httpx.get(f"{p.url}/_fuserec/metrics").text
        assert 'fuserec_model_reloads_total{result="refused"} 1' in metrics
        print(f"hot reload: {len(versions)} requests during two reloads, none failed")
        ModelRegistry(client, world.index_prefix).promote("v1", force=True)  # other tests expect v1
