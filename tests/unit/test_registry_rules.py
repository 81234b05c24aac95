"""Promotion rule (registry.compare) and the pure helpers of the model registry: no engine needed."""

from __future__ import annotations

import subprocess

import pytest

from fuserec_os import __version__
from fuserec_os.rerank import registry
from fuserec_os.rerank.registry import CorruptModelError, PromotionRefused, compare, metric_value


def _m(mlp: float | None = None, engine: float | None = None, split: str = "test", **others: float) -> dict:
    by_method: dict = {}
    if mlp is not None:
        by_method["mlp"] = {"ndcg@10": mlp}
    if engine is not None:
        by_method["engine"] = {"ndcg@10": engine}
    for key, value in others.items():
        by_method[key] = {"ndcg@10": value}
    return {split: by_method}


def test_better_than_engine_without_active_is_ok() -> None:
    d = compare(_m(0.42, 0.40), None, "ndcg@10", "test", 0.0)
    assert d.ok
    assert d.deltas == pytest.approx({"engine": 0.02})
    assert "engine order 0.4000" in d.reason


def test_worse_than_engine_is_refused_with_the_gap() -> None:
    d = compare(_m(0.38, 0.40), None, "ndcg@10", "test", 0.0)
    assert not d.ok
    assert d.deltas == pytest.approx({"engine": -0.02})
    assert "0.0200 worse than engine order" in d.reason


def test_worse_than_active_stored_metric_on_the_same_test_set_is_refused() -> None:
    d = compare(_m(0.45, 0.40), _m(0.47, 0.40), "ndcg@10", "test", 0.0, active_version="v1", same_set=True)
    assert not d.ok
    assert d.deltas == pytest.approx({"engine": 0.05, "active": -0.02})
    assert "worse than active model v1 0.4700" in d.reason
    assert "stored" in d.reason and "same test searches" in d.reason


V1_SET = "v1's 1 test search (2024-05-03T10:00:04Z)"
V2_SET = "v2's 701 test searches (2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z)"


def test_stored_metrics_from_a_different_test_set_are_never_compared() -> None:
    # issue 8: a model tested on 1 search (0.6607) made a properly trained one (0.5031 on 701 searches) look
    # 0.1576 worse. Numbers from different test sets say nothing about which model is better.
    d = compare(
        _m(0.5031, 0.4330),
        _m(0.6607, 0.5000),
        active_version="v1",
        candidate_version="v2",
        candidate_set=V2_SET,
        active_set=V1_SET,
    )
    assert not d.ok
    assert "active" not in d.deltas and "worse than active" not in d.reason and "0.1576" not in d.reason
    assert "different test set" in d.reason and V1_SET in d.reason and V2_SET in d.reason
    assert "candidate v2 0.5031" in d.reason and "v1's 0.6607" in d.reason
    assert "fuserec model evaluate v2" in d.reason and "fuserec model evaluate v1" in d.reason
    # why the active model could not be scored on the candidate's searches is part of the message
    why = compare(_m(0.5031, 0.4330), _m(0.6607, 0.5), active_version="v1", unscored="v1 is not an mlp model")
    assert not why.ok and "v1 is not an mlp model" in why.reason
    # not knowing whether the sets are the same is the same as knowing they differ
    unknown = compare(_m(0.45, 0.40), _m(0.40, 0.40), active_version="v1")
    assert not unknown.ok and "active" not in unknown.deltas and "different test set" in unknown.reason


def test_every_number_says_which_test_set_it_comes_from() -> None:
    own = compare(_m(0.5031, 0.4330, v1=0.4870), _m(0.6607, 0.5), active_version="v1", candidate_version="v2",
                  candidate_set=V2_SET, active_set=V1_SET)  # fmt: skip
    assert own.ok, own.reason
    assert own.reason.startswith(f"ndcg@10 on {V2_SET}: candidate v2 0.5031")
    assert "engine order 0.4330 (+0.0701) on the same searches" in own.reason
    assert "active model v1 0.4870 (+0.0161) on the same searches, scored when v2 was trained" in own.reason
    assert V1_SET not in own.reason  # v1's own (other) test set plays no part
    now = compare(_m(0.5031, 0.4330), _m(0.6607, 0.5), active_version="v1", candidate_version="v2",
                  candidate_set=V2_SET, active_set=V1_SET, rescored={"ndcg@10": 0.5100})  # fmt: skip
    assert not now.ok and now.deltas["active"] == pytest.approx(-0.0069)
    assert "0.0069 worse than active model v1 0.5100 (-0.0069) on the same searches, scored now" in now.reason
    same = compare(_m(0.5031, 0.4330), _m(0.5000, 0.4330), active_version="v1", candidate_version="v2",
                   candidate_set=V2_SET, active_set=V2_SET.replace("v2's", "v1's"), same_set=True)  # fmt: skip
    assert same.ok and "active model v1 0.5000 (+0.0031) on the same test searches (v1's stored score)" in same.reason
    refused = compare(_m(0.42, 0.43), None, candidate_version="v2", candidate_set=V2_SET)
    assert not refused.ok and refused.reason.startswith(f"ndcg@10 on {V2_SET}: candidate v2 0.4200")


def test_candidates_own_evaluation_of_the_active_model_wins() -> None:
    # On its own (newer) test window the candidate measured v1 at 0.41: that is the fair comparison,
    # not v1's stored 0.47 from an older window.
    d = compare(_m(0.45, 0.40, v1=0.41), _m(0.47, 0.40), "ndcg@10", "test", 0.0, active_version="v1")
    assert d.ok
    assert d.deltas["active"] == pytest.approx(0.04)
    assert "active model v1 0.4100 (+0.0400) on the same searches, scored when the candidate was trained" in d.reason
    generic = compare(_m(0.45, 0.40, active=0.50), _m(0.40, 0.30), "ndcg@10", "test", 0.0, active_version="v1")
    assert not generic.ok and generic.deltas["active"] == pytest.approx(-0.05)


def test_equal_within_tolerance_is_ok_and_outside_is_not() -> None:
    assert compare(_m(0.40, 0.40), None, "ndcg@10", "test", 0.0).ok  # equal is not worse
    assert compare(_m(0.395, 0.40), _m(0.398, 0.3), "ndcg@10", "test", 0.01, active_version="v1", same_set=True).ok
    assert not compare(_m(0.385, 0.40), None, "ndcg@10", "test", 0.01).ok


def test_missing_metrics_give_a_clear_reason() -> None:
    d = compare({}, None, "ndcg@10", "test", 0.0)
    assert not d.ok and "its test metrics have no ndcg@10 for mlp" in d.reason
    d = compare(_m(0.4), None, "ndcg@10", "test", 0.0)
    assert not d.ok and "no engine-order baseline" in d.reason
    d = compare(_m(0.45, 0.40), {"valid": {}}, "ndcg@10", "test", 0.0, active_version="v1")
    assert not d.ok and "no ndcg@10 on test for the active model v1" in d.reason
    d = compare(_m(0.45, 0.40, split="valid"), None, "ndcg@10", "test", 0.0)
    assert not d.ok and "candidate has no ndcg@10 on test" in d.reason
    d = compare(_m(0.45, 0.40), None, "mrr", "test", 0.0)
    assert not d.ok and "no mrr for mlp" in d.reason


def test_reasons_read_as_text() -> None:
    for d in (
        compare({}, None),
        compare(_m(0.4), None),
        compare(_m(0.45, 0.40), {"valid": {}}, active_version="v1"),
        compare(_m(0.45, 0.40, v1=0.41), _m(0.47, 0.40), active_version="v1"),
        compare(_m(0.45, 0.40), _m(0.47, 0.40), active_version="v1"),
        compare(_m(0.45, 0.40), _m(0.47, 0.40), active_version="v1", same_set=True),
        compare(_m(0.45, 0.40), _m(0.47, 0.40), active_version="v1", rescored={"ndcg@10": 0.4}, unscored="x"),
    ):
        assert "['" not in d.reason and "None" not in d.reason, d.reason


def test_other_split_metric_and_method() -> None:
    metrics = {"valid": {"gbdt": {"mrr": 0.3}, "engine": {"mrr": 0.2}}}
    assert compare(metrics, None, "mrr", "valid", 0.0, candidate_method="gbdt").ok
    assert not compare(metrics, None, "mrr", "valid", 0.0).ok  # no 'mlp' scores


def test_metric_value_rejects_non_numbers() -> None:
    assert metric_value({"t": {"m": {"x": 1}}}, "t", "m", "x") == 1.0
    assert metric_value({"t": {"m": {"x": True}}}, "t", "m", "x") is None
    assert metric_value({"t": {"m": {"x": float("nan")}}}, "t", "m", "x") is None
    assert metric_value({"t": {"m": {"x": "0.4"}}}, "t", "m", "x") is None
    assert metric_value(None, "t", "m", "x") is None


def test_promotion_refused_exit_code() -> None:
    assert PromotionRefused.exit_code == 9


def test_blob_chunks_round_trip_and_corruption_detected() -> None:
    blob = bytes(range(256)) * (registry.BLOB_CHUNK_BYTES // 256 + 3)  # just over one chunk
    chunks = registry._chunks(blob)
    assert len(chunks) == 2
    assert registry._decode(chunks, "v1") == blob
    with pytest.raises(CorruptModelError, match="not valid base64"):
        registry._decode(["@@@"], "v1")
    with pytest.raises(CorruptModelError, match="does not match its checksum"):
        registry._verify(blob[:-1], registry.hashlib.sha256(blob).hexdigest(), len(blob), "v1")


def test_meta_is_validated() -> None:
    with pytest.raises(registry.RegistryError, match="unknown model meta key"):
        registry._normalise_meta({"kind": "mlp", "metric": {}})
    with pytest.raises(registry.RegistryError, match="needs 'kind'"):
        registry._normalise_meta({})
    out = registry._normalise_meta({"kind": "mlp", "features": ("a", "b"), "code_version": "x"})
    assert out == {
        "kind": "mlp",
        "metrics": {},
        "config": {},
        "training": {},
        "features": ["a", "b"],
        "code_version": "x",
    }


def test_code_version_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert registry.code_version() == __version__


def test_code_version_with_git() -> None:
    assert registry.code_version().startswith(__version__)


def test_evaluation_set_identity_and_description() -> None:
    from fuserec_os.rerank.evaluation_set import EvaluationSet

    recorded = {
        "test_from": "2024-04-11T19:47:51.123000+00:00",
        "searches": {"train": 1787, "valid": 316, "test": 701},
        "test_set": {
            "searches": 701,
            "first": "2024-04-11T19:47:51.123000+00:00",
            "last": "2024-04-14T23:58:10.500000+00:00",
            "digest": "ab" * 32,
            "source": "search log 'shop-searches'",
        },
    }
    held = EvaluationSet.of(recorded)
    assert held is not None
    assert held.describe("v3") == "v3's 701 test searches (2024-04-11T19:47:51Z .. 2024-04-14T23:58:10Z)"
    assert held.same_as(EvaluationSet.of(recorded))
    assert not held.same_as(EvaluationSet.of({**recorded, "test_set": {**recorded["test_set"], "digest": "cd" * 32}}))
    # an older version recorded only where its test period began and how many searches it held
    old = EvaluationSet.of({"test_from": "2024-05-03T10:00:04+00:00", "searches": {"test": 1}})
    assert old is not None and old.describe("v1") == "v1's 1 test search (from 2024-05-03T10:00:04Z)"
    assert old.same_as(EvaluationSet.of({"test_from": "2024-05-03T10:00:04+00:00", "searches": {"test": 1}}))
    assert not old.same_as(held)  # one with a digest, one without: not known to be the same
    assert EvaluationSet.of({}) is None and EvaluationSet.describe_of(None, "v2") == "v2's test searches (not recorded)"
