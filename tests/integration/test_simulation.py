"""The shopper simulator against the real engine over HTTP: BM25 retrieval and the recall report."""

from __future__ import annotations

from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from fuserec_os.index.ingest import ingest_products
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.search.backend import SearchBackend
from fuserec_os.search.retrieval import EngineRetriever
from fuserec_os.settings import Settings
from fuserec_os.simulate.catalog import GeneratedProduct, generate_catalog, write_catalog
from fuserec_os.simulate.retrieval import Retriever
from fuserec_os.simulate.shoppers import load_catalog, simulate

pytestmark = pytest.mark.integration

QUERIES = ["running shoes", "cans", "waterproof hiking boots", "stridewell running shoes", "kitchen", "headphnes"]


@pytest.fixture
def loaded(client: OpenSearch, spec: MappingSpec, settings: Settings, tmp_path: Path) -> list[GeneratedProduct]:
    """An 800-product catalog written to files, reloaded with its latents, and ingested under this test's prefix."""
    write_catalog(generate_catalog(800, seed=7), tmp_path / "c.jsonl", latent_path=tmp_path / "c.latent.jsonl")
    catalog = load_catalog(tmp_path / "c.jsonl", tmp_path / "c.latent.jsonl")
    report = ingest_products(client, tmp_path / "c.jsonl", spec, settings.alias("products"), progress=False)
    assert report.indexed == 800
    return catalog


def test_engine_retriever_matches_a_direct_search(
    client: OpenSearch, settings: Settings, loaded: list[GeneratedProduct]
) -> None:
    alias = settings.alias("products")
    retriever = EngineRetriever(client, alias, k=100, batch_size=4)
    assert isinstance(retriever, Retriever)
    got = retriever.search(QUERIES, 30)
    backend = SearchBackend(client, alias)
    for q, ids in zip(QUERIES, got, strict=True):
        direct = backend.search(q, size=30, facets=False, highlight=False).ids
        assert ids == direct, q
        raw = client.search(index=alias, body=retriever.body(q, 30))
        assert ids == [h["_id"] for h in raw["hits"]["hits"]]
    assert got[0] and got[2]
    assert got[1] == []  # "cans" is not in the catalog text: BM25 finds nothing
    assert retriever.requests == 2 and retriever.queries_sent == len(QUERIES)  # batches of 4
    assert retriever.search(QUERIES[::-1], 30) == got[::-1]
    assert retriever.requests == 2  # cached per distinct query


def test_recall_report_against_the_engine(
    client: OpenSearch, settings: Settings, loaded: list[GeneratedProduct]
) -> None:
    retriever = EngineRetriever(client, settings.alias("products"), k=100)
    result = simulate(loaded, retriever, users=300, days=14, seed=7)
    assert result.stats["events_by_type"]["click"] > 200
    recall = result.stats["bm25_recall"]
    assert 0.3 < recall["clicks"] < 1.0
    assert 0.3 < recall["purchases"] <= 1.0
    kinds = recall["clicks_by_kind"]
    assert kinds["informal"]["recall"] < 0.2 < 0.7 < kinds["canonical"]["recall"]
    # every search went through the engine once per distinct query, in batches
    assert retriever.queries_sent <= len(set(i["query"] for i in result.impressions)) + 50
    assert retriever.requests <= retriever.queries_sent // 50 + 2
    catalog_ids = {p.doc["product_id"] for p in loaded}
    assert all(e["product_id"] in catalog_ids for e in result.events)
