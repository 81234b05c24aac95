"""Managed mappings against a real engine: create, migrate with atomic alias swap, status, prune."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from fuserec_os.errors import IndexStateError, MappingError
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec, load_mapping

DOCS = [
    {"product_id": f"P{i}", "title": f"Product {i} running shoe", "brand": "Acme", "price": 10.0 + i} for i in range(25)
]


def _load(client: OpenSearch, alias: str, docs: list[dict[str, object]]) -> None:
    for d in docs:
        client.index(index=alias, id=str(d["product_id"]), body=d)
    client.indices.refresh(index=alias)


def _bumped(spec: MappingSpec, tmp_path: Path) -> MappingSpec:
    """The same mapping at version+1, with one extra field (a changed mapping)."""
    mappings = json.loads(json.dumps(spec.mappings))
    mappings["properties"]["gtin"] = {"type": "keyword"}
    return replace(spec, version=spec.version + 1, mappings=mappings, path=tmp_path / "products.json")


def test_create_points_alias_and_records_version(client: OpenSearch, spec: MappingSpec, alias: str) -> None:
    name, created = manager.ensure_index(client, spec, alias)
    assert created
    assert name.startswith(f"{alias}-v{spec.version}-")
    assert manager.alias_targets(client, alias) == [name]
    again, created_again = manager.ensure_index(client, spec, alias)
    assert (again, created_again) == (name, False)
    st = manager.status(client, spec, alias)
    assert st.live == (name,)
    assert st.live_version == spec.version


def test_migrate_reindexes_checks_counts_and_swaps(
    client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path
) -> None:
    old, _ = manager.ensure_index(client, spec, alias)
    _load(client, alias, DOCS)
    v2 = _bumped(spec, tmp_path)

    seen_counts: list[int] = []
    stop = threading.Event()

    def search_during_migration() -> None:
        while not stop.is_set():
            seen_counts.append(client.count(index=alias)["count"])

    t = threading.Thread(target=search_during_migration)
    t.start()
    try:
        rep = manager.migrate(client, v2, alias)
    finally:
        stop.set()
        t.join()

    assert rep.old_index == old and rep.new_index != old
    assert rep.old_docs == rep.new_docs == len(DOCS)
    assert manager.alias_targets(client, alias) == [rep.new_index]
    assert "gtin" in client.indices.get_mapping(index=rep.new_index)[rep.new_index]["mappings"]["properties"]
    # searches through the alias never saw an empty or missing index
    assert seen_counts and all(c == len(DOCS) for c in seen_counts)
    st = manager.status(client, v2, alias)
    assert st.live_version == v2.version
    assert {i.name for i in st.indices} == {old, rep.new_index}


def test_migrate_refuses_same_version_without_force(client: OpenSearch, spec: MappingSpec, alias: str) -> None:
    manager.ensure_index(client, spec, alias)
    with pytest.raises(IndexStateError, match="already at mapping version"):
        manager.migrate(client, spec, alias)
    rep = manager.migrate(client, spec, alias, force=True)
    assert manager.alias_targets(client, alias) == [rep.new_index]


def test_migrate_without_alias_says_what_to_do(client: OpenSearch, spec: MappingSpec, alias: str) -> None:
    with pytest.raises(IndexStateError, match="index create"):
        manager.migrate(client, spec, alias)


def test_prune_keeps_newest_and_live(client: OpenSearch, spec: MappingSpec, alias: str, tmp_path: Path) -> None:
    first, _ = manager.ensure_index(client, spec, alias)
    second = manager.migrate(client, spec, alias, force=True).new_index
    third = manager.migrate(client, spec, alias, force=True).new_index
    assert manager.managed_indices(client, alias) == [first, second, third]
    deleted = manager.prune(client, alias, keep=2)
    assert deleted == [first]
    assert manager.managed_indices(client, alias) == [second, third]
    assert manager.prune(client, alias, keep=1) == [second]
    assert manager.alias_targets(client, alias) == [third]
    with pytest.raises(IndexStateError, match="at least 1"):
        manager.prune(client, alias, keep=0)


def test_rejected_mapping_names_file_and_leaves_nothing(client: OpenSearch, alias: str, tmp_path: Path) -> None:
    bad = tmp_path / "products.json"
    bad.write_text(json.dumps({"version": 1, "mappings": {"properties": {"price": {"type": "strnig"}}}}))
    spec = load_mapping(bad)
    with pytest.raises(MappingError) as err:
        manager.ensure_index(client, spec, alias)
    assert str(bad) in str(err.value) and "strnig" in str(err.value)
    assert manager.managed_indices(client, alias) == []
    assert manager.alias_targets(client, alias) == []


def test_invalid_json_mapping_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "products.json"
    bad.write_text('{"version": 1,\n "mappings": {"properties": {,}}}')
    with pytest.raises(MappingError, match=r"products.json: not valid JSON at line 2"):
        load_mapping(bad)
