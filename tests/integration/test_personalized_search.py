"""Personalized search through a real engine: the rerank stage behind ``SearchBackend.search(user_id=...)`` and
``fuserec search --user``.

The model is a registered :class:`NumpyMLPScorer` built here (no TensorFlow, no training): one linear layer whose
only weight is on ``brand_affinity``, so a shopper who bought Kinetix must see Kinetix socks first while the
engine (and a shopper without a profile) ranks by text. Scores are never asserted exactly (osmem's BM25 differs
from Lucene's); orders and what the result says happened are.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import OpenSearch

from fuserec_os.behaviour.event_store import record_events
from fuserec_os.config import RankingConfig
from fuserec_os.errors import EngineError
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_mapping
from fuserec_os.profiles.jobs import Aliases, build_from_store
from fuserec_os.rerank import pipeline as pipeline_module
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.pipeline import Pipeline
from fuserec_os.rerank.registry import ModelRegistry
from fuserec_os.rerank.scorer import NumpyMLPScorer
from fuserec_os.rerank.settings import RerankSettings
from fuserec_os.search.backend import SearchBackend
from fuserec_os.search.request import SearchRequest, Sort
from tests.unit.test_cli_imports import loaded_by, top_packages

from .conftest import REPO, Cli

FEATURES = ("bm25_norm", "brand_affinity")
N = 14  # socks in the catalog: more than the small windows below


def brand_model(weight: float = 5.0, alpha: float = 0.9) -> ModelArtifact:
    """A linear scorer that only looks at brand affinity; the gate blends it in for users with history."""
    columns = (*FEATURES, *(f"{f}__missing" for f in FEATURES))
    kernel = np.zeros((len(columns), 1), dtype=np.float32)
    kernel[columns.index("brand_affinity"), 0] = weight
    scorer = NumpyMLPScorer([kernel, np.zeros(1)], np.zeros(len(columns)), np.ones(len(columns)), columns, "linear")
    gate = Gate(alpha_no_history=0.0, alpha_light=alpha, alpha_heavy=alpha)
    return ModelArtifact(scorer=scorer, features=FEATURES, gate=gate)


def register(client: OpenSearch, prefix: str, artifact: ModelArtifact) -> str:
    registry = ModelRegistry(client, prefix)
    version = registry.save(artifact.to_bytes(), {"kind": "mlp", "features": list(artifact.features)})
    registry.promote(version, force=True)
    return version


def _products() -> list[dict[str, object]]:
    out = []
    for i in range(N):
        kinetix = i % 4 == 3  # Kinetix never has 'socks' in its title: the text ranks it below every Woolly
        out.append(
            {
                "product_id": f"S{i:03d}",
                "title": f"wool crew pair {i}" if kinetix else f"wool socks pair {i}",
                "description": "warm socks",
                "brand": "Kinetix" if kinetix else "Woolly",
                "category": "clothing > socks",
                "price": 10.0 + i,
                "in_stock": i != 5,
            }
        )
    out.append(  # a product no text query for socks finds: shoppers reach it by a nickname
        {
            "product_id": "Z900",
            "title": "merino crew",
            "brand": "Kinetix",
            "category": "clothing > legwear",
            "price": 30.0,
        }
    )
    return out


@pytest.fixture
def shop(client: OpenSearch, spec: MappingSpec, prefix: str) -> Aliases:
    aliases = Aliases.for_prefix(prefix)
    manager.ensure_index(client, spec, aliases.products)
    for doc in _products():
        client.index(index=aliases.products, id=str(doc["product_id"]), body=doc)
    client.indices.refresh(index=aliases.products)
    events_spec = load_mapping(REPO / "mappings" / "events.json", "events")
    events = []
    for n, pid in enumerate(["S003", "S007", "S011", "S003"]):  # U1 buys Kinetix
        events.append(
            {"user_id": "U1", "product_id": pid, "type": "purchase", "timestamp": f"2024-04-0{n + 1}T10:00:00Z"}
        )
    for n in range(3):  # shoppers type 'kx socks' and click Z900, which the text does not find
        events.append(
            {
                "user_id": f"U{5 + n}",
                "product_id": "Z900",
                "type": "click",
                "query": "kx",
                "request_id": f"R{n}",
                "timestamp": f"2024-04-0{n + 1}T11:00:00Z",
            }
        )
    res = record_events(client, events, events_spec, aliases.events, refresh=True)
    assert not res.rejected, res.rejected
    build_from_store(client, aliases, RankingConfig().profiles)
    return aliases


def backend(client: OpenSearch, aliases: Aliases, prefix: str, **rerank: object) -> SearchBackend:
    rerank.setdefault("budget_ms", 5000.0)  # only the budget test tests the budget (a loaded CI machine is slow)
    ranking = replace(RankingConfig(), rerank=RerankSettings(**rerank))  # type: ignore[arg-type]
    pipeline = Pipeline.from_config(client, prefix, ranking)
    return SearchBackend(client, aliases.products, ranking.search, pipeline)


@pytest.fixture
def cli_env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The CLI's environment with a generous rerank budget: these tests are about what the model does."""
    config = tmp_path / "ranking.yaml"
    config.write_text("rerank:\n  budget_ms: 5000\n", encoding="utf-8")
    return {**cli_env, "FUSEREC_CONFIG": str(config)}


def test_a_shopper_with_a_taste_sees_it_first_and_the_result_says_what_happened(
    client: OpenSearch, shop: Aliases, prefix: str
) -> None:
    version = register(client, prefix, brand_model())
    b = backend(client, shop, prefix)
    plain = b.search("socks", size=5)
    mine = b.search("socks", size=5, user_id="U1", explain=True)
    assert plain.personalization is None and plain.hits[0].source["brand"] == "Woolly"
    assert [h.source["brand"] for h in mine.hits[:3]] == ["Kinetix"] * 3
    assert mine.ids != plain.ids and mine.total == plain.total and mine.facets == plain.facets
    info = mine.personalization
    assert info is not None and info["applied"] and info["fallback"] is None and info["model_version"] == version
    assert {"engine", "profile", "stats", "features", "score", "stage", "total"} <= set(info["timings_ms"])
    top = mine.hits[0].ranking
    assert top is not None and top["engine_rank"] > 1 and top["new_rank"] == 1
    assert top["explanation"][0]["feature"] == "brand affinity: Kinetix" and top["explanation"][0]["contribution"] > 0
    # the unknown shopper: the model's cold-start path (alpha 0 for no history) keeps engine order
    new = b.search("socks", size=5, user_id="nobody")
    assert new.ids == plain.ids and new.personalization is not None
    assert new.personalization["applied"] and new.personalization["fallback"] == "no_profile"


def test_fallbacks_no_model_budget_and_a_price_sort_give_engine_order(
    client: OpenSearch, shop: Aliases, prefix: str
) -> None:
    b = backend(client, shop, prefix)
    plain = b.search("socks", size=5)
    got = b.search("socks", size=5, user_id="U1")
    assert got.ids == plain.ids and got.personalization is not None
    assert got.personalization["fallback"] == "no_model" and not got.personalization["applied"]

    register(client, prefix, brand_model())
    slow = backend(client, shop, prefix, budget_ms=0.0).search("socks", size=5, user_id="U1")
    assert slow.ids == plain.ids and slow.personalization is not None and slow.personalization["fallback"] == "budget"

    b = backend(client, shop, prefix)
    by_price = b.search("socks", size=5, user_id="U1", sort=Sort.PRICE_ASC)
    assert by_price.ids == b.search("socks", size=5, sort=Sort.PRICE_ASC).ids
    assert by_price.personalization is not None and by_price.personalization["fallback"] == "not_relevance"

    off = backend(client, shop, prefix, enabled=False).search("socks", size=5, user_id="U1")
    assert off.ids == plain.ids and off.personalization is not None and off.personalization["fallback"] == "disabled"


def test_a_profile_store_that_fails_is_a_fallback_not_an_error(
    client: OpenSearch, shop: Aliases, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(client, prefix, brand_model())
    b = backend(client, shop, prefix)

    def refuse(*_args: object) -> None:
        raise EngineError("OpenSearch refused reading profiles: circuit_breaking_exception")

    monkeypatch.setattr(pipeline_module, "read_profiles", refuse)
    got = b.search("socks", size=5, user_id="U1")
    assert got.ids == b.execute_plain(SearchRequest(text="socks", size=5)).ids
    assert got.personalization is not None and got.personalization["fallback"] == "store_error"
    assert "circuit_breaking_exception" in got.personalization["notes"][0]


def test_paging_across_the_window_never_repeats_or_skips(client: OpenSearch, shop: Aliases, prefix: str) -> None:
    register(client, prefix, brand_model())
    b = backend(client, shop, prefix, window=5)
    everything = b.search("socks", size=50).ids
    assert len(everything) == N
    for size in (2, 3, 4):
        seen: list[str] = []
        for page in range(1, N // size + 3):
            got = b.search("socks", size=size, page=page, user_id="U1")
            seen += got.ids
        assert len(seen) == len(set(seen)), f"size {size}: a product repeated: {seen}"
        assert set(seen) == set(everything), f"size {size}: skipped {set(everything) - set(seen)}"
        first = b.search("socks", size=5, user_id="U1").ids
        assert seen[:5] == first  # the reranked window first, then the engine's order


def test_behavioural_candidates_come_from_the_statistics_and_respect_the_filters(
    client: OpenSearch, shop: Aliases, prefix: str
) -> None:
    register(client, prefix, brand_model())
    b = backend(client, shop, prefix)
    assert b.search("kx", size=5).ids == []  # the text finds nothing
    got = b.search("kx", size=5, user_id="U1")
    assert got.ids == ["Z900"] and got.personalization is not None
    assert got.personalization["behavioural_candidates"] == 1
    assert got.hits[0].ranking is not None and got.hits[0].ranking["source"] == "behavioural"
    filtered = b.search("kx", size=5, user_id="U1", filters={"brands": ["Woolly"]})
    assert filtered.ids == []
    assert b.search("kx", size=5, user_id="U1", filters={"price_max": 35}).ids == ["Z900"]


def test_cli_search_user_explain_and_json(cli: Cli, client: OpenSearch, shop: Aliases, prefix: str) -> None:
    version = register(client, prefix, brand_model())
    plain = json.loads(cli("search", "socks", "--size", "5", "--json").stdout)
    assert "personalization" not in plain
    mine = json.loads(cli("search", "socks", "--size", "5", "--user", "U1", "--json").stdout)
    assert [h["id"] for h in mine["hits"]] != [h["id"] for h in plain["hits"]]
    assert mine["personalization"]["model_version"] == version and mine["personalization"]["applied"]
    assert mine["hits"][0]["ranking"]["new_rank"] == 1
    out = cli("search", "socks", "--size", "3", "--user", "U1", "--explain").stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"personalized for U1: reranked, model {version}, window 100"), lines[0]
    assert any("engine #" in line and "-> #1" in line and "blended" in line for line in lines), out
    assert any("brand affinity: Kinetix +" in line for line in lines), out


def recency_model(weight: float = 0.01) -> ModelArtifact:
    """A linear scorer on the days since the shopper's last event: the only feature that depends on the clock."""
    features = ("bm25_norm", "days_since_last_seen")
    columns = (*features, *(f"{f}__missing" for f in features))
    kernel = np.zeros((len(columns), 1), dtype=np.float32)
    kernel[columns.index("days_since_last_seen"), 0] = weight
    scorer = NumpyMLPScorer([kernel, np.zeros(1)], np.zeros(len(columns)), np.ones(len(columns)), columns, "linear")
    gate = Gate(alpha_no_history=0.0, alpha_light=0.9, alpha_heavy=0.9)
    return ModelArtifact(scorer=scorer, features=features, gate=gate)


def test_cli_search_now_computes_the_features_at_that_time(
    cli: Cli, client: OpenSearch, shop: Aliases, prefix: str
) -> None:
    """U1's last event is 2024-04-04T10:00Z: ``--now`` a day and 61 days later moves the recency feature by 60
    days; without it the features are computed today, years later (what a simulated 2024 shop used to get)."""
    register(client, prefix, recency_model(weight=0.01))

    def model_score(*now: str) -> float:
        out = json.loads(cli("search", "socks", "--size", "3", "--user", "U1", "--json", *now).stdout)
        assert out["personalization"]["applied"], out["personalization"]
        if now:
            assert out["personalization"]["features_at"] == now[1], out["personalization"]
        scores = {h["ranking"]["model_score"] for h in out["hits"]}
        assert len(scores) == 1, scores  # a user feature: the same for every hit
        return float(scores.pop())

    soon = model_score("--now", "2024-04-05T10:00:00Z")
    later = model_score("--now", "2024-06-04T10:00:00Z")
    today = model_score()
    assert soon == pytest.approx(0.01 * 1.0, abs=1e-4)
    assert later - soon == pytest.approx(0.01 * 60.0, abs=1e-4)
    assert today > later + 0.01 * 365  # no --now: features at today's date, more than two years on
    text = cli("search", "socks", "--size", "3", "--user", "U1", "--now", "2024-06-04T10:00:00Z").stdout
    assert "features as of 2024-06-04T10:00:00Z" in text.splitlines()[0], text


def test_a_personalized_search_loads_no_tensorflow(
    client: OpenSearch, cli_env: dict[str, str], shop: Aliases, prefix: str, tmp_path: Path
) -> None:
    register(client, prefix, brand_model())
    env = {**os.environ, **cli_env}
    modules, output = loaded_by(["search", "socks", "--user", "U1", "--json"], tmp_path, env=env)
    assert '"applied": true' in output  # the model really ran
    assert not top_packages(modules) & {"tensorflow", "keras"}
    assert not any(m.startswith("fuserec_os.learn.") and m != "fuserec_os.learn.model_config" for m in modules)
