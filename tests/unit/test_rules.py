"""Business rules after the model (``rerank/rules.py``): each rule, their order, edge cases, and the config."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fuserec_os.config import parse_ranking_config
from fuserec_os.errors import ConfigError
from fuserec_os.rerank.rules import BusinessRules, RulesConfig
from fuserec_os.rerank.stage import EngineHit, RankedHit, RuleSet


def hit(pid: str, brand: str | None = None, in_stock: bool | None = None) -> RankedHit:
    source: dict[str, Any] = {"product_id": pid}
    if brand is not None:
        source["brand"] = brand
    if in_stock is not None:
        source["in_stock"] = in_stock
    return RankedHit(EngineHit(pid, 1.0, source), new_rank=0, engine_rank=None, engine_score=1.0)


def ranked(*specs: str) -> list[RankedHit]:
    """``"P1"``, ``"P2:A"`` (brand A), ``"P3:A:x"`` (brand A, out of stock), ``"P4::x"`` (no brand, out of stock)."""
    out = []
    for spec in specs:
        pid, brand, stock = ([*spec.split(":"), "", ""])[:3]
        out.append(hit(pid, brand or None, False if stock == "x" else None))
    for pos, h in enumerate(out, start=1):
        object.__setattr__(h, "new_rank", pos)
    return out


def ids(hits: list[RankedHit]) -> list[str]:
    return [h.id for h in hits]


def run(cfg: dict[str, Any], hits: list[RankedHit], query: str = "q", page_size: int = 10) -> tuple[list[str], tuple]:
    out, notes = BusinessRules(RulesConfig.from_dict(cfg)).apply(query, hits, page_size)
    return ids(out), notes


# ------------------------------------------------------------------------------------------ out of stock


def test_out_of_stock_kept_by_default_and_demoted_keeping_order() -> None:
    hits = ranked("P1:A:x", "P2", "P3::x", "P4")
    assert BusinessRules().apply("q", hits, 10) == (hits, ())  # default: what the plain search shows
    out, notes = BusinessRules(RulesConfig(out_of_stock="demote")).apply("q", hits, 10)
    assert ids(out) == ["P2", "P4", "P1", "P3"]
    assert notes == ("demoted 2 out-of-stock products",)
    assert ids(hits) == ["P1", "P2", "P3", "P4"]  # the input list is not changed


def test_out_of_stock_drop_and_keep() -> None:
    hits = ranked("P1::x", "P2", "P3::x")
    assert run({"out_of_stock": "drop"}, hits) == (["P2"], ("dropped 2 out-of-stock products",))
    assert run({"out_of_stock": "keep"}, hits) == (["P1", "P2", "P3"], ())


def test_missing_stock_info_counts_as_in_stock() -> None:
    hits = [hit("P1", in_stock=None), hit("P2", in_stock=True), hit("P3", in_stock=False)]
    assert run({"out_of_stock": "drop"}, hits)[0] == ["P1", "P2"]


# ------------------------------------------------------------------------------------------ brand cap


def test_brand_cap_moves_extras_after_the_first_page() -> None:
    hits = ranked("P1:A", "P2:A", "P3:A", "P4:B", "P5:A", "P6:C", "P7", "P8:B")
    out, notes = run({"max_per_brand_first_page": 2}, hits, page_size=4)
    assert out == ["P1", "P2", "P4", "P6", "P3", "P5", "P7", "P8"]
    assert notes == ("brand cap 2: moved 2 products after the first page (A 2)",)


def test_brand_cap_off_by_default_and_no_note_when_nothing_moves() -> None:
    hits = ranked("P1:A", "P2:A", "P3:A")
    assert run({"out_of_stock": "keep"}, hits, page_size=2) == (["P1", "P2", "P3"], ())
    assert run({"max_per_brand_first_page": 2}, ranked("P1:A", "P2:A", "P3:B"), page_size=3)[1] == ()


def test_brand_cap_gives_way_when_too_few_other_products() -> None:
    hits = ranked("P1:A", "P2:A", "P3:A", "P4:B")
    out, notes = run({"max_per_brand_first_page": 1}, hits, page_size=3)
    assert out == ["P1", "P4", "P2", "P3"]  # P2 back at the end of the first page, P3 after it
    assert any("gave way: 1 product over the cap" in n for n in notes)
    assert any("moved 1 product after the first page" in n for n in notes)


def test_brand_cap_page_bigger_than_list_and_products_without_brand() -> None:
    hits = ranked("P1:A", "P2:A", "P3", "P4")
    out, notes = run({"max_per_brand_first_page": 1}, hits, page_size=50)
    assert out == ["P1", "P3", "P4", "P2"]
    assert any("gave way" in n for n in notes)
    assert run({"max_per_brand_first_page": 1}, hits, page_size=0)[0] == ids(hits)


# ------------------------------------------------------------------------------------------ boosts


def test_boost_up_n_places_and_to_top() -> None:
    hits = ranked("P1", "P2", "P3", "P4", "P5", "P6")
    out, notes = run({"boosts": {"q": {"P5": 2, "P6": "top"}}}, hits)
    assert out == ["P6", "P1", "P5", "P2", "P3", "P4"]  # targets from the order before boosting
    assert notes == ("boosted P6 from 6 to 1 for 'q'", "boosted P5 from 5 to 3 for 'q'")
    out, notes = run({"boosts": {"q": {"P3": 1, "P4": "top", "P5": "top"}}}, hits)
    assert out == ["P4", "P5", "P3", "P1", "P2", "P6"]  # competing for a place: target, then order before
    assert "boosted P3 from 3 to 3 for 'q' (asked 2: taken by other boosts)" in notes


def test_boost_never_above_the_first_place_and_missing_product_noted() -> None:
    hits = ranked("P1", "P2", "P3")
    out, notes = run({"boosts": {"q": {"P2": 10, "P9": 1}}}, hits)
    assert out == ["P2", "P1", "P3"]
    assert "boost of P9 for 'q' skipped: not a candidate" in notes
    assert run({"boosts": {"q": {"P1": "top"}}}, hits) == (["P1", "P2", "P3"], ())  # already first


def test_boosts_only_for_their_query_normalised() -> None:
    hits = ranked("P1", "P2")
    cfg = {"boosts": {"Running  Shoes": {"P2": "top"}}}
    assert run(cfg, hits, "running shoes")[0] == ["P2", "P1"]
    assert run(cfg, hits, "RUNNING shoes ")[0] == ["P2", "P1"]
    assert run(cfg, hits, "shoes")[0] == ["P1", "P2"]


# ------------------------------------------------------------------------------------------ pins


def test_pins_at_fixed_positions() -> None:
    hits = ranked("P1", "P2", "P3", "P4", "P5")
    out, notes = run({"pins": {"running shoes": ["P4", None, "P1"]}}, hits, "Running  Shoes")
    assert out == ["P4", "P2", "P1", "P3", "P5"]
    assert notes == ("pinned P4 at 1 for 'running shoes'", "pinned P1 at 3 for 'running shoes'")


def test_pin_missing_from_candidates_is_noted_not_added() -> None:
    hits = ranked("P1", "P2", "P3")
    out, notes = run({"pins": {"q": ["P9", "P3"]}}, hits)
    assert out == ["P1", "P3", "P2"]  # P3 keeps its fixed position 2 although P9 is absent
    assert "pin of P9 at 1 for 'q' skipped: not a candidate" in notes


def test_pin_beyond_the_list_goes_to_the_end() -> None:
    hits = ranked("P1", "P2", "P3")
    out, notes = run({"pins": {"q": [None, None, None, None, None, "P1"]}}, hits)
    assert out == ["P2", "P3", "P1"]
    assert notes == ("pinned P1 at 3 for 'q' (asked 6: too few candidates)",)
    out, _ = run({"pins": {"q": ["P2", None, None, None, "P1", None, "P3"]}}, hits)
    assert out == ["P2", "P1", "P3"]


def test_pinned_ids_for_the_stage_to_fetch() -> None:
    rules = BusinessRules(RulesConfig(pins={"Running Shoes": ["P2", None, "P1"]}))
    assert rules.pinned_ids("running shoes") == ("P2", "P1")
    assert rules.pinned_ids("running  SHOES") == ("P2", "P1")
    assert rules.pinned_ids("socks") == ()


# ------------------------------------------------------------------------------------------ together


def test_order_stock_then_cap_then_boosts_then_pins() -> None:
    hits = ranked("P1:A:x", "P2:A", "P3:A", "P4:A", "P5:B", "P6:B", "P7:C", "P8:A:x")
    cfg = {
        "out_of_stock": "demote",
        "max_per_brand_first_page": 1,
        "boosts": {"q": {"P4": "top"}},
        "pins": {"q": [None, "P8"]},
    }
    out, notes = run(cfg, hits, page_size=3)
    # stock: P2 P3 P4 P5 P6 P7 P1 P8; cap 1 (page 3): P2 P5 P7 | P3 P4 P6 P1 P8 (P6: B's second, after the page)
    # boost P4 to the top (wins over the cap): P4 P2 P5 P7 P3 P6 P1 P8; pin the out-of-stock P8 at 2 (pins win)
    assert out == ["P4", "P8", "P2", "P5", "P7", "P3", "P6", "P1"]
    assert notes == (
        "demoted 2 out-of-stock products",
        "brand cap 1: moved 3 products after the first page (A 2, B 1)",
        "boosted P4 from 5 to 1 for 'q'",
        "pinned P8 at 2 for 'q'",
    )


def test_pinned_product_dropped_as_out_of_stock_is_not_brought_back() -> None:
    hits = ranked("P1", "P2::x")
    out, notes = run({"out_of_stock": "drop", "pins": {"q": ["P2"]}}, hits)
    assert out == ["P1"]
    assert "pin of P2 at 1 for 'q' skipped: dropped as out of stock" in notes


def test_empty_list_and_no_rules_for_the_query() -> None:
    cfg = {"max_per_brand_first_page": 1, "boosts": {"q": {"P2": 1}}, "pins": {"q": ["P1"]}}
    out, notes = run(cfg, [])
    assert out == []
    assert notes == ("boost of P2 for 'q' skipped: not a candidate", "pin of P1 at 1 for 'q' skipped: not a candidate")
    hits = ranked("P1", "P2")
    assert run(cfg, hits, "other") == (["P1", "P2"], ())


def test_never_adds_and_keeps_every_candidate_unless_dropped() -> None:
    hits = ranked(*(f"P{i}:{'AB'[i % 2]}{':x' if i % 7 == 0 else ''}" for i in range(1, 60)))
    cfg = {
        "max_per_brand_first_page": 3,
        "boosts": {"q": {"P50": "top", "P40": 12, "P99": 1}},
        "pins": {"q": ["P30", None, "P98", "P20", *([None] * 70), "P10"]},
    }
    out, _ = run(cfg, hits, page_size=10)
    assert sorted(out) == sorted(ids(hits)) and len(set(out)) == len(out)
    dropped, _ = run({**cfg, "out_of_stock": "drop"}, hits, page_size=10)
    assert sorted(dropped) == sorted(h.id for h in hits if h.hit.source.get("in_stock") is not False)


def test_satisfies_the_stage_protocol_and_is_fast() -> None:
    rules: RuleSet = BusinessRules(
        RulesConfig.from_dict(
            {
                "max_per_brand_first_page": 2,
                "boosts": {"q": {"P500": "top", "P900": 30}},
                "pins": {"q": ["P999", None, "P3"]},
            }
        )
    )
    hits = ranked(*(f"P{i}:B{i % 5}{':x' if i % 10 == 0 else ''}" for i in range(1000)))
    rules.apply("q", hits, 10)  # warm
    t = time.perf_counter()
    for _ in range(20):
        out, _notes = rules.apply("q", hits, 10)
    per_call_ms = (time.perf_counter() - t) / 20 * 1000
    assert out[0].id == "P999" and out[2].id == "P3"
    assert per_call_ms < 5, f"{per_call_ms:.2f} ms for 1000 hits"


# ------------------------------------------------------------------------------------------ the config


def test_defaults_and_the_ranking_config_section() -> None:
    assert parse_ranking_config(None).rules == RulesConfig()
    cfg = RulesConfig()
    assert (cfg.out_of_stock, cfg.max_per_brand_first_page) == ("keep", None)
    assert dict(cfg.pins) == {} and dict(cfg.boosts) == {}
    raw = {"rules": {"out_of_stock": "drop", "pins": {"Socks ": [123, "P2"]}, "boosts": {"socks": {"P3": 2}}}}
    rules = parse_ranking_config(raw, "x.yaml").rules
    assert rules.pins == {"socks": ("123", "P2")}  # normalised query, numeric ids as text
    assert rules.boosts == {"socks": {"P3": 2}}
    keys = ("out_of_stock", "pins", "boosts", "max_per_brand_first_page")
    nulls = RulesConfig.from_dict(dict.fromkeys(keys))
    assert nulls == RulesConfig()  # null means the default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rules": {"pin": {}}}, r"x\.yaml: unknown rules setting\(s\) rules\.pin; valid keys: out_of_stock, "),
        ({"rules": {"boosts": {"q": {"P1": 2}}, "max_brand": 3}}, r"rules\.max_brand"),
        ({"rules": ["pins"]}, "'rules' must be a mapping"),
        ({"rules": {"out_of_stock": "hide"}}, r"rules\.out_of_stock: 'hide' must be one of keep, demote, drop"),
        ({"rules": {"max_per_brand_first_page": 0}}, r"rules\.max_per_brand_first_page: 0 must be a whole number >= 1"),
        ({"rules": {"max_per_brand_first_page": True}}, r"rules\.max_per_brand_first_page: True"),
        ({"rules": {"pins": ["P1"]}}, r"rules\.pins must be a mapping of query -> product ids"),
        ({"rules": {"pins": {"q": ["P1", "P2", "P1"]}}}, r"rules\.pins\.q: P1 is pinned twice \(positions 1 and 3\)"),
        ({"rules": {"pins": {"q": [7, "7"]}}}, r"rules\.pins\.q: 7 is pinned twice"),
        ({"rules": {"pins": {"q": [None]}}}, r"rules\.pins\.q: \[None\] must be a list of product ids"),
        ({"rules": {"pins": {"q": {"P1": 1}}}}, r"rules\.pins\.q: .* must be a list of product ids"),
        ({"rules": {"pins": {"q": ["P1", 2.5]}}}, r"rules\.pins\.q: 2\.5 is not a product id"),
        ({"rules": {"pins": {"q": [" "]}}}, r"rules\.pins\.q: ' ' is not a product id"),
        ({"rules": {"pins": {"Running Shoes": ["P1"], "running  shoes": ["P2"]}}}, "same query once normalised"),
        ({"rules": {"pins": {"  ": ["P1"]}}}, r"rules\.pins: a blank query"),
        ({"rules": {"boosts": {"q": ["P1"]}}}, r"rules\.boosts\.q: .* must be a mapping of product id"),
        ({"rules": {"boosts": {"q": {"P1": 0}}}}, r"rules\.boosts\.q\.P1: 0 must be a whole number of places up"),
        ({"rules": {"boosts": {"q": {"P1": "first"}}}}, r"rules\.boosts\.q\.P1: 'first' .* or top"),
        ({"rules": {"boosts": {"q": {5: 1, "5": 2}}}}, r"rules\.boosts\.q: 5 is boosted twice"),
        ({"rules": {"boosts": {"Q": {"P1": 1}, "q": {"P2": 1}}}}, r"rules\.boosts: 'Q' and 'q' are the same query"),
        (
            {"rules": {"pins": {"q": ["P1"]}, "boosts": {"Q": {"P1": "top"}}}},
            r"rules\.boosts\.q\.P1: P1 is also pinned for this query",
        ),
    ],
)
def test_mistakes_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ranking_config(raw, "x.yaml")
