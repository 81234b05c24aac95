"""``set_search_keys``: the tuner's winner written into the ranking YAML, every other line kept as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fuserec_os.config import load_ranking_config
from fuserec_os.config_file import set_search_keys
from fuserec_os.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
WINNER = {
    "fields": {"title": 1.0, "brand.text": 1.0, "category.text": 2.0, "tags.text": 2.0, "description": 1.0},
    "multi_match_type": "most_fields",
}


def readme_sample() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```yaml\n(version: 1\n.*?)```", text, re.DOTALL)
    assert m
    return m.group(1)


def test_the_readme_sample_keeps_every_other_line_and_its_comments(tmp_path: Path) -> None:
    path = tmp_path / "ranking.yaml"
    before = readme_sample()
    path.write_text(before, encoding="utf-8")
    report = set_search_keys(path, WINNER)
    after = path.read_text(encoding="utf-8")
    assert report.kept_comments and not report.created
    assert report.keys == ("search.fields", "search.multi_match_type")
    cfg = load_ranking_config(path)
    assert dict(cfg.search.fields) == WINNER["fields"] and cfg.search.multi_match_type == "most_fields"
    assert cfg.search.tie_breaker == 0.3 and cfg.rules == load_ranking_config(_write(tmp_path, before)).rules
    removed = [ln for ln in before.splitlines() if ln not in after.splitlines()]
    assert removed == [
        "    title: 3.0",
        "    brand.text: 2.0",
        "    category.text: 1.5",
        "    tags.text: 1.5",
        "  multi_match_type: best_fields  # best_fields | most_fields | cross_fields ('fuserec search tune' picks one)",
    ]
    assert "  fields:                      # BM25 fields and boosts for free text" in after.splitlines()
    assert (
        "  multi_match_type: most_fields  # best_fields | most_fields | cross_fields ('fuserec search tune' picks one)"
        in after
    )
    assert "# features: [bm25, bm25_norm" in after


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "original.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "before",
    [
        "version: 1\nmodel:\n  epochs: 3  # short\n",  # no search section
        "version: 1\nsearch:\n  max_size: 50   # keep me\n# a comment\nmodel: {epochs: 3}\n",  # keys missing
        "version: 1\nsearch: {}\nmodel:\n  epochs: 3\n",
        "version: 1\nsearch:\n    fields: {title: 5}\n    max_size: 50\n",  # 4-space indent, flow-style fields
        "search:\n  fields:\n    title: 5\n\n    description: 1\n\n  # paging\n  max_size: 50\n",
    ],
)
def test_layouts_are_edited_in_place(tmp_path: Path, before: str) -> None:
    path = _write(tmp_path, before)
    report = set_search_keys(path, WINNER)
    assert report.kept_comments, path.read_text()
    after = path.read_text(encoding="utf-8")
    old = yaml.safe_load(before)
    new = yaml.safe_load(after)
    assert {k: v for k, v in new.items() if k != "search"} == {k: v for k, v in old.items() if k != "search"}
    assert new["search"] == {**(old.get("search") or {}), **WINNER}
    for line in before.splitlines():
        if "#" in line:
            assert line.split("#", 1)[1] in after  # every comment survives


def test_a_flow_style_section_is_dumped_whole_and_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1  # mine\nsearch: {max_size: 50}\n")
    report = set_search_keys(path, WINNER)
    assert not report.kept_comments and "comments were dropped" in report.describe()
    cfg = load_ranking_config(path)
    assert cfg.search.max_size == 50 and cfg.search.multi_match_type == "most_fields"


def test_a_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "ranking.yaml"
    report = set_search_keys(path, WINNER)
    assert report.created and "created" in report.describe()
    assert load_ranking_config(path).search.multi_match_type == "most_fields"


def test_an_invalid_result_leaves_the_file_alone(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nsearch:\n  max_size: 50\n")
    with pytest.raises(ConfigError, match="multi_match_type"):
        set_search_keys(path, {"multi_match_type": "phrase"})
    assert path.read_text() == "version: 1\nsearch:\n  max_size: 50\n"
    bad = _write(tmp_path, "search: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        set_search_keys(bad, WINNER)
