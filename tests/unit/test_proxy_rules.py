"""The proxy's pure parts: what passes and what is refused, which searches are personalized, hot reload rules."""

from __future__ import annotations

from typing import Any

import pytest

from fuserec_os.rerank.stage import RerankSettings
from fuserec_os.serve.errors import ProxyError, error_body
from fuserec_os.serve.metrics import Metrics
from fuserec_os.serve.models import ModelHolder, Reloader
from fuserec_os.serve.personalize import SearchPlan, parse_body, plan_search
from fuserec_os.serve.policy import classify


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/shop-products/_search", "search"),
        ("POST", "/_search", "search"),
        ("POST", "/shop-products/_msearch", "msearch"),
        ("GET", "/", "read"),
        ("GET", "/_cluster/health", "read"),
        ("POST", "/shop-products/_count", "read"),
        ("GET", "/shop-products/_mapping", "read"),
        ("GET", "/shop-products/_doc/K1", "read"),
        ("POST", "/_mget", "read"),
        ("GET", "/shop-products/_field_caps", "read"),
        ("HEAD", "/shop-products", "read"),
        ("DELETE", "/_search/scroll", "read"),
        ("PUT", "/evil", "denied"),
        ("DELETE", "/shop-products", "denied"),
        ("POST", "/_bulk", "denied"),
        ("POST", "/shop-products/_bulk", "denied"),
        ("PUT", "/shop-products/_doc/1", "denied"),
        ("POST", "/shop-products/_doc", "denied"),
        ("DELETE", "/shop-products/_doc/1", "denied"),
        ("PUT", "/shop-products/_settings", "denied"),
        ("GET", "/shop-products/_settings", "denied"),
        ("POST", "/_reindex", "denied"),
        ("POST", "/shop-products/_delete_by_query", "denied"),
        ("PUT", "/_snapshot/repo", "denied"),
        ("GET", "/_plugins/_security/api/internalusers", "denied"),
        ("PUT", "/_cluster/settings", "denied"),
        ("POST", "/_aliases", "denied"),
        ("POST", "/shop-products/_update/1", "denied"),
        ("POST", "/_search/template", "denied"),
    ],
)
def test_routes(method: str, path: str, route: str) -> None:
    assert classify(method, path).route == route


def test_the_allowlist_opens_named_endpoints_only() -> None:
    allow = ["POST /_bulk", "/shop-products/_doc/*"]
    assert classify("POST", "/_bulk", allow).route == "allowed"
    assert classify("PUT", "/_bulk", allow).route == "denied"
    assert classify("PUT", "/shop-products/_doc/1", allow).route == "allowed"
    assert classify("DELETE", "/shop-products", allow).route == "denied"


def test_error_bodies_have_opensearch_shape() -> None:
    body = error_body(403, "security_exception", "no")
    assert body == {
        "error": {"root_cause": [{"type": "security_exception", "reason": "no"}], "type": "security_exception",
                  "reason": "no"},
        "status": 403,
    }  # fmt: skip
    assert ProxyError(503, "x", "y").response().status_code == 503


@pytest.mark.parametrize(
    ("body", "params", "reason"),
    [
        ({"sort": [{"price": "asc"}]}, [], "explicit sort"),
        ({"size": 0}, [], "size 0"),
        ({"pit": {"id": "x"}}, [], "point in time"),
        ({"search_after": [1]}, [], "search_after"),
        ({}, [("scroll", "1m")], "scroll"),
        ({}, [("sort", "price:asc")], "sort in the URL"),
        ({"sort": [{"_score": "asc"}]}, [], "explicit sort"),
    ],
)
def test_what_passes_through(body: dict[str, Any], params: list[tuple[str, str]], reason: str) -> None:
    assert plan_search(body, params) == reason


def test_a_bool_query_gives_its_filters_and_text() -> None:
    body = {
        "query": {"bool": {"must": [{"match": {"title": {"query": "red shoes"}}}],
                           "filter": [{"term": {"in_stock": True}}], "must_not": {"term": {"brand": "X"}}}},
        "post_filter": {"range": {"price": {"lte": 50}}},
        "from": 20, "size": 5, "sort": ["_score"],
    }  # fmt: skip
    plan = plan_search(body, [("from", "30")])
    assert isinstance(plan, SearchPlan)
    assert (plan.offset, plan.size, plan.text) == (30, 5, "red shoes")
    assert plan.filters == [
        {"term": {"in_stock": True}},
        {"bool": {"must_not": [{"term": {"brand": "X"}}]}},
        {"range": {"price": {"lte": 50}}},
    ]
    assert "from" not in plan.body and "size" not in plan.body


def test_an_opaque_query_gets_no_behavioural_candidates() -> None:
    plan = plan_search({"query": {"function_score": {"query": {"match": {"title": "red"}}}}}, [])
    assert isinstance(plan, SearchPlan) and plan.filters is None and plan.text == "red" and plan.notes
    none = plan_search({}, [])
    assert isinstance(none, SearchPlan) and none.filters == [] and none.text == ""


@pytest.mark.parametrize("raw", [b"{", b"[1]", b'"x"', b"\xff\xfe"])
def test_bad_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(ProxyError) as err:
        parse_body(raw)
    assert err.value.status == 400


@pytest.mark.parametrize("size", [-1, "ten", 1.5, True])
def test_bad_paging_is_400(size: Any) -> None:
    with pytest.raises(ProxyError):
        plan_search({"size": size}, [])


class _Model:
    def __init__(self, version: str, ok: bool = True) -> None:
        self.version, self.ok = version, ok

    def warm(self) -> None:
        if not self.ok:
            raise ValueError("cannot score")


def test_the_reloader_swaps_refuses_and_keeps_serving() -> None:
    holder = ModelHolder(RerankSettings())
    wanted: list[str | None] = ["v1"]
    results: list[str] = []

    def load(version: str) -> Any:
        if version == "v3":
            raise OSError("corrupt")
        return _Model(version, ok=version != "v2")

    r = Reloader(holder, lambda: wanted[0], load, 60, on_result=lambda res, v: results.append(res))
    assert r.check() == "loaded" and holder.version == "v1"
    assert r.check() is None
    wanted[0] = "v2"
    assert r.check() == "refused" and holder.version == "v1"
    wanted[0] = "v3"
    assert r.check() == "refused" and holder.version == "v1" and set(r.refused) == {"v2", "v3"}
    assert r.check() == "refused" and results.count("refused") == 2  # remembered, not retried every poll
    wanted[0] = None
    assert r.check() == "unloaded" and holder.version is None

    def broken() -> str:
        raise ConnectionError("registry down")

    r.active_version = broken
    assert r.check() == "registry_error"


def test_a_load_freezes_the_heap_and_a_model_swapped_out_is_still_collected() -> None:
    """The proxy's reloader freezes what a load leaves (full collections then skip it); the next load unfreezes
    first, so the old model, even one in a reference cycle, is collected once nothing uses it."""
    import gc
    import weakref

    holder = ModelHolder(RerankSettings())
    wanted = ["v1"]

    def load(version: str) -> Any:
        model = _Model(version, ok=True)
        model.cycle = model  # type: ignore[attr-defined]  # only the cyclic collector can free it
        return model

    r = Reloader(holder, lambda: wanted[0], load, 60, freeze_heap=True)
    try:
        assert r.check() == "loaded"
        assert gc.get_freeze_count() > 0
        old = weakref.ref(holder.model)
        gc.collect()
        assert old() is not None  # serving it
        wanted[0] = "v2"
        assert r.check() == "loaded" and holder.version == "v2"
        gc.collect()
        assert old() is None, "the swapped-out model stayed frozen"
    finally:
        gc.unfreeze()


def test_without_freeze_heap_the_reloader_leaves_the_collector_alone() -> None:
    import gc

    gc.unfreeze()
    r = Reloader(ModelHolder(RerankSettings()), lambda: "v1", lambda v: _Model(v, ok=True), 60)
    assert r.check() == "loaded" and gc.get_freeze_count() == 0


def test_metrics_render_prometheus_text() -> None:
    m = Metrics()
    m.request("search", "POST", 200, 0.003)
    m.outcome(True, None)
    m.outcome(False, "budget")
    m.outcome(True, "no_profile")
    m.count("engine_errors", "unreachable")
    m.model_version = "v7"
    text = m.render()
    assert 'fuserec_requests_total{method="POST",route="search",status="200"} 1' in text
    assert 'fuserec_request_seconds_bucket{le="0.005",route="search"} 1' in text
    assert 'fuserec_rerank_total{outcome="budget"} 1' in text
    assert 'fuserec_rerank_total{outcome="applied_no_profile"} 1' in text
    assert 'fuserec_engine_errors_total{kind="unreachable"} 1' in text
    assert 'fuserec_model_info{version="v7"} 1' in text


def test_parsed_documents_are_cached_by_their_stored_version_only() -> None:
    from fuserec_os.serve.personalize import ParsedCache, _doc_version

    cache = ParsedCache(size=2)
    v1 = _doc_version({"_index": "p-1", "_id": "U1", "_version": 1, "_seq_no": 4, "_primary_term": 1})
    v2 = _doc_version({"_index": "p-1", "_id": "U1", "_version": 2, "_seq_no": 9, "_primary_term": 1})
    rebuilt = _doc_version({"_index": "p-2", "_id": "U1", "_version": 1, "_seq_no": 4, "_primary_term": 1})
    assert len({v1, v2, rebuilt}) == 3  # a new write or a rebuilt index behind the alias is a new key
    assert _doc_version({"_index": "p-1", "_id": "U1"}) is None  # no version info: never cached
    cache.put(v1, "a")
    cache.put(v2, "b")
    assert cache.get(v1) == "a"  # v1 is now the most recent
    cache.put(rebuilt, "c")
    assert cache.get(v2) is None and cache.get(v1) == "a" and cache.get(rebuilt) == "c"


def test_a_search_that_is_not_json_passes_through() -> None:
    from fuserec_os.serve.personalize import not_json

    assert plan_search({}, [("format", "yaml")]) == "format=yaml"
    assert not_json([("format", "JSON")]) is None and not_json([]) is None
    assert not_json([], {"accept": "application/cbor"}) == "accept: application/cbor"
    assert not_json([], {"content-type": "application/smile"}) == "content-type: application/smile"
    assert not_json([], {"accept": "application/json", "content-type": "application/x-ndjson"}) is None
