"""The pure DSL builder: text -> bool DSL, filters, facets, sort, paging, validation and safety."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from fuserec_os.errors import QueryError
from fuserec_os.search.query_builder import BuiltQuery, build_query
from fuserec_os.search.request import Filters, SearchConfig, SearchRequest, Sort

FIELDS = ["title^3.0", "brand.text^2.0", "category.text^1.5", "tags.text^1.5", "description^1.0"]


def mm(text: str) -> dict[str, Any]:
    return {"multi_match": {"query": text, "fields": FIELDS, "type": "best_fields", "tie_breaker": 0.3}}


def text_query(text: str, **kwargs: Any) -> dict[str, Any]:
    """The compiled text clause (the single ``must`` of the outer bool)."""
    body = build_query(SearchRequest(text=text, **kwargs)).body
    must = body["query"]["bool"]["must"]
    assert len(must) == 1
    q: dict[str, Any] = must[0]
    return q


SAFE_QUERY_TYPES = {
    "bool", "match_all", "match_none", "multi_match", "match", "match_phrase", "term", "terms", "range", "exists"
}  # fmt: skip
BOOL_KEYS = ("must", "should", "must_not", "filter")


def query_types(q: dict[str, Any]) -> set[str]:
    """Every query type used in a query clause tree (bool recursed)."""
    assert len(q) == 1, q
    ((kind, inner),) = q.items()
    found = {kind}
    if kind == "bool":
        for key in BOOL_KEYS:
            for child in inner.get(key, []):
                found |= query_types(child)
    return found


# ------------------------------------------------------------------------------------------------ text


def test_empty_text_is_match_all() -> None:
    for text in ("", "   "):
        built = build_query(SearchRequest(text=text))
        assert built.body["query"] == {"bool": {"must": [{"match_all": {}}]}}
        assert built.warnings == () and not built.fallback


def test_plain_text_is_one_multi_match() -> None:
    assert text_query("red running shoes") == mm("red running shoes")


def test_plain_text_uses_configured_fields_and_minimum_should_match() -> None:
    cfg = SearchConfig(fields=(("title", 2.0), ("description", 1.0)), minimum_should_match="2<75%")
    body = build_query(SearchRequest(text="red shoes"), cfg).body
    assert body["query"]["bool"]["must"][0] == {
        "multi_match": {
            "query": "red shoes",
            "fields": ["title^2.0", "description^1.0"],
            "type": "best_fields",
            "tie_breaker": 0.3,
            "minimum_should_match": "2<75%",
        }
    }


@pytest.mark.parametrize(
    ("kind", "tie"),
    [("best_fields", {"tie_breaker": 0.1}), ("cross_fields", {"tie_breaker": 0.1}), ("most_fields", {})],
)
def test_multi_match_type_from_the_config(kind: str, tie: dict[str, float]) -> None:
    """most_fields sums the fields: a tie_breaker would make the engine score it like best_fields."""
    cfg = SearchConfig(multi_match_type=kind, tie_breaker=0.1)
    body = build_query(SearchRequest(text="red shoes"), cfg).body
    assert body["query"]["bool"]["must"][0] == {
        "multi_match": {"query": "red shoes", "fields": FIELDS, "type": kind, **tie}
    }
    phrase = build_query(SearchRequest(text='"red shoes"'), cfg).body["query"]["bool"]["must"][0]
    assert phrase["multi_match"]["type"] == "phrase"  # a quoted phrase stays a phrase


def test_and_narrows_with_must() -> None:
    assert text_query("red AND shoes") == {"bool": {"must": [mm("red"), mm("shoes")]}}


def test_implicit_and_between_group_and_field() -> None:
    assert text_query("running shoes brand:nike") == {
        "bool": {
            "must": [
                mm("running shoes"),
                {"match": {"brand.text": {"query": "nike", "operator": "and"}}},
            ]
        }
    }


def test_or_is_should_with_minimum_one() -> None:
    assert text_query("nike OR adidas") == {"bool": {"should": [mm("nike"), mm("adidas")], "minimum_should_match": 1}}


def test_not_and_minus_are_must_not() -> None:
    expected = {"bool": {"must": [mm("shoes")], "must_not": [mm("red")]}}
    assert text_query("shoes NOT red") == expected
    assert text_query("shoes AND NOT red") == expected
    assert text_query("shoes -red") == expected


def test_only_negations_match_all_minus_them() -> None:
    assert text_query("-red") == {"bool": {"must": [{"match_all": {}}], "must_not": [mm("red")]}}
    assert text_query("-red -blue") == {"bool": {"must": [{"match_all": {}}], "must_not": [mm("red"), mm("blue")]}}


def test_not_inside_or() -> None:
    assert text_query("a OR NOT b") == {
        "bool": {
            "should": [mm("a"), {"bool": {"must": [{"match_all": {}}], "must_not": [mm("b")]}}],
            "minimum_should_match": 1,
        }
    }


def test_phrase_is_multi_match_phrase() -> None:
    assert text_query('"running shoes"') == {
        "multi_match": {"query": "running shoes", "fields": FIELDS, "type": "phrase"}
    }


def test_negated_phrase() -> None:
    q = text_query('shoes -"high heel"')
    assert q["bool"]["must_not"] == [{"multi_match": {"query": "high heel", "fields": FIELDS, "type": "phrase"}}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title:laptop", {"match": {"title": {"query": "laptop", "operator": "and"}}}),
        ("description:waterproof", {"match": {"description": {"query": "waterproof", "operator": "and"}}}),
        ("brand:nike", {"match": {"brand.text": {"query": "nike", "operator": "and"}}}),
        ("category:laptops", {"match": {"category.text": {"query": "laptops", "operator": "and"}}}),
        ("tags:outdoor", {"match": {"tags.text": {"query": "outdoor", "operator": "and"}}}),
        ('title:"gaming laptop"', {"match_phrase": {"title": {"query": "gaming laptop"}}}),
        ('brand:"new balance"', {"match_phrase": {"brand.text": {"query": "new balance"}}}),
        ("in_stock:yes", {"term": {"in_stock": True}}),
        ("in_stock:false", {"term": {"in_stock": False}}),
        ("price:20", {"term": {"price": 20}}),
        ("rating:4.5", {"term": {"rating": 4.5}}),
        ("review_count:12", {"term": {"review_count": 12}}),
        ("attr.color:red", {"term": {"attributes": "color:red"}}),
        ('attr.size:"x large"', {"term": {"attributes": "size:x large"}}),
    ],
)
def test_field_values(text: str, expected: dict[str, Any]) -> None:
    assert text_query(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("price:[10 TO 50]", {"range": {"price": {"gte": 10, "lte": 50}}}),
        ("price:[10 TO *]", {"range": {"price": {"gte": 10}}}),
        ("price:[* TO 50]", {"range": {"price": {"lte": 50}}}),
        ("price:{10 TO 50}", {"range": {"price": {"gt": 10, "lt": 50}}}),
        ("price:[* TO *]", {"exists": {"field": "price"}}),
        ("rating:>=4", {"range": {"rating": {"gte": 4}}}),
        ("rating:>4", {"range": {"rating": {"gt": 4}}}),
        ("price:<50", {"range": {"price": {"lt": 50}}}),
        ("review_count:<=10", {"range": {"review_count": {"lte": 10}}}),
    ],
)
def test_ranges(text: str, expected: dict[str, Any]) -> None:
    assert text_query(text) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [("in_stock:maybe", "maybe"), ("price:cheap", "cheap"), ("review_count:1.5", "1.5")],
)
def test_bad_field_values_fall_back_to_text_with_warning(text: str, value: str) -> None:
    built = build_query(SearchRequest(text=text))
    assert built.body["query"]["bool"]["must"] == [mm(value)]
    assert len(built.warnings) == 1 and text.split(":")[0] in built.warnings[0]


def test_unknown_field_is_searched_as_text() -> None:
    built = build_query(SearchRequest(text="secret:foo"))
    assert built.body["query"]["bool"]["must"] == [mm("secret foo")]
    assert not built.fallback and built.warnings == ()


def test_broken_syntax_falls_back_with_warning() -> None:
    built = build_query(SearchRequest(text="(red OR shoes"))
    assert built.fallback
    assert built.body["query"]["bool"]["must"] == [mm("red shoes")]
    assert len(built.warnings) == 1 and "parenthes" in built.warnings[0]


@pytest.mark.parametrize(
    "text",
    [
        "back\\slash",
        "a/b/c",
        "key:value",
        "[1 TO 2]",
        "{x}",
        "fuzzy~2",
        "boost^10",
        "wild*card?",
        '"unbalanced',
        "(unbalanced",
        "unbalanced)",
        "&& || !",
        "title:/reg.*ex/",
        "_id:1 OR _index:*",
    ],
)
def test_special_characters_never_reach_lucene_syntax(text: str) -> None:
    built = build_query(SearchRequest(text=text))
    assert "query_string" not in json.dumps(built.body)
    used = query_types(built.body["query"])
    assert used <= SAFE_QUERY_TYPES, used


# ------------------------------------------------------------------------------------------------ filters


def test_filters_become_bool_filter() -> None:
    f = Filters(
        category="electronics > laptops",
        brands=("Dell", "HP"),
        price_min=100,
        price_max=500,
        rating_min=4,
        in_stock=True,
        tags=("gaming",),
        attributes=(("color", ("black", "silver")), ("ram", ("16gb",))),
    )
    body = build_query(SearchRequest(text="laptop", filters=f)).body
    assert body["query"]["bool"]["must"] == [mm("laptop")]
    assert body["query"]["bool"]["filter"] == [
        {"term": {"category_path": "electronics > laptops"}},
        {"terms": {"brand": ["Dell", "HP"]}},
        {"range": {"price": {"gte": 100.0, "lte": 500.0}}},
        {"range": {"rating": {"gte": 4.0}}},
        {"term": {"in_stock": True}},
        {"terms": {"tags": ["gaming"]}},
        {"terms": {"attributes": ["color:black", "color:silver"]}},
        {"terms": {"attributes": ["ram:16gb"]}},
    ]


def test_open_price_range_and_in_stock_false() -> None:
    body = build_query(SearchRequest(filters=Filters(price_max=50, in_stock=False))).body
    assert body["query"]["bool"] == {
        "must": [{"match_all": {}}],
        "filter": [{"range": {"price": {"lte": 50.0}}}, {"term": {"in_stock": False}}],
    }


def test_no_filters_omits_filter_list() -> None:
    assert "filter" not in build_query(SearchRequest(text="x")).body["query"]["bool"]


# ------------------------------------------------------------------------------------------------ sort/page


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (Sort.RELEVANCE, ["_score", {"product_id": "asc"}]),
        (Sort.PRICE_ASC, [{"price": "asc"}, {"product_id": "asc"}]),
        (Sort.PRICE_DESC, [{"price": "desc"}, {"product_id": "asc"}]),
        (Sort.RATING, [{"rating": "desc"}, {"review_count": "desc"}, {"product_id": "asc"}]),
        (Sort.NEWEST, [{"created_at": "desc"}, {"product_id": "asc"}]),
    ],
)
def test_sort(sort: Sort, expected: list[Any]) -> None:
    body = build_query(SearchRequest(text="x", sort=sort)).body
    assert body["sort"] == expected
    assert body["track_scores"] is True


def test_paging() -> None:
    body = build_query(SearchRequest(page=3, size=20)).body
    assert (body["from"], body["size"], body["track_total_hits"]) == (40, 20, True)
    body = build_query(SearchRequest()).body
    assert (body["from"], body["size"]) == (0, 10)


def test_last_allowed_page() -> None:
    body = build_query(SearchRequest(page=1000, size=10)).body
    assert body["from"] == 9990


# ------------------------------------------------------------------------------------------------ facets/hl


def test_facets() -> None:
    aggs = build_query(SearchRequest()).body["aggs"]
    assert aggs["brand"] == {"terms": {"field": "brand", "size": 20}}
    assert aggs["category"] == {"terms": {"field": "category", "size": 20}}
    assert aggs["price"]["range"]["field"] == "price"
    assert aggs["price"]["range"]["ranges"] == [
        {"key": "*-25", "to": 25.0},
        {"key": "25-50", "from": 25.0, "to": 50.0},
        {"key": "50-100", "from": 50.0, "to": 100.0},
        {"key": "100-250", "from": 100.0, "to": 250.0},
        {"key": "250-500", "from": 250.0, "to": 500.0},
        {"key": "500-*", "from": 500.0},
    ]
    assert aggs["rating"] == {
        "range": {
            "field": "rating",
            "ranges": [{"key": "4+", "from": 4.0}, {"key": "3+", "from": 3.0}, {"key": "2+", "from": 2.0}],
        }
    }


def test_facets_follow_config() -> None:
    cfg = SearchConfig(facet_size=5, price_ranges=((None, 9.5), (9.5, None)), rating_ranges=((4.5, None),))
    aggs = build_query(SearchRequest(), cfg).body["aggs"]
    assert aggs["brand"]["terms"]["size"] == 5
    assert [b["key"] for b in aggs["price"]["range"]["ranges"]] == ["*-9.5", "9.5-*"]
    assert [b["key"] for b in aggs["rating"]["range"]["ranges"]] == ["4.5+"]


def test_facets_and_highlight_can_be_turned_off() -> None:
    body = build_query(SearchRequest(text="x", facets=False, highlight=False)).body
    assert "aggs" not in body and "highlight" not in body


def test_highlight() -> None:
    hl = build_query(SearchRequest(text="x")).body["highlight"]
    assert hl["pre_tags"] == ["<em>"] and hl["post_tags"] == ["</em>"]
    assert set(hl["fields"]) == {"title", "description"}


# ------------------------------------------------------------------------------------------------ validation


def test_text_too_long() -> None:
    with pytest.raises(QueryError) as exc:
        build_query(SearchRequest(text="a" * 257))
    msg = str(exc.value)
    assert "257" in msg and "256" in msg and "text" in msg
    build_query(SearchRequest(text="a" * 256))  # at the cap is fine


def test_text_cap_follows_config() -> None:
    with pytest.raises(QueryError, match="10"):
        build_query(SearchRequest(text="a" * 11), SearchConfig(max_query_length=10))


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"page": 0}, ["page", "0"]),
        ({"page": -3}, ["page"]),
        ({"size": 0}, ["size", "100"]),
        ({"size": 101}, ["size", "100", "101"]),
        ({"page": 1001, "size": 10}, ["page 1001", "10000", "deepest page", "1000"]),
        ({"page": 101, "size": 100}, ["page 101", "deepest page", "100"]),
    ],
)
def test_paging_validation(kwargs: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(QueryError) as exc:
        build_query(SearchRequest(**kwargs))
    for needle in needles:
        assert needle in str(exc.value)


# ------------------------------------------------------------------------------------------------ safety


def test_deterministic() -> None:
    req = SearchRequest(
        text='laptop (dell OR hp) -refurbished price:[300 TO *] "gaming"',
        filters=Filters(brands=("Dell",), attributes=(("ram", ("16gb",)),)),
        sort=Sort.RATING,
        page=2,
    )
    a, b = build_query(req), build_query(req)
    assert a == b
    assert json.dumps(a.body, sort_keys=False) == json.dumps(b.body, sort_keys=False)
    a.body["query"]["bool"]["must"].clear()  # bodies are independent objects
    assert build_query(req).body["query"]["bool"]["must"]


NASTY = [
    *'ab xy 1 ""(){}[]:\\/~^*?!+-&|<>=.,;\'#@%$\t\n\u00e9\u4e2d\u200b\x00\ud800',
    "AND",
    "OR",
    "NOT",
    "TO",
    " price:",
    " rating:",
    " title:",
    " brand:",
    " attr.c:",
    " in_stock:",
    " review_count:",
    " _source:",
    " script:",
]


def test_random_strings_never_raise_and_stay_safe() -> None:
    rng = random.Random(20240517)
    cfg = SearchConfig(max_query_length=60)
    too_long = 0
    for _ in range(10_000):
        text = "".join(rng.choice(NASTY) for _ in range(rng.randint(0, 50)))
        try:
            built = build_query(SearchRequest(text=text), cfg)
        except QueryError as exc:
            assert len(text.strip()) > 60, (text, exc)
            too_long += 1
            continue
        assert isinstance(built, BuiltQuery)
        dumped = json.dumps(built.body)
        assert "query_string" not in dumped and "simple_query_string" not in dumped
        assert built.body["query"]["bool"]["must"], text
        assert query_types(built.body["query"]) <= SAFE_QUERY_TYPES, text
        if built.fallback:
            assert built.warnings
    assert 0 < too_long < 10_000  # both paths were exercised


# what the mapping can hold: review_count is an integer, price a scaled_float (x100 in a long), rating a float
FIELD_RANGE = {
    "review_count": (-(2**31), 2**31 - 1),
    "price": (-(2**63) / 100, (2**63 - 1) / 100),
    "rating": (-3.4e38, 3.4e38),
}


def numeric_values(node: Any) -> list[tuple[str, float]]:
    """Every (field, number) a term or range clause sends for the numeric fields."""
    out: list[tuple[str, float]] = []
    if isinstance(node, dict):
        for kind, inner in node.items():
            if kind in ("term", "range") and isinstance(inner, dict):
                for field, v in inner.items():
                    if field in FIELD_RANGE:
                        vals = v.values() if isinstance(v, dict) else [v]
                        out += [(field, float(x)) for x in vals if isinstance(x, (int, float))]
            else:
                out += numeric_values(inner)
    elif isinstance(node, list):
        for x in node:
            out += numeric_values(x)
    return out


@pytest.mark.parametrize(
    "text",
    [
        "review_count:99999999999999999999",
        "review_count:[0 TO 99999999999999999999]",
        "review_count:>=99999999999999999999",
        "review_count:<-99999999999999999999",
        "price:[0 TO 999999999999999999999999]",
        "price:99999999999999999999.5",
        "shoes AND rating:<=999999999999999999999999999999999999999999",
    ],
)
def test_numbers_beyond_what_a_field_holds_never_reach_the_engine(text: str) -> None:
    built = build_query(SearchRequest(text=text))
    sent = numeric_values(built.body["query"])
    assert all(FIELD_RANGE[f][0] <= v <= FIELD_RANGE[f][1] for f, v in sent), sent
    assert built.warnings, "the user is told the number was out of range"


def test_an_out_of_range_exact_value_matches_nothing_and_says_so() -> None:
    built = build_query(SearchRequest(text="review_count:99999999999999999999"))
    assert text_query("review_count:99999999999999999999") == {"match_none": {}}
    assert any("2147483647" in w for w in built.warnings)


def test_an_out_of_range_bound_is_clamped_to_the_field() -> None:
    assert text_query("review_count:[10 TO 99999999999999999999]") == {
        "range": {"review_count": {"gte": 10, "lte": 2**31 - 1}}
    }


def test_facets_come_back_in_the_requested_order_whatever_order_the_engine_answers_in() -> None:
    """OpenSearch returns top-level aggregations in an order of its own (category before brand); osmem keeps ours."""
    from fuserec_os.search.backend import parse_response
    from fuserec_os.search.query_builder import FACET_ORDER, build_aggs

    assert tuple(build_aggs(SearchConfig())) == FACET_ORDER
    bucket = {"buckets": [{"key": "x", "doc_count": 1}]}
    resp = {
        "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
        "aggregations": {"rating": bucket, "zz_extra": bucket, "category": bucket, "price": bucket, "brand": bucket},
    }
    result = parse_response(resp, SearchRequest(text="x"))
    assert list(result.facets) == [*FACET_ORDER, "zz_extra"]
