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


def test_worse_than_active_stored_metric_is_refused() -> None:
    d = compare(_m(0.45, 0.40), _m(0.47, 0.40), "ndcg@10", "test", 0.0, active_version="v1")
    assert not d.ok
    assert d.deltas == pytest.approx({"engine": 0.05, "active": -0.02})
    assert "worse than active model v1 0.4700" in d.reason
    assert "stored metrics" in d.reason


def test_candidates_own_evaluation_of_the_active_model_wins() -> None:
    # On its own (newer) test window the candidate measured v1 at 0.41: that is the fair comparison,
    # not v1's stored 0.47 from an older window.
    d = compare(_m(0.45, 0.40, v1=0.41), _m(0.47, 0.40), "ndcg@10", "test", 0.0, active_version="v1")
    assert d.ok
    assert d.deltas["active"] == pytest.approx(0.04)
    assert "candidate's evaluation of v1" in d.reason
    generic = compare(_m(0.45, 0.40, active=0.50), _m(0.40, 0.30), "ndcg@10", "test", 0.0, active_version="v1")
    assert not generic.ok and generic.deltas["active"] == pytest.approx(-0.05)


def test_equal_within_tolerance_is_ok_and_outside_is_not() -> None:
    assert compare(_m(0.40, 0.40), None, "ndcg@10", "test", 0.0).ok  # equal is not worse
    assert compare(_m(0.395, 0.40), _m(0.398, 0.3), "ndcg@10", "test", 0.01, active_version="v1").ok
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
