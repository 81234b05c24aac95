"""Profiles and product vectors in the engine: round trips, missing users, replacement, deletes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from opensearchpy import OpenSearch

from fuserec_os.index import manager
from fuserec_os.index.mappings import load_mapping, load_named_mapping
from fuserec_os.profiles.compute import ProductCatalog, ProfileSet, build_profiles
from fuserec_os.profiles.config import ProfilesConfig
from fuserec_os.profiles.store import (
    PROFILES_MAPPING,
    delete_profile,
    profile_from_source,
    read_all_profiles,
    read_product_vectors,
    read_profiles,
    write_product_vectors,
    write_profiles,
)
from fuserec_os.settings import Settings

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
REPO = Path(__file__).resolve().parents[2]


def _events(rows: list[tuple[str, str, str, pd.Timestamp]]) -> pd.DataFrame:
    ts = pd.Series([r[3] for r in rows], dtype="datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "product_id": [r[2] for r in rows],
            "timestamp": ts,
        }
    )


@pytest.fixture(scope="module")
def built() -> ProfileSet:
    catalog = ProductCatalog.from_frame(
        pd.DataFrame(
            [
                {
                    "product_id": "P1",
                    "title": "Espresso Machine",
                    "brand": "Brew",
                    "category": "home > kitchen",
                    "price": 50.0,
                    "rating": 4.0,
                },
                {
                    "product_id": "P2",
                    "title": "Trail Shoe",
                    "brand": "Kinetix",
                    "category": "shoes > trail",
                    "price": 120.0,
                },
                {"product_id": "P3", "title": "Desk Lamp", "category": "home > office"},
            ]
        )
    )
    day = pd.Timedelta(days=1)
    rows = [
        ("alice", "purchase", "P1", T0 - 3 * day),
        ("alice", "view", "P2", T0 - 2 * day),
        ("bob", "click", "P2", T0 - day),
        ("bob", "view", "P3", T0 - 5 * day),
        ("carol", "view", "NOT-IN-CATALOG", T0 - day),
        ("carol", "add_to_cart", "P3", T0 - 4 * day),
    ]
    return build_profiles(_events(rows), catalog, ProfilesConfig(latent_dims=2), as_of=T0)


def test_write_read_round_trip(client: OpenSearch, settings: Settings, built: ProfileSet) -> None:
    alias = settings.alias("profiles")
    assert write_profiles(client, alias, built, refresh=True) == 3
    got = read_profiles(client, alias, ["alice", "bob", "carol"])
    assert set(got) == {"alice", "bob", "carol"}
    for uid, profile in got.items():
        assert profile == built[uid]
        assert profile.to_doc() == built[uid].to_doc()
    assert read_all_profiles(client, alias).keys() == {"alice", "bob", "carol"}
    # filterable summaries are indexed
    hits = client.search(index=alias, body={"query": {"term": {"top_categories": "home"}}})["hits"]["hits"]
    assert {h["_id"] for h in hits} == {"alice", "bob", "carol"}
    # a rewrite replaces the whole document
    assert write_profiles(client, alias, [built["alice"].decayed_to(T0 + pd.Timedelta(days=14), ProfilesConfig())]) == 1
    again = read_profiles(client, alias, ["alice"])["alice"]
    assert again.as_of == T0 + pd.Timedelta(days=14)
    assert again.total_weight == pytest.approx(built["alice"].total_weight / 2)


def test_missing_users_and_missing_index(client: OpenSearch, settings: Settings, built: ProfileSet) -> None:
    alias = settings.alias("profiles")
    assert read_profiles(client, alias, ["alice"]) == {}  # no index yet
    assert read_all_profiles(client, alias) == {}
    assert delete_profile(client, alias, "alice") == 0
    write_profiles(client, alias, [built["alice"]])
    got = read_profiles(client, alias, ["nobody", "alice", "ghost"])
    assert list(got) == ["alice"]
    assert read_profiles(client, alias, []) == {}


def test_product_vectors_round_trip_and_replace(client: OpenSearch, settings: Settings, built: ProfileSet) -> None:
    alias = settings.alias("product_vectors")
    assert read_product_vectors(client, alias) == {}
    assert write_product_vectors(client, alias, built.product_vectors, built.as_of) == len(built.product_vectors)
    got = read_product_vectors(client, alias)
    assert got.keys() == built.product_vectors.keys()
    for pid, vec in built.product_vectors.items():
        np.testing.assert_allclose(got[pid], vec, rtol=1e-6)  # stored as float; _source keeps what was sent
    # a new build's vectors replace the old ones entirely (no mixing of two factorisations)
    write_product_vectors(client, alias, {"P9": np.array([1.0, -2.0])}, T0 + pd.Timedelta(days=1))
    replaced = read_product_vectors(client, alias)
    assert list(replaced) == ["P9"]
    np.testing.assert_array_equal(replaced["P9"], [1.0, -2.0])
    assert len(client.indices.get_alias(name=alias)) == 1
    doc = client.get(index=alias, id="P9")["_source"]
    assert doc["as_of"] == "2026-03-02T00:00:00Z"


def test_delete_removes_only_that_profile(client: OpenSearch, settings: Settings, built: ProfileSet) -> None:
    alias = settings.alias("profiles")
    write_profiles(client, alias, built)
    assert delete_profile(client, alias, "bob") == 1
    assert delete_profile(client, alias, "bob") == 0
    client.indices.refresh(index=alias)
    assert set(read_profiles(client, alias, ["alice", "bob", "carol"])) == {"alice", "carol"}
    assert set(read_all_profiles(client, alias)) == {"alice", "carol"}


def test_lean_documents_index_only_the_summaries(client: OpenSearch, settings: Settings, built: ProfileSet) -> None:
    alias = settings.alias("profiles")
    write_profiles(client, alias, built, refresh=True)
    doc = client.get(index=alias, id="alice")["_source"]
    assert set(doc) == set(load_named_mapping(PROFILES_MAPPING).fields)
    assert isinstance(doc["state"], str) and "items" not in doc  # items, recent, vector...: in the blob
    assert profile_from_source(doc) == built["alice"]
    # what is only read back by id is not searchable; the summaries are
    assert client.count(index=alias, body={"query": {"range": {"n_events": {"gte": 1}}}})["count"] == 3
    assert client.count(index=alias, body={"query": {"term": {"user_id": "bob"}}})["count"] == 1


def test_many_profiles_round_trip_in_small_chunks_and_threads(
    client: OpenSearch, settings: Settings, built: ProfileSet
) -> None:
    """Byte-cut chunks of one document and three threads: every profile arrives once and reads back equal."""
    alias = settings.alias("profiles")
    many = [replace(built[u], user_id=f"{u}-{i}") for i in range(40) for u in ("alice", "bob", "carol")]
    n = write_profiles(client, alias, many, chunk_size=7, max_chunk_bytes=1, threads=3, refresh=True)
    assert n == len(many)
    got = read_profiles(client, alias, [p.user_id for p in many])
    assert len(got) == len(many) and all(got[p.user_id] == p for p in many)
    assert client.count(index=alias)["count"] == len(many)


def test_a_version_1_index_is_moved_to_lean_documents_on_the_next_write(
    client: OpenSearch, settings: Settings, built: ProfileSet
) -> None:
    """Profiles stored whole (mapping version 1) stay readable; the next write moves them all to version 2."""
    alias = settings.alias("profiles")
    v1 = load_mapping(REPO / "benchmarks" / "profiles_v1_mapping.json", PROFILES_MAPPING)
    old_index, _ = manager.ensure_index(client, v1, alias)
    for uid in ("alice", "bob"):
        client.index(index=old_index, id=uid, body=built[uid].to_doc(), params={"refresh": "true"})
    assert read_profiles(client, alias, ["alice", "bob"]) == {"alice": built["alice"], "bob": built["bob"]}
    assert write_profiles(client, alias, [built["carol"]], refresh=True) == 1
    (live,) = manager.alias_targets(client, alias)
    assert live != old_index and manager.mapping_version(client, live) == load_named_mapping(PROFILES_MAPPING).version
    assert read_all_profiles(client, alias) == {u: built[u] for u in ("alice", "bob", "carol")}
    assert not client.indices.exists(index=old_index)
