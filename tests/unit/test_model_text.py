"""'model list' and 'model show' text from stored metadata alone (no engine): readable whatever was recorded."""

from __future__ import annotations

import re

from fuserec_os.commands.model_text import render_version, render_versions
from fuserec_os.rerank.registry import VersionInfo

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _info(**doc: object) -> VersionInfo:
    base = {
        "version": "v7",
        "seq": 7,
        "created_at": "2026-03-01T12:00:00.123456Z",
        "status": "candidate",
        "kind": "mlp",
    }
    return VersionInfo.from_doc({**base, **doc})


def test_missing_indicator_columns_fold_into_their_feature_and_unknown_names_are_kept() -> None:
    text = render_version(_info(features=["bm25", "bm25__missing", "rating", "custom_score"]))
    assert re.search(r"^features:\s+3 \(2 of them with a missing indicator\)$", text, flags=re.M), text
    assert re.search(r"^\s+query_item:\s+bm25$", text, flags=re.M) and "__missing" not in text
    assert re.search(r"^\s+item:\s+rating$", text, flags=re.M)
    assert re.search(r"^\s+other:\s+custom_score$", text, flags=re.M)


def test_nothing_recorded_prints_dashes_not_reprs() -> None:
    text = render_version(_info(status_at=None))
    for key in ("loss", "searches", "dataset", "gate", "features", "config", "metrics", "checksum"):
        assert re.search(rf"^{key}:\s+-$", text, flags=re.M), (key, text)
    assert re.search(rf"^created:\s+{ISO_UTC}$", text, flags=re.M) and "None" not in text
    assert "{" not in text and "[" not in text


def test_other_training_facts_and_nested_config_read_as_text() -> None:
    text = render_version(
        _info(
            training={"window": {"start": "2026-01-01T00:00:00+00:00", "end": 1772366400000}, "shuffled": True},
            config={"model": {"hidden": [64, 32], "weights": {"view": 1.0}}},
        )
    )
    assert re.search(r"^window:\s+start 2026-01-01T00:00:00Z, end 1772366400000$", text, flags=re.M), text
    assert re.search(r"^shuffled:\s+yes$", text, flags=re.M)
    assert re.search(r"^\s+model:\s+hidden 64, 32; weights \(view 1\)$", text, flags=re.M)


def test_long_lists_wrap_under_their_first_item() -> None:
    names = [f"feature_number_{i}" for i in range(12)]
    lines = render_version(_info(features=names)).splitlines()
    other = next(i for i, line in enumerate(lines) if line.lstrip().startswith("other:"))
    assert len(lines[other]) <= 100 and lines[other + 1].startswith(" " * lines[other].index("feature_number_0"))


def test_list_has_a_header_and_aligned_columns() -> None:
    versions = [
        _info(version="v10", training={"loss": "listwise", "searches": {"test": 655, "train": 5210, "valid": 640}}),
        _info(version="v9", status="active", metrics={"test": {"mlp": {"ndcg@10": 0.5}}}),
    ]
    header, *rows = render_versions(versions).splitlines()
    assert header.split()[:5] == ["version", "status", "created", "kind", "loss"]
    for row in rows:
        assert re.fullmatch(ISO_UTC, row[header.index("created") :][:20]), row
    assert "5,210/640/655" in rows[0] and " 0.5000 " in rows[1]
