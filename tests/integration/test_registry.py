"""Model registry in the cluster: versions, checksums, promotion rules, rollback, export/import, concurrency."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from fuserec_os.index.state import get_state, state_index
from fuserec_os.rerank.registry import (
    ACTIVE_STATE,
    BlobTooLargeError,
    CannotRescore,
    CorruptModelError,
    ModelRegistry,
    PromotionRefused,
    RegistryError,
    VersionInfo,
)

from .conftest import Cli
from .readable import ISO_UTC, assert_readable, odd_times, reprs_in

pytestmark = pytest.mark.integration


SHARED_TEST_SET = {  # the same test searches for every version made by _meta: their numbers compare directly
    "searches": 655,
    "first": "2026-01-25T00:00:00+00:00",
    "last": "2026-01-31T23:00:00+00:00",
    "digest": "5e" * 32,
    "source": "search log 'shop-searches'",
}


def _meta(mlp: float, engine: float = 0.40, *, test_set: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    # kind "blob": these tests store random bytes, which an "mlp" version refuses (not a loadable artifact)
    return {
        "kind": "blob",
        "metrics": {
            "test": {"blob": {"ndcg@10": mlp}, "engine": {"ndcg@10": engine}},
            "valid": {"blob": {"ndcg@10": mlp + 0.01}},
        },
        "config": {"hidden": [64, 32], "lr": 0.001},
        "features": ["bm25", "price_affinity", "brand_affinity"],
        "training": {
            "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
            "rows": 1234,
            "test_from": (test_set or SHARED_TEST_SET)["first"],
            "test_set": test_set or SHARED_TEST_SET,
        },
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


ONE_SEARCH = {  # what a model trained on 10 events was tested on (issue 8)
    "searches": 1,
    "first": "2024-05-03T10:00:04+00:00",
    "last": "2024-05-03T10:00:04+00:00",
    "digest": "01" * 32,
    "source": "events (no search log)",
}
PROPER = {
    "searches": 701,
    "first": "2024-04-11T19:47:51.250000+00:00",
    "last": "2024-04-14T23:58:10+00:00",
    "digest": "02" * 32,
    "source": "search log 'shop-searches'",
}


def test_promotion_never_compares_numbers_from_different_test_sets(reg: ModelRegistry) -> None:
    assert reg.save(b"tiny", _meta(0.6607, 0.5, test_set=ONE_SEARCH)) == "v1"
    first = reg.promote("v1")  # no active model: only engine order, on v1's own test search
    assert first.decision is not None
    assert first.decision.reason.startswith("ndcg@10 on v1's 1 test search (2024-05-03T10:00:04Z): candidate v1 0.6607")
    assert "engine order 0.5000 (+0.1607) on the same searches" in first.decision.reason

    # v2 was trained properly elsewhere (imported, or before v1 was promoted): its metrics hold no score of v1
    assert reg.save(b"good", _meta(0.5031, 0.4330, test_set=PROPER)) == "v2"
    with pytest.raises(PromotionRefused) as refused:
        reg.promote("v2")
    message = str(refused.value)
    assert "0.1576" not in message and "worse than active" not in message  # the old, meaningless verdict
    assert "v2's 701 test searches (2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z)" in message
    assert "v1's 1 test search (2024-05-03T10:00:04Z)" in message and "different test set" in message
    assert "fuserec model evaluate v2" in message and "--force" in message
    assert_readable(message)
    assert reg.active_version() == "v1"

    # with a way to score the active model on v2's test searches, the comparison is like with like
    asked: list[tuple[str, str]] = []

    def score_active(candidate: VersionInfo, active: VersionInfo) -> dict[str, float]:
        asked.append((candidate.version, active.version))
        return {"ndcg@10": 0.4870, "mrr": 0.41}

    promoted = reg.promote("v2", rescore=score_active)
    assert asked == [("v2", "v1")] and promoted.changed and not promoted.forced
    assert promoted.decision is not None and promoted.decision.deltas["active"] == pytest.approx(0.0161)
    reason = promoted.decision.reason
    assert reason.startswith("ndcg@10 on v2's 701 test searches (2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z): ")
    assert "candidate v2 0.5031" in reason
    assert "active model v1 0.4870 (+0.0161) on the same searches, scored now" in reason
    assert reg.active_version() == "v2"


def test_when_the_active_model_cannot_be_scored_the_refusal_says_why(reg: ModelRegistry) -> None:
    reg.save(b"one", _meta(0.45, test_set=ONE_SEARCH))
    reg.promote("v1")
    reg.save(b"two", _meta(0.50, test_set=PROPER))

    def cannot(candidate: VersionInfo, active: VersionInfo) -> dict[str, float]:
        raise CannotRescore(f"the searches {candidate.version} was tested on are no longer stored")

    with pytest.raises(PromotionRefused, match="the searches v2 was tested on are no longer stored"):
        reg.promote("v2", rescore=cannot)
    forced = reg.promote("v2", force=True, rescore=cannot)
    assert forced.changed and forced.forced and forced.decision is not None and not forced.decision.ok
    assert "different test set" in forced.decision.reason and "active" not in forced.decision.deltas


def test_the_promote_command_names_the_test_sets(cli: Cli, reg: ModelRegistry) -> None:
    reg.save(b"one", _meta(0.45, test_set=ONE_SEARCH))
    accepted = cli("model", "promote", "v1").stdout
    assert "promoted v1" in accepted and "on v1's 1 test search (2024-05-03T10:00:04Z)" in accepted
    assert_readable(accepted)
    reg.save(b"two", _meta(0.50, test_set=PROPER))
    refused = cli("model", "promote", "v2", ok=False)
    assert refused.exit_code == 9, refused.stderr
    # a 'blob' version cannot be scored on another test set: say so, and what to do
    assert "v1 is a 'blob' model" in refused.stderr and "different test set" in refused.stderr
    assert "v2's 701 test searches" in refused.stderr and "v1's 1 test search" in refused.stderr
    assert_readable(refused.stderr)
    same = _meta(0.46)  # v3 and v4 share their test searches: their stored numbers compare directly
    reg.save(b"three", same)
    reg.save(b"four", _meta(0.47))
    cli("model", "promote", "v3", "--force")
    shown = json.loads(cli("model", "promote", "v4", "--json").stdout)
    assert shown["changed"] and "active model v3 0.4600 (+0.0100) on the same test searches" in shown["reason"]
    assert "v4's 655 test searches (2026-01-25T00:00:00Z .. 2026-01-31T23:00:00Z)" in shown["reason"]


def test_a_score_recorded_for_another_model_of_the_same_name_is_not_used(reg: ModelRegistry) -> None:
    reg.save(b"one", _meta(0.60, test_set=ONE_SEARCH))
    reg.promote("v1")
    # exported from another cluster, where 'v1' was another model: its record of "v1" is not this v1's score
    other = _meta(0.50, test_set=PROPER)
    other["metrics"]["test"]["v1"] = {"ndcg@10": 0.30}
    other["training"]["active_at_training"] = {"version": "v1", "blob_sha256": "0" * 64}
    reg.save(b"two", other)
    with pytest.raises(PromotionRefused, match="different test set"):
        reg.promote("v2")
    # the same record made in this registry, of this very v1, is the comparison on the same searches
    mine = _meta(0.50, test_set=PROPER)
    mine["metrics"]["test"]["v1"] = {"ndcg@10": 0.30}
    mine["training"]["active_at_training"] = {"version": "v1", "blob_sha256": reg.info("v1").blob_sha256}
    reg.save(b"three", mine)
    done = reg.promote("v3")
    assert done.decision is not None and done.changed
    assert "active model v1 0.3000 (+0.2000) on the same searches, scored when v3 was trained" in done.decision.reason


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


def _trained_meta(ndcg: float, engine: float = 0.40) -> dict[str, Any]:
    """Meta shaped like what 'model train' stores (train_job.run_training), on a blob registry tests can promote."""
    scores = {"mrr": 0.35, "hr@10": 0.7, "auc": 0.6, "mse": None}
    return {
        "kind": "blob",
        "metrics": {
            "test": {
                "engine": {"ndcg@10": engine, **scores},
                "blob": {"ndcg@10": ndcg, **scores},
                "v0": {"ndcg@10": engine + 0.01, **scores},  # the model active at training time
            },
            "valid": {"engine": {"ndcg@10": engine, **scores}, "blob": {"ndcg@10": ndcg + 0.01, **scores}},
        },
        "config": {
            "model": {"hidden": [64, 32], "dropout": 0.1, "loss": "pointwise", "seed": 3},
            "profiles": {"weights": {"view": 1.0, "click": 3.0}, "half_life_days": 14.0},
        },
        "features": ["bm25", "engine_rank", "q_click_rate", "log_price", "rating", "user_history", "brand_affinity"],
        "training": {
            "searches": {"train": 5210, "valid": 640, "test": 655},
            "rows": 312480,
            "positives": 20544,
            "features": 14,
            "valid_from": "2026-03-01T00:00:00+00:00",
            "test_from": "2026-03-08T12:30:00.250000+00:00",
            "test_set": {
                "searches": 655,
                "first": "2026-03-08T12:30:00.250000+00:00",
                "last": "2026-03-14T21:00:00.500000+00:00",
                "digest": "5e" * 32,
                "source": "search log 'shop-searches'",
            },
            "events": 48000,
            "products": 600,
            "loss": "pointwise",
            "gate": {
                "alpha_no_history": 0.0,
                "alpha_light": 0.3,
                "alpha_heavy": 0.7,
                "light_min_events": 1,
                "heavy_min_events": 20,
            },
        },
        "code_version": "0.1.0+test",
    }


def test_the_readability_checks_can_fail() -> None:
    assert reprs_in("searches {'train': 5}") == ["{'"] and reprs_in("loss None") == ["None"]
    assert odd_times("at 2026-03-01 12:00:00+00:00 and 2026-03-01T12:00:00.123Z, 2026-03-01") == [
        "2026-03-01 12:00:00+00:00",
        "2026-03-01T12:00:00.123Z",
        "2026-03-01",
    ]
    assert odd_times("created 2026-03-01T12:00:00Z") == []


def test_model_list_and_show_read_as_text(cli: Cli, reg: ModelRegistry, tmp_path: Path) -> None:
    assert reg.save(b"first", _trained_meta(0.45)) == "v1"
    reg.promote("v1")
    assert reg.save(b"bare", {"kind": "blob"}) == "v2"  # nothing recorded: every column shows "-"
    v3 = reg.import_file(reg.export("v1", tmp_path / "v1.json"))
    assert reg.save(b"gone", {"kind": "blob"}) == "v4"
    reg.delete("v4")

    listed = cli("model", "list").stdout
    assert_readable(listed)
    header, *rows = listed.splitlines()
    assert header.split()[:3] == ["version", "status", "created"] and "NDCG@10" in header and "loss" in header
    assert [r.split()[0] for r in rows] == [v3, "v2", "v1"]  # deleted versions are not listed
    created_at = header.index("created")
    for row in rows:  # aligned: every time starts under its header
        assert ISO_UTC.fullmatch(row[created_at : created_at + 20]), row
    v1 = next(r for r in rows if r.startswith("v1 "))
    assert "active" in v1 and "pointwise" in v1 and "0.4500" in v1 and "+0.0500" in v1 and "5,210/640/655" in v1
    v2 = next(r for r in rows if r.startswith("v2 "))
    assert "candidate" in v2 and re.search(r"pointwise|0\.\d{4}", v2) is None and " - " in v2

    shown = cli("model", "show", "v1").stdout
    assert_readable(shown)
    fields = dict(re.findall(r"^(\w[\w ]*):[ \t]+(.*)$", shown, flags=re.M))
    assert fields["version"] == "v1" and fields["status"].startswith("active")
    assert ISO_UTC.fullmatch(fields["created"]) and fields["loss"] == "pointwise"
    assert fields["code version"] == "0.1.0+test" and "sha256" in fields["checksum"]
    assert "train 5,210, valid 640, test 655" in shown
    assert "valid from 2026-03-01T00:00:00Z, test from 2026-03-08T12:30:00Z" in shown
    assert fields["test set"] == (
        "655 searches, 2026-03-08T12:30:00Z .. 2026-03-14T21:00:00Z; search log 'shop-searches'; digest 5e5e5e5e5e5e"
    ), shown
    assert re.search(r"none 0\.0+, light 0\.30*.*heavy 0\.70*", fields["gate"]), fields["gate"]
    assert fields["features"].startswith("7 ") and "each has a missing indicator" in fields["features"]
    assert re.search(r"^\s+query_item:\s+bm25, engine_rank$", shown, flags=re.M)
    assert re.search(r"^\s+cross:\s+brand_affinity$", shown, flags=re.M)
    config = re.search(r"^\s+model:\s+(.*)$", shown, flags=re.M)
    assert config and {"hidden 64, 32", "dropout 0.1", "loss pointwise", "seed 3"} == set(config[1].split("; "))
    assert re.search(r"^\s+test\s+ndcg@10\s+mrr\s+hr@10\s+auc\s+mse$", shown, flags=re.M), shown
    assert re.search(r"^\s+engine\s+0\.4000\s+0\.3500\s+0\.7000\s+0\.6000\s+-$", shown, flags=re.M), shown
    assert re.search(r"^\s+v0 \(active at training\)\s+0\.4100\s", shown, flags=re.M), shown

    imported = cli("model", "show", v3).stdout
    assert_readable(imported)
    assert re.search(r"^imported from:\s+v1 .*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", imported, flags=re.M), imported
    bare = cli("model", "show", "v2").stdout
    assert_readable(bare)
    assert re.search(r"^loss:\s+-$", bare, flags=re.M) and re.search(r"^metrics:\s+-$", bare, flags=re.M)
    deleted = cli("model", "show", "v4").stdout
    assert_readable(deleted)
    assert re.search(r"^status:\s+deleted since \S+Z$", deleted, flags=re.M) and "blob dropped" in deleted
