"""Model registry in the cluster: versions, checksums, promotion rules, rollback, export/import, concurrency."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from fuserec_os.index.state import get_state, state_index
from fuserec_os.rerank.registry import (
    ACTIVE_STATE,
    BlobTooLargeError,
    CorruptModelError,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
)

pytestmark = pytest.mark.integration


def _meta(mlp: float, engine: float = 0.40, **extra: Any) -> dict[str, Any]:
    # kind "blob": these tests store random bytes, which an "mlp" version refuses (not a loadable artifact)
    return {
        "kind": "blob",
        "metrics": {
            "test": {"blob": {"ndcg@10": mlp}, "engine": {"ndcg@10": engine}},
            "valid": {"blob": {"ndcg@10": mlp + 0.01}},
        },
        "config": {"hidden": [64, 32], "lr": 0.001},
        "features": ["bm25", "price_affinity", "brand_affinity"],
        "training": {"window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}, "rows": 1234},
        "code_version": "0.1.0+test",
        **extra,
    }


@pytest.fixture
def reg(client: OpenSearch, prefix: str) -> ModelRegistry:
    return ModelRegistry(client, prefix)


def test_save_list_get(reg: ModelRegistry) -> None:
    assert reg.list() == []  # nothing yet, no error
    assert reg.active() is None and reg.load_active() is None
    b1, b2 = os.urandom(1000), os.urandom(7_000_000)  # the second spans several chunks
    assert reg.save(b1, _meta(0.45)) == "v1"
    assert reg.save(b2, _meta(0.43)) == "v2"
    listed = reg.list()
    assert [v.version for v in listed] == ["v2", "v1"]
    assert [v.status for v in listed] == ["candidate", "candidate"]
    assert listed[1].blob_bytes == 1000 and listed[0].blob_bytes == 7_000_000
    assert not hasattr(listed[0], "blob")
    info, blob = reg.get("v2")
    assert blob == b2
    assert info.metrics == _meta(0.43)["metrics"] and info.features == _meta(0.43)["features"]
    assert info.training == _meta(0.43)["training"] and info.code_version == "0.1.0+test"
    with pytest.raises(RegistryError, match="'v9' does not exist"):
        reg.get("v9")


def test_listing_does_not_transfer_blobs(reg: ModelRegistry, client: OpenSearch) -> None:
    reg.save(b"x" * 10, _meta(0.45))
    resp = client.search(index=reg.alias, body={"query": {"match_all": {}}, "_source": {"excludes": ["blob"]}})
    assert "blob" not in resp["hits"]["hits"][0]["_source"]  # the exclusion list() relies on


def test_corrupt_blob_is_detected(reg: ModelRegistry, client: OpenSearch) -> None:
    reg.save(b"good model bytes", _meta(0.45))
    client.update(
        index=reg.alias,
        id="v1",
        body={"doc": {"blob": [base64.b64encode(b"evil model bytes").decode()]}},
        params={"refresh": "true"},
    )
    with pytest.raises(CorruptModelError, match="does not match its checksum"):
        reg.get("v1")


def test_blob_cap(client: OpenSearch, prefix: str) -> None:
    small = ModelRegistry(client, prefix, max_blob_bytes=1000)
    with pytest.raises(BlobTooLargeError, match="over the registry cap"):
        small.save(b"x" * 1001, _meta(0.45))
    assert small.list() == []


def test_promote_refuse_force_rollback(reg: ModelRegistry, client: OpenSearch, prefix: str) -> None:
    reg.save(b"one", _meta(0.45))
    reg.save(b"two", _meta(0.43))
    reg.save(b"three", _meta(0.39))  # worse than engine order (0.40)

    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    with pytest.raises(PromotionRefused, match=r"0\.0100 worse than engine order") as refused:
        reg.promote("v3")
    assert refused.value.exit_code == 9
    assert reg.active() is None

    first = reg.promote("v1")  # no active yet: only engine order counts
    assert first.changed and first.previous is None and first.decision is not None and first.decision.ok
    active = reg.active()
    assert active is not None and active.version == "v1" and active.status == "active"

    with pytest.raises(PromotionRefused, match=r"refusing to promote v2: .*0\.0200 worse than active model v1"):
        reg.promote("v2")
    assert reg.active_version() == "v1"
    assert {v.version: v.status for v in reg.list()} == {"v1": "active", "v2": "candidate", "v3": "candidate"}

    forced = reg.promote("v2", force=True)
    assert forced.changed and forced.forced and forced.previous == "v1"
    assert forced.decision is not None and forced.decision.deltas["active"] == pytest.approx(-0.02)
    assert {v.version: v.status for v in reg.list()} == {"v1": "retired", "v2": "active", "v3": "candidate"}
    assert reg.history() == ["v1"]
    loaded = reg.load_active()
    assert loaded is not None and loaded[0].version == "v2" and loaded[1] == b"two"
    pointer = get_state(client, state_index(prefix), ACTIVE_STATE)
    assert pointer is not None and pointer["version"] == "v2" and pointer["history"] == ["v1"]

    with pytest.raises(RegistryError, match="is the active model"):
        reg.delete("v2")

    back = reg.rollback()
    assert back.version == "v1" and back.previous == "v2" and back.changed
    assert {v.version: v.status for v in reg.list()} == {"v1": "active", "v2": "retired", "v3": "candidate"}
    assert reg.history() == []
    with pytest.raises(RegistryError, match=r"nothing to roll back to.*active model is v1"):
        reg.rollback()

    same = reg.promote("v1")  # already active: nothing changes
    assert not same.changed


def test_tolerance_allows_a_small_loss(reg: ModelRegistry) -> None:
    reg.save(b"one", _meta(0.45))
    reg.save(b"two", _meta(0.445))
    reg.promote("v1")
    with pytest.raises(PromotionRefused):
        reg.promote("v2")
    assert reg.promote("v2", tolerance=0.01).changed


def test_active_pointer_survives_a_fresh_registry(client: OpenSearch, prefix: str) -> None:
    writer = ModelRegistry(client, prefix)
    writer.save(b"one", _meta(0.45))
    writer.save(b"two", _meta(0.47))
    writer.promote("v1")
    writer.promote("v2")
    reader = ModelRegistry(client, prefix)  # another replica: shares nothing but the cluster
    active = reader.active()
    assert active is not None and active.version == "v2"
    loaded = reader.load_active()
    assert loaded is not None and loaded[1] == b"two"
    assert reader.history() == ["v1"]
    assert reader.rollback().version == "v1"
    assert writer.active_version() == "v1"


def test_export_import_round_trip(reg: ModelRegistry, tmp_path: Path) -> None:
    blob = os.urandom(4_000_000)
    reg.save(blob, _meta(0.45))
    original = reg.info("v1")
    path = reg.export("v1", tmp_path / "model.json")
    assert json.loads(path.read_text())["meta"]["version"] == "v1"
    new = reg.import_file(path)
    assert new == "v2"
    info, got = reg.get(new)
    assert got == blob
    assert info.meta() == original.meta()
    assert info.status == "candidate"
    assert info.imported_from is not None
    assert info.imported_from["version"] == "v1" and info.imported_from["created_at"] == original.created_at


def test_import_rejects_a_tampered_export(reg: ModelRegistry, tmp_path: Path) -> None:
    reg.save(b"model", _meta(0.45))
    path = reg.export("v1", tmp_path / "model.json")
    payload = json.loads(path.read_text())
    payload["blob_base64"] = base64.b64encode(b"other").decode()
    path.write_text(json.dumps(payload))
    with pytest.raises(CorruptModelError, match="does not match its checksum"):
        reg.import_file(path)
    with pytest.raises(RegistryError, match="not found"):
        reg.import_file(tmp_path / "absent.json")
    assert [v.version for v in reg.list()] == ["v1"]


def test_concurrent_saves_get_different_versions(client: OpenSearch, prefix: str) -> None:
    ModelRegistry(client, prefix).save(b"seed", _meta(0.4))  # the index exists; the race is on the numbers
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        try:
            registry = ModelRegistry(client, prefix)
            barrier.wait()
            for j in range(3):
                results.append(registry.save(f"blob {i}-{j}".encode(), _meta(0.4)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12 and len(set(results)) == 12
    assert sorted(int(v[1:]) for v in results) == list(range(2, 14))
    blobs = {ModelRegistry(client, prefix).get(v)[1] for v in results}
    assert len(blobs) == 12


def test_delete_keeps_a_tombstone(reg: ModelRegistry) -> None:
    reg.save(b"one", _meta(0.45))
    reg.save(b"two", _meta(0.47))
    reg.promote("v1")
    reg.promote("v2")
    reg.delete("v1")
    assert [v.version for v in reg.list()] == ["v2"]
    assert [v.status for v in reg.list(include_deleted=True)] == ["active", "deleted"]
    with pytest.raises(RegistryError, match="was deleted"):
        reg.get("v1")
    assert reg.save(b"three", _meta(0.45)) == "v3"  # v1's number is not reused
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()  # the only history entry was deleted


def test_an_mlp_version_that_cannot_load_is_never_promoted_or_imported(reg: ModelRegistry, tmp_path: Path) -> None:
    meta = {**_meta(0.5), "kind": "mlp", "metrics": {"test": {"mlp": {"ndcg@10": 0.5}, "engine": {"ndcg@10": 0.4}}}}
    version = reg.save(os.urandom(500), meta)
    with pytest.raises(CorruptModelError, match="not a loadable model artifact"):
        reg.promote(version)
    assert reg.active() is None
    with pytest.raises(RegistryError, match="does not exist"):
        reg.export(version, tmp_path / "missing-folder" / "m.json")
    out = reg.export(version, tmp_path / "m.json")
    with pytest.raises(CorruptModelError, match="not a loadable model artifact"):
        reg.import_file(out)
