"""The proxy's experiment router without an engine: which ranker each variant gets, stops, versions a variant
names that are not loaded, and the background guardrail check (fakes for the cluster reads)."""

from __future__ import annotations

from typing import Any

from fuserec_os.experiments.assign import assign
from fuserec_os.experiments.config import ExperimentsConfig
from fuserec_os.rerank.stage import RerankStage, StageInput
from fuserec_os.serve.experiments import ExperimentRouter

from .test_rerank_stage import NOW, hits, kinetix_fan, model


def _config(**treatment: Any) -> ExperimentsConfig:
    variants = {"control": {"share": 0.5, "control": True, "engine": True}, "treatment": {"share": 0.5, **treatment}}
    return ExperimentsConfig.from_dict({"exp": {"variants": variants}})


def _router(config: ExperimentsConfig, stopped: set[str] | None = None, loader: Any = None) -> ExperimentRouter:
    return ExperimentRouter(config, "p-", stopped_reader=lambda names: set(stopped or ()), loader=loader)


def _user_in(config: ExperimentsConfig, variant: str) -> str:
    exp = config.get("exp")
    return next(u for u in (f"u{i}" for i in range(500)) if assign(exp, u).variant.name == variant)  # type: ignore[union-attr]


def _input(user: str) -> StageInput:
    return StageInput("socks", hits(), size=5, user_id=user, profile=kinetix_fan(), now=NOW)


def test_control_ranks_by_engine_order_and_treatment_by_the_model() -> None:
    config = _config(model_version="active")
    router, base = _router(config), RerankStage(model())
    control = router.route("p-products", _user_in(config, "control"), None, base, "r1")
    treatment = router.route("p-products", _user_in(config, "treatment"), None, base, "r2")
    assert control is not None and treatment is not None
    c = control.ranker(_input("x"), 100)
    t = treatment.ranker(_input("x"), 100)
    assert c.fallback == "variant_engine" and not c.applied and [h.id for h in c.hits] == [f"P{i}" for i in range(5)]
    assert t.applied and t.fallback is None and [h.id for h in t.hits] != [h.id for h in c.hits]
    assert control.info() == {"experiment": "exp", "variant": "control"}


def test_a_blend_of_zero_keeps_engine_order_with_the_model_applied() -> None:
    config = _config(blend=0.0)
    got = _router(config).route("p-products", _user_in(config, "treatment"), None, RerankStage(model()), "r")
    assert got is not None
    result = got.ranker(_input("x"), 100)
    assert result.applied and [h.id for h in result.hits] == [f"P{i}" for i in range(5)]


def test_a_version_not_loaded_serves_engine_order_and_says_why() -> None:
    config = _config(model_version="v9")
    router = _router(config, loader=lambda version: (_ for _ in ()).throw(KeyError(f"no version {version}")))
    router.check()
    assert "v9" in router.refused
    got = router.route("p-products", _user_in(config, "treatment"), None, RerankStage(model()), "r")
    assert got is not None
    result = got.ranker(_input("x"), 100)
    assert result.fallback == "no_model" and "model v9 of variant treatment is unavailable" in result.notes[0]


def test_a_loaded_version_serves_that_model() -> None:
    config = _config(model_version="v9")
    loaded = model(weight=-5.0)  # dislikes the fan's brand: a visibly different order from the active model's
    router = _router(config, loader=lambda version: loaded)
    router.check()
    assert router.pinned["v9"] is loaded
    got = router.route("p-products", _user_in(config, "treatment"), None, RerankStage(model()), "r")
    assert got is not None
    pinned = got.ranker(_input("x"), 100)
    active = RerankStage(model()).run(_input("x"))
    assert pinned.applied and [h.id for h in pinned.hits] != [h.id for h in active.hits]


def test_no_experiment_no_id_or_a_stopped_one_route_nothing() -> None:
    config = _config(model_version="active")
    base = RerankStage(model())
    assert _router(ExperimentsConfig()).route("p-products", "u1", None, base, "r") is None
    assert _router(config).route("p-other", "u1", None, base, "r") is None  # the experiment covers products only
    assert _router(config).route("p-products", None, None, base, "r") is None
    stopped = _router(config, stopped={"exp"})
    stopped.check()
    assert not stopped.covers("p-products") and stopped.route("p-products", "u1", None, base, "r") is None
    by_session = _router(config).route("p-products", None, "s-1", base, "r")
    assert by_session is not None and by_session.assignment.unit == "session"


def test_interleaving_mixes_both_orders_with_teams() -> None:
    raw = {"mix": {"mode": "interleave", "variants": {"engine": {"control": True, "engine": True},
                                                      "model": {"model_version": "active"}}}}  # fmt: skip
    config = ExperimentsConfig.from_dict(raw)
    router = ExperimentRouter(config, "p-", stopped_reader=lambda names: set())
    got = router.route("p-products", "u1", None, RerankStage(model()), "req-7")
    assert got is not None and got.variant_name == "interleaved"
    result = got.ranker(_input("u1"), 100)
    ids = [h.id for h in result.order]
    assert sorted(ids) == sorted(h.id for h in hits()) and [h.new_rank for h in result.order] == list(range(1, 13))
    fields = got.impression([h.id for h in result.hits])
    assert fields["experiment"] == "mix" and len(fields["teams"]) == 5 and set(fields["teams"]) <= {"engine", "model"}


def test_the_guardrail_check_runs_only_with_a_guardrail_and_never_raises() -> None:
    plain = _router(_config(model_version="active"))
    assert plain.guardrail_check is None
    raw = {"g": {"variants": {"control": {"share": 0.5, "control": True, "engine": True},
                              "treatment": {"share": 0.5, "blend": 0.5}}, "guardrail": {"metric": "ctr"}}}  # fmt: skip
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ConnectionError("cluster away")

    guarded = ExperimentRouter(
        ExperimentsConfig.from_dict(raw), "p-", stopped_reader=lambda names: set(), guardrail_check=failing
    )
    guarded.check_guardrails()
    assert calls == [1] and guarded.last_error is not None and "cluster away" in guarded.last_error
