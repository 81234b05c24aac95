"""The rerank stage without an engine: fallbacks, the blended order, paging helpers, explanations in words, and the
behavioural candidates read from query statistics. A tiny NumpyMLPScorer with chosen weights stands in for a
trained model; a scorer that raises stands in for a broken one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fuserec_os.errors import ConfigError
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.profiles.query_stats import QueryStats
from fuserec_os.rerank.artifact import ModelArtifact
from fuserec_os.rerank.blend import Gate
from fuserec_os.rerank.explain import describe
from fuserec_os.rerank.pipeline import behavioural_hits, tail_hits, window_body
from fuserec_os.rerank.scorer import NumpyMLPScorer
from fuserec_os.rerank.settings import RerankSettings
from fuserec_os.rerank.stage import FALLBACKS, EngineHit, LoadedModel, RerankStage, StageInput, page_slice
from fuserec_os.search.request import SearchConfig, SearchRequest

FEATURES = ("bm25_norm", "brand_affinity")
COLUMNS = (*FEATURES, *(f"{f}__missing" for f in FEATURES))
NOW = pd.Timestamp("2024-05-01T12:00:00Z")


def products(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [f"P{i}" for i in range(n)],
            "title": [f"sock {i}" for i in range(n)],
            "brand": ["Kinetix" if i % 3 == 2 else "Woolly" for i in range(n)],
            "category": ["clothing > socks"] * n,
            "price": [10.0 + i for i in range(n)],
        }
    )


def model(weight: float = 5.0, gate: Gate | None = None) -> LoadedModel:
    kernel = np.zeros((len(COLUMNS), 1), dtype=np.float32)
    kernel[COLUMNS.index("brand_affinity"), 0] = weight
    scorer = NumpyMLPScorer([kernel, np.zeros(1)], np.zeros(len(COLUMNS)), np.ones(len(COLUMNS)), COLUMNS, "linear")
    artifact = ModelArtifact(scorer, FEATURES, gate or Gate(0.0, 0.9, 0.9))
    return LoadedModel.build("v7", artifact, products())


def kinetix_fan() -> UserProfile:
    return UserProfile(
        user_id="U1",
        as_of=NOW,
        first_seen=NOW - pd.Timedelta(days=3),
        last_seen=NOW - pd.Timedelta(days=1),
        n_events=5,
        counts={"purchase": 5},
        items={},
        recent=[],
        brands={"Kinetix": 4.0, "Woolly": 1.0},
    )


def hits(n: int = 12) -> list[EngineHit]:
    src = products(n).to_dict("records")
    return [EngineHit(f"P{i}", float(20 - i), src[i]) for i in range(n)]


def stage(**settings: object) -> RerankStage:
    return RerankStage(model(), RerankSettings(**settings), describe=describe)  # type: ignore[arg-type]


def test_a_user_who_likes_a_brand_sees_it_first_and_an_unknown_user_keeps_engine_order() -> None:
    got = stage().run(StageInput("socks", hits(), size=5, user_id="U1", profile=kinetix_fan(), now=NOW))
    assert got.applied and got.fallback is None and got.model_version == "v7"
    assert [h.id for h in got.hits[:4]] == ["P2", "P5", "P8", "P11"]  # the Kinetix socks, in engine order
    assert got.hits[0].engine_rank == 3 and got.hits[0].new_rank == 1
    cold = stage().run(StageInput("socks", hits(), size=5, user_id="U9", now=NOW))
    assert cold.applied and cold.fallback == "no_profile" and [h.id for h in cold.hits] == [f"P{i}" for i in range(5)]
    anon = stage().run(StageInput("socks", hits(), size=5, now=NOW))
    assert anon.fallback == "no_user" and [h.id for h in anon.hits] == [f"P{i}" for i in range(5)]


class Broken:
    """A scorer that fails as a corrupt or mismatched model would."""

    version = "broken"
    feature_names = COLUMNS

    def predict(self, X: np.ndarray) -> np.ndarray:
        raise ValueError("feature matrix has 4 columns but the scorer expects 40")

    def explain(self, X: np.ndarray) -> np.ndarray:
        raise AssertionError("never reached")

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("make", "inp_extra", "reason"),
    [
        (lambda: RerankStage(None), {}, "no_model"),
        (lambda: stage(enabled=False), {}, "disabled"),
        (lambda: stage(budget_ms=0.0), {}, "budget"),
        (lambda: stage(budget_ms=5.0), {"elapsed_ms": 6.0}, "budget"),
    ],
)
def test_fallbacks_return_engine_order_and_say_why(make: object, inp_extra: dict[str, object], reason: str) -> None:
    s = make()  # type: ignore[operator]
    got = s.run(StageInput("socks", hits(), size=5, user_id="U1", profile=kinetix_fan(), now=NOW, **inp_extra))
    assert not got.applied and got.fallback == reason and reason in FALLBACKS
    assert [h.id for h in got.hits] == [f"P{i}" for i in range(5)]
    assert all(h.model_score is None for h in got.hits)


def test_a_model_that_raises_is_a_model_error_with_the_reason_never_an_exception() -> None:
    m = model()
    m.artifact.scorer = Broken()  # type: ignore[assignment]
    got = RerankStage(m).run(StageInput("socks", hits(), size=5, user_id="U1", profile=kinetix_fan(), now=NOW))
    assert got.fallback == "model_error" and not got.applied and "expects 40" in got.notes[0]
    assert [h.id for h in got.hits] == [f"P{i}" for i in range(5)]


def test_a_broken_contract_is_reported_not_raised() -> None:
    dup = [*hits(3), hits(3)[0]]
    got = stage().run(StageInput("socks", dup, size=2, now=NOW))
    assert got.fallback == "model_error" and "repeat" in got.notes[0]


def test_explain_gives_engine_rank_scores_and_features_in_words() -> None:
    got = stage().run(StageInput("socks", hits(), size=3, user_id="U1", profile=kinetix_fan(), now=NOW, explain=True))
    top = got.hits[0]
    assert top.model_score is not None and top.blended_score is not None and top.engine_score == 18.0
    words, contribution = top.explanation[0]
    assert words == "brand affinity: Kinetix" and contribution > 0
    assert 1 <= len(top.explanation) <= 3 and all(c != 0 for _, c in top.explanation)  # explain_top, no zeros
    plain = stage().run(StageInput("socks", hits(), size=3, user_id="U1", profile=kinetix_fan(), now=NOW))
    assert plain.hits[0].explanation == ()


class CountingExplain:
    """Wraps a scorer and records how many rows each ``explain`` call was asked for."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.rows: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def explain(self, X: np.ndarray) -> np.ndarray:
        self.rows.append(len(X))
        return self.inner.explain(X)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(("offset", "size"), [(0, 3), (4, 3), (9, 5)])
def test_only_the_pages_hits_are_explained(offset: int, size: int) -> None:
    m = model()
    counting = CountingExplain(m.artifact.scorer)
    m.artifact.scorer = counting  # type: ignore[assignment]
    inp = StageInput(
        "socks", hits(), offset=offset, size=size, user_id="U1", profile=kinetix_fan(), now=NOW, explain=True
    )
    got = RerankStage(m).run(inp)
    assert got.applied and got.hits, got.notes
    page_ids = {h.id for h in got.hits}
    assert all(h.explanation for h in got.hits)
    assert all(h.explanation == () for h in got.order if h.id not in page_ids)
    assert counting.rows == [len(got.hits)]  # one pass over the page's rows, not the whole window


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("brand_affinity", 0.8, "brand affinity: Kinetix"),
        ("cat_affinity", 0.5, "category affinity: Clothing > Socks"),
        ("parent_cat_affinity", 0.5, "category affinity: Clothing"),
        ("engine_rank", float(np.log1p(7)), "engine rank 7"),
        ("q_click_rate", 0.2, "query engagement (clicked after 'socks')"),
        ("brand_affinity__missing", 1.0, "no brand history"),
        ("in_stock", 0.0, "out of stock"),
        ("bought_before", 1.0, "you bought it before"),
    ],
)
def test_describe_turns_features_into_words(name: str, value: float, words: str) -> None:
    hit = EngineHit("P2", 3.0, {"brand": "Kinetix", "category": "clothing > socks", "price": 12.0})
    assert describe(name, value, hit, kinetix_fan(), "socks") == words


def test_a_behavioural_candidate_is_not_explained_by_an_engine_rank_it_never_had() -> None:
    hit = EngineHit("P2", None, {"brand": "Kinetix"})  # engaged after the query, not returned by the engine
    assert describe("engine_rank", 0.0, hit, None, "socks") == "not in the engine's results (engaged after the query)"
    assert describe("bm25_norm", 0.0, hit, None, "socks") == "not a text match (engaged after the query)"


def test_paging_helpers_cover_the_boundary_once() -> None:
    # 5 reranked, pages of 3: [0,3) reranked; [3,6) = 2 reranked + 1 from the tail; [6,9) = tail from 1
    assert page_slice(0, 3, 5) == ((0, 3), 0, 0)
    assert page_slice(3, 3, 5) == ((3, 5), 1, 0)
    assert page_slice(6, 3, 5) == ((5, 5), 3, 1)
    resp = {"hits": {"hits": [{"_id": p, "_score": 1.0} for p in ("E6", "B1", "E7", "E8", "E9")]}}
    # B1 was shown in the reranked part (a behavioural candidate): it is skipped in the tail
    assert [h.id for h in tail_hits(resp, {"B1"}, 1, 2)] == ["E7", "E8"]


def test_the_window_is_pushed_into_the_engine_query() -> None:
    body, _ = window_body(SearchRequest(text="socks", page=3, size=10), SearchConfig(), 100)
    assert body["from"] == 0 and body["size"] == 100 and "aggs" in body


def test_behavioural_candidates_keep_engagement_order_skip_the_window_and_stop_at_k() -> None:
    ids = ["Z1", "P0", "Z2", "Z3"]
    resp = {"hits": {"hits": [{"_id": p, "_source": {}} for p in ("Z3", "Z1", "P0")]}}  # Z2 failed the filters
    got = behavioural_hits(resp, ids, hits(3), 5)
    assert [h.id for h in got] == ["Z1", "Z3"] and all(h.score is None for h in got)
    assert [h.id for h in behavioural_hits(resp, ids, hits(3), 1)] == ["Z1"]


def test_engaged_lists_the_exact_query_first_then_its_terms() -> None:
    ev = pd.DataFrame(
        {
            "type": ["click", "click", "purchase", "click", "click"],
            "product_id": ["A", "B", "B", "C", "D"],
            "query": ["wool socks", "wool socks", "wool socks", "socks", "red socks"],
            "request_id": ["r1", "r2", "r3", "r4", "r5"],
            "user_id": ["u"] * 5,
            "timestamp": pd.to_datetime(["2024-04-01"] * 5, utc=True),
        }
    )
    ev["query_norm"] = ev["query"]
    view = QueryStats().add_events(ev).view("wool socks")
    assert view.engaged(10) == ["B", "A", "C", "D"]  # exact query by engagement, then the term 'sock'
    assert view.engaged(10, exclude={"B"}) == ["A", "C", "D"] and view.engaged(1) == ["B"] and view.engaged(0) == []


def test_rerank_settings_name_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"rerank\.window: 2000 is above rerank\.max_window"):
        RerankSettings(window=2000)
    with pytest.raises(ConfigError, match=r"unknown rerank setting\(s\) rerank\.windw"):
        RerankSettings.from_dict({"windw": 5})
    with pytest.raises(ValueError, match="reason 'nope'"):
        stage().engine_order(StageInput("x", hits(2)), "nope")


def test_business_rules_hold_when_the_model_is_not_used() -> None:
    """A pin or an out-of-stock demotion must not vanish because the model is missing, off or over budget."""
    from fuserec_os.rerank.rules import BusinessRules, RulesConfig

    rules = BusinessRules(RulesConfig.from_dict({"pins": {"Socks": ["P4"]}}))
    for s in (RerankStage(None, rules=rules), RerankStage(model(), RerankSettings(budget_ms=0.0), rules=rules)):
        got = s.run(StageInput("socks", hits(), size=3, user_id="U1", profile=kinetix_fan(), now=NOW))
        assert not got.applied
        assert [h.id for h in got.hits] == ["P4", "P0", "P1"]
        assert [h.new_rank for h in got.order[:3]] == [1, 2, 3]
        assert any("P4" in n for n in got.notes)
    # an explicit sort is the client's order: rules do not touch it
    passthrough = RerankStage(None, rules=rules).engine_order(StageInput("socks", hits(), size=3), "not_relevance")
    assert [h.id for h in passthrough.hits] == ["P0", "P1", "P2"]
