"""The ranking config YAML: the README's sample is valid, and mistakes name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fuserec_os.config import load_ranking_config, parse_ranking_config
from fuserec_os.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sample() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    samples = [b for b in blocks if b.startswith("version:")]
    assert len(samples) == 1, "README must hold exactly one ranking config sample"
    return samples[0]


def test_readme_sample_config_is_valid_and_matches_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ranking.yaml"
    path.write_text(readme_sample())
    cfg = load_ranking_config(path)
    assert cfg.source == str(path)
    defaults = parse_ranking_config(None)
    assert cfg.search == defaults.search  # the sample documents the defaults, value for value
    assert cfg.profiles == defaults.profiles
    assert cfg.model == defaults.model and cfg.features == defaults.features
    assert cfg.events.canonical_type("order") == "purchase"
    assert cfg.events.canonical_type("ADD-TO-CART") == "add_to_cart"
    assert cfg.rules.out_of_stock == "demote" and cfg.rules.max_per_brand_first_page == 4
    assert cfg.rules.pins == {"running shoes": ("P000123", None, "P000456")}
    assert cfg.rules.boosts == {"running shoes": {"P000789": 5, "P000042": "top"}}
    exp = cfg.experiments.get("mlp-vs-engine")
    assert exp.mode == "ab" and exp.running and exp.indices == ("products",) and exp.attribution_hours == 24
    assert [(v.name, v.share, v.serves) for v in exp.variants] == [
        ("control", 0.5, "engine order"),
        ("treatment", 0.5, "model active"),
    ]
    assert exp.guardrail is not None and (exp.guardrail.metric, exp.guardrail.max_drop) == ("ctr", 0.05)


def test_changed_boost_is_applied() -> None:
    raw = yaml.safe_load(readme_sample())
    raw["search"]["fields"]["title"] = 5
    cfg = parse_ranking_config(raw, "x.yaml")
    assert dict(cfg.search.fields)["title"] == 5.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"serch": {}}, r"x.yaml: unknown section\(s\) serch"),
        ({"version": 2}, "version 2 is not supported"),
        ({"search": {"max_sise": 10}}, "max_sise"),
        ({"search": {"fields": {"titel": 3}}}, "titel"),
        ({"search": []}, "'search' must be a mapping"),
        ("just text", "expected a mapping"),
        ({"profiles": {"half_life": 3}}, r"profiles\.half_life"),
        ({"profiles": {"weights": {"cart": 2}}}, "unknown cart"),
        ({"profiles": {"half_life_days": 0}}, "must be a number > 0"),
        ({"events": {"type_aliases": {"x": "bogus"}}}, "'bogus' is not an event type"),
        ({"features": ["bm25", "bm52"]}, "bm52"),
        ({"model": {"hiden": [64]}}, "hiden"),
        ({"rules": {"pinz": {}}}, r"x\.yaml: unknown rules setting\(s\) rules\.pinz"),
        ({"rules": {"pins": {"q": ["P1", "P1"]}}}, r"rules\.pins\.q: P1 is pinned twice"),
        ({"model": {"loss": "hinge"}}, "hinge"),
        ({"model": {"min_searches": 50}}, r"model\.min_searches: 50 must be a mapping"),
        ({"model": {"min_searches": {"tset": 5}}}, r"unknown model\.min_searches\.tset .*train, valid, test"),
        ({"model": {"min_searches": {"train": 0}}}, r"model\.min_searches\.train: 0 must be a whole number >= 1"),
        ({"model": {"min_searches": {"valid": 2.5}}}, r"model\.min_searches\.valid: 2\.5 must be a whole number"),
        ({"model": {"min_searches": {"test": True}}}, r"model\.min_searches\.test: True must be a whole number"),
    ],
)
def test_mistakes_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ranking_config(raw, "x.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_ranking_config(path)


def test_set_in_file_tells_file_keys_from_defaults() -> None:
    raw = {
        "search": {"fields": [["title", 4]], "minimum_should_match": None},
        "events": None,
        "profiles": {"weights": {"purchase": 12}},
        "features": ["bm25", "rating"],
    }
    cfg = parse_ranking_config(raw, "x.yaml")
    assert cfg.set_in_file("search", "fields", "title")  # inside a list given whole
    assert cfg.set_in_file("search", "fields")
    assert not cfg.set_in_file("search", "max_size")
    assert not cfg.set_in_file("search", "minimum_should_match")  # null: the default
    assert not cfg.set_in_file("events", "type_aliases", "order")  # a null section: all defaults
    assert cfg.set_in_file("profiles", "weights", "purchase")
    assert not cfg.set_in_file("profiles", "weights", "view")
    assert cfg.set_in_file("features")
    assert not cfg.set_in_file("model", "hidden")
    assert not parse_ranking_config(None).set_in_file("search")
    assert cfg == parse_ranking_config(dict(raw), "x.yaml")  # the raw mapping takes no part in equality


def test_min_searches_defaults_and_partial_settings() -> None:
    assert dict(parse_ranking_config(None).model.min_searches) == {"train": 50, "valid": 20, "test": 20}
    cfg = parse_ranking_config({"model": {"min_searches": {"test": 5}}}, "x.yaml")
    assert dict(cfg.model.min_searches) == {"train": 50, "valid": 20, "test": 5}  # the others keep their defaults
    assert cfg.set_in_file("model", "min_searches", "test") and not cfg.set_in_file("model", "min_searches", "train")
