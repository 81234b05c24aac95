"""The ``experiments`` section of the ranking YAML: valid experiments parse, every mistake names its key."""

from __future__ import annotations

from typing import Any

import pytest

from fuserec_os.config import parse_ranking_config
from fuserec_os.errors import ConfigError
from fuserec_os.experiments.config import ExperimentsConfig


def ab(**overrides: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "variants": {
            "control": {"share": 0.5, "engine": True},
            "treatment": {"share": 0.5, "model_version": "active"},
        }
    }
    exp.update(overrides)
    return exp


def parse(experiments: Any) -> ExperimentsConfig:
    return parse_ranking_config({"experiments": experiments}, "x.yaml").experiments


def test_an_ab_experiment_with_defaults() -> None:
    cfg = parse({"mlp-vs-engine": ab()})
    exp = cfg.get("mlp-vs-engine")
    assert exp.mode == "ab" and exp.state == "running" and exp.indices == ("products",)
    assert exp.attribution_hours == 24.0 and exp.primary_metric == "conversion" and exp.guardrail is None
    assert exp.control.name == "control" and exp.control.engine  # named control: the control
    assert [v.name for v in exp.treatments] == ["treatment"]
    assert exp.hash_salt == "mlp-vs-engine"
    assert exp.control.serves == "engine order" and exp.treatments[0].serves == "model active"


def test_what_a_variant_serves() -> None:
    exp = parse(
        {
            "three": ab(
                variants={
                    "old": {"share": 0.4, "control": True, "model_version": "v3"},
                    "new": {"share": 0.3, "model_version": "v7", "blend": 0.5},
                    "bolder": {"share": 0.3, "blend": 0.9},
                },
                guardrail={"metric": "ctr", "max_drop": 0.05},
                salt="round-2",
                indices=["products", "shop2-products"],
                attribution_hours=2,
            )
        }
    ).get("three")
    assert exp.control.name == "old" and exp.control.serves == "model v3"
    assert [v.serves for v in exp.treatments] == ["model v7, blend 0.5", "model active, blend 0.9"]
    assert exp.guardrail is not None and exp.guardrail.metric == "ctr" and exp.guardrail.max_drop == 0.05
    assert exp.guardrail.confidence == 0.99 and exp.guardrail.auto_stop
    assert exp.hash_salt == "round-2" and exp.attribution_hours == 2.0
    assert exp.applies_to("shop2-products") and exp.applies_to("t1-products", prefix="t1-")
    assert not exp.applies_to("t1-products", prefix="t2-") and not exp.applies_to("catalog")


def test_interleave_mode() -> None:
    exp = parse(
        {"il": {"mode": "interleave", "variants": {"control": {"engine": True}, "mlp": {"model_version": "v2"}}}}
    ).get("il")
    assert exp.primary_metric == "win_rate" and exp.control.share is None and exp.treatments[0].name == "mlp"


def test_no_section_means_no_experiments() -> None:
    assert parse_ranking_config({}).experiments == ExperimentsConfig()
    with pytest.raises(ConfigError, match=r"no experiment 'x' in the ranking config \(configured: none"):
        parse_ranking_config({}).experiments.get("x")


@pytest.mark.parametrize(
    ("experiments", "message"),
    [
        ([1], r"'experiments' must be a mapping"),
        ({"bad name!": ab()}, r"experiments: 'bad name!' is not a valid experiment name"),
        ({"e": ab(mod="ab")}, r"unknown experiments\.e setting\(s\) experiments\.e\.mod; valid keys: mode"),
        ({"e": ab(mode="split")}, r"experiments\.e\.mode: 'split' must be one of ab, interleave"),
        ({"e": ab(state="paused")}, r"experiments\.e\.state: 'paused' must be one of running, stopped"),
        ({"e": ab(attribution_hours=0)}, r"experiments\.e\.attribution_hours: 0 must be a number of hours > 0"),
        ({"e": ab(indices=[])}, r"experiments\.e\.indices: \[\] must be a list of index names"),
        ({"e": ab(indices=["products", "products"])}, r"experiments\.e\.indices: products is listed twice"),
        ({"e": ab(primary_metric="ndcg")}, r"experiments\.e\.primary_metric: 'ndcg' is not a metric of ab mode"),
        ({"e": ab(variants=None)}, r"experiments\.e\.variants: required"),
        ({"e": ab(variants={"control": {"share": 1.0, "engine": True}})}, r"at least two variants"),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True}, "t": {"share": 0.6, "blend": 0.5}})},
            r"experiments\.e\.variants: the shares must sum to 1 \(control 0\.5, t 0\.6 sum to 1\.1\)",
        ),
        (
            {"e": ab(variants={"a": {"share": 0.5, "engine": True}, "b": {"share": 0.5, "blend": 0.5}})},
            r"experiments\.e\.variants: no control: mark one variant with control: true",
        ),
        (
            {
                "e": ab(
                    variants={
                        "a": {"share": 0.5, "engine": True, "control": True},
                        "b": {"share": 0.5, "blend": 0.5, "control": True},
                    }
                )
            },
            r"exactly one variant is the control; a, b all say control: true",
        ),
        (
            {"e": ab(variants={"control": {"engine": True}, "t": {"share": 1.0, "blend": 0.5}})},
            r"experiments\.e\.variants\.control\.share: required in ab mode",
        ),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True}, "t": {"share": 0.5}})},
            r"experiments\.e\.variants\.t: say what the variant serves: engine: true",
        ),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True, "blend": 0.2}, "t": {"share": 0.5}})},
            r"experiments\.e\.variants\.control: engine: true serves engine order, without a model",
        ),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True}, "t": {"share": 0.5, "model_version": 7}})},
            r"experiments\.e\.variants\.t\.model_version: 7 must be 'active' .* or a registry version like v7",
        ),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True}, "t": {"share": 0.5, "blend": 1.5}})},
            r"experiments\.e\.variants\.t\.blend: 1\.5 must be a number in \[0, 1\]",
        ),
        (
            {"e": ab(variants={"control": {"share": 0.5, "engine": True}, "t": {"share": 0.5, "shares": 1}})},
            r"unknown experiments\.e\.variants\.t setting\(s\) experiments\.e\.variants\.t\.shares",
        ),
        (
            {"e": {"mode": "interleave", "variants": {"control": {"share": 0.5, "engine": True}, "t": {"blend": 1}}}},
            r"experiments\.e\.variants\.control\.share: interleave mode shows both variants .* leave share out",
        ),
        (
            {"e": {"mode": "interleave", "variants": {"control": {"engine": True}, "a": {"blend": 1},
                                                      "b": {"blend": 0}}}},
            r"interleave mode mixes exactly two lists",
        ),
        ({"e": ab(guardrail={"metric": "bounce"})}, r"e\.guardrail\.metric: 'bounce' is not a metric of ab mode"),
        ({"e": ab(guardrail={"metric": "ctr", "max_drop": 1})}, r"e\.guardrail\.max_drop: 1 must be below 1"),
        ({"e": ab(guardrail={"metric": "ctr", "min_searches": 0})}, r"min_searches: 0 must be a whole number"),
        ({"e": ab(guardrail={"metric": "ctr", "treshold": 0})}, r"unknown experiments\.e\.guardrail setting\(s\)"),
        (
            {"e": {"mode": "interleave", "variants": {"control": {"engine": True}, "t": {"blend": 1}},
                   "guardrail": {"metric": "ctr"}}},
            r"experiments\.e\.guardrail\.metric: 'ctr' is not a metric of interleave mode \(expected one of win_rate\)",
        ),
        ({"e": ab(salt="")}, r"experiments\.e\.salt: '' must be non-empty text"),
        ({"a": ab(), "b": ab()}, r"experiments\.b: runs on products like experiments\.a; at most one running"),
    ],
)  # fmt: skip
def test_mistakes_name_the_key(experiments: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^x\.yaml: .*" + message):
        parse(experiments)


def test_a_stopped_experiment_may_share_an_index_with_a_running_one() -> None:
    cfg = parse({"old": ab(state="stopped"), "new": ab()})
    assert [e.name for e in cfg.running()] == ["new"]


def test_the_config_command_shows_every_key_of_an_experiment() -> None:
    from fuserec_os.commands.config import ranking_rows

    cfg = parse_ranking_config({"experiments": {"e": ab(guardrail={"metric": "ctr"})}}, "x.yaml")
    rows = {r.key: (r.value, r.source) for r in ranking_rows(cfg)["experiments"]}
    assert rows["experiments.e.mode"] == ("ab", "default")
    assert rows["experiments.e.variants.control.share"] == (0.5, "file")
    assert rows["experiments.e.variants.control.serves"] == ("engine order", "file")
    assert rows["experiments.e.variants.treatment.serves"] == ("model active", "file")
    assert rows["experiments.e.guardrail.metric"] == ("ctr", "file")
    assert rows["experiments.e.guardrail.confidence"] == (0.99, "default")
    none = {r.key: r.value for r in ranking_rows(parse_ranking_config({}))["experiments"]}
    assert none == {"experiments": {}}
