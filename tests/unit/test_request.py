"""The search request contract: Sort, Filters, parse_filters, SearchRequest, SearchConfig."""

from __future__ import annotations

import pytest

from fuserec_os.errors import ConfigError, QueryError
from fuserec_os.search.request import (
    Filters,
    SearchConfig,
    SearchRequest,
    Sort,
    parse_filters,
)

# ------------------------------------------------------------------------------------------------ Sort


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("relevance", Sort.RELEVANCE),
        ("PRICE_ASC", Sort.PRICE_ASC),
        ("price-desc", Sort.PRICE_DESC),
        (" rating ", Sort.RATING),
        ("newest", Sort.NEWEST),
    ],
)
def test_sort_parse(raw: str, expected: Sort) -> None:
    assert Sort.parse(raw) is expected


def test_sort_parse_rejects_unknown_and_lists_valid_values() -> None:
    with pytest.raises(QueryError) as exc:
        Sort.parse("cheapest")
    msg = str(exc.value)
    assert "cheapest" in msg
    for s in Sort:
        assert s.value in msg


# ------------------------------------------------------------------------------------------------ Filters


def test_filters_defaults_are_empty() -> None:
    f = Filters()
    assert f.is_empty
    assert not Filters(brands=("Nike",)).is_empty


def test_filters_normalise_lists_and_category_path() -> None:
    f = Filters(
        category="electronics>laptops ",
        brands=["Nike", " Adidas", "Nike"],  # type: ignore[arg-type]
        tags=["sport"],  # type: ignore[arg-type]
        attributes={"color": ["red", "blue"]},  # type: ignore[arg-type]
    )
    assert f.category == "electronics > laptops"
    assert f.brands == ("Nike", "Adidas")
    assert f.tags == ("sport",)
    assert f.attributes == (("color", ("red", "blue")),)
    hash(f)  # frozen and hashable once normalised


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"price_min": 50, "price_max": 10}, "price_min"),
        ({"price_min": -1}, "price_min"),
        ({"price_max": float("nan")}, "price_max"),
        ({"rating_min": 7}, "rating_min"),
        ({"rating_min": "4"}, "rating_min"),
        ({"in_stock": "yes"}, "in_stock"),
        ({"brands": ("",)}, "brands"),
        ({"category": " > laptops"}, "category"),
        ({"attributes": (("color", ()),)}, "color"),
        ({"attributes": (("a:b", ("x",)),)}, "attribute key"),
        ({"attributes": (("color", ("red",)), ("color", ("blue",)))}, "twice"),
    ],
)
def test_filters_validation(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(QueryError, match=needle):
        Filters(**kwargs)  # type: ignore[arg-type]


def test_filters_from_mapping() -> None:
    f = Filters.from_mapping(
        {
            "category": "electronics",
            "brand": "Nike",
            "brands": ["Adidas"],
            "price_min": 10,
            "price_max": 50.5,
            "rating_min": 4,
            "in_stock": "yes",
            "tags": "sport",
            "attributes": {"color": ["red", "blue"], "size": "M"},
        }
    )
    assert f == Filters(
        category="electronics",
        brands=("Nike", "Adidas"),
        price_min=10.0,
        price_max=50.5,
        rating_min=4.0,
        in_stock=True,
        tags=("sport",),
        attributes=(("color", ("red", "blue")), ("size", ("M",))),
    )


def test_filters_from_mapping_rejects_unknown_keys_and_lists_valid_ones() -> None:
    with pytest.raises(QueryError) as exc:
        Filters.from_mapping({"colour": "red"})
    msg = str(exc.value)
    assert "colour" in msg
    assert "attributes" in msg and "price_min" in msg


def test_filters_from_mapping_ignores_none_values() -> None:
    assert Filters.from_mapping({"category": None, "tags": None, "in_stock": None}) == Filters()


# ------------------------------------------------------------------------------------------------ --filter


def test_parse_filters_full_syntax() -> None:
    f = parse_filters(
        [
            "brand=Nike,Adidas",
            "brand=Puma",
            'category="electronics > laptops"',
            "price=10..50",
            "rating>=4",
            "in_stock=yes",
            "tags=sport,outdoor",
            "attr.color=red,blue",
            "attr.size=M",
            "attr.color=green",
        ]
    )
    assert f.brands == ("Nike", "Adidas", "Puma")
    assert f.category == "electronics > laptops"
    assert (f.price_min, f.price_max) == (10.0, 50.0)
    assert f.rating_min == 4.0
    assert f.in_stock is True
    assert f.tags == ("sport", "outdoor")
    assert f.attributes == (("color", ("red", "blue", "green")), ("size", ("M",)))


@pytest.mark.parametrize(
    ("spec", "lo", "hi"),
    [
        ("price=10..", 10.0, None),
        ("price=..50", None, 50.0),
        ("price=9.99..19.5", 9.99, 19.5),
        ("price>=10", 10.0, None),
        ("price<=50", None, 50.0),
        ("price=25", 25.0, 25.0),
    ],
)
def test_parse_filters_price_forms(spec: str, lo: float | None, hi: float | None) -> None:
    f = parse_filters([spec])
    assert (f.price_min, f.price_max) == (lo, hi)


def test_parse_filters_price_bounds_from_two_specs_combine() -> None:
    f = parse_filters(["price>=10", "price<=50"])
    assert (f.price_min, f.price_max) == (10.0, 50.0)


@pytest.mark.parametrize("spec", ["rating>=4", "rating=4..", "RATING >= 4"])
def test_parse_filters_rating_forms(spec: str) -> None:
    assert parse_filters([spec]).rating_min == 4.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("yes", True), ("1", True), ("false", False), ("no", False), ("0", False)],
)
def test_parse_filters_in_stock(raw: str, expected: bool) -> None:
    assert parse_filters([f"in_stock={raw}"]).in_stock is expected


def test_parse_filters_quoted_value_keeps_commas() -> None:
    assert parse_filters(['brand="Procter, Gamble",Nike']).brands == ("Procter, Gamble", "Nike")


def test_parse_filters_accepts_a_single_string() -> None:
    assert parse_filters("brand=Nike").brands == ("Nike",)


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("colour=red", ["colour=red", "brand", "attr.<key>"]),
        ("brand", ["brand", "name=value"]),
        ("brand=", ["brand=", "no value"]),
        ("price=abc", ["price=abc", "10..50"]),
        ("price=..", ["price=..", "bound"]),
        ("price=50..10", ["price_min"]),
        ("rating=..3", ["rating", "rating>=4"]),
        ("rating=4", ["rating", "rating>=4"]),
        ("rating>=9", ["rating_min"]),
        ("in_stock=maybe", ["in_stock=maybe", "true, false"]),
        ("brand>=Nike", ["brand", "'='"]),
        ("brand=Nike,,Adidas", ["empty"]),
    ],
)
def test_parse_filters_errors_name_the_spec(spec: str, needles: list[str]) -> None:
    with pytest.raises(QueryError) as exc:
        parse_filters([spec])
    for needle in needles:
        assert needle in str(exc.value)


@pytest.mark.parametrize(
    "specs",
    [
        ["category=a", "category=b"],
        ["price>=1", "price=2.."],
        ["rating>=4", "rating>=3"],
        ["in_stock=true", "in_stock=false"],
    ],
)
def test_parse_filters_conflicting_repeats(specs: list[str]) -> None:
    with pytest.raises(QueryError, match="twice"):
        parse_filters(specs)


# ------------------------------------------------------------------------------------------------ request


def test_search_request_defaults() -> None:
    r = SearchRequest()
    assert (r.text, r.filters, r.sort, r.page, r.size) == ("", Filters(), Sort.RELEVANCE, 1, 10)
    assert r.user_id is None and r.facets and r.highlight


def test_search_request_accepts_sort_name() -> None:
    assert SearchRequest(sort="price_desc").sort is Sort.PRICE_DESC  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"page": "2"}, "page"),
        ({"size": True}, "size"),
        ({"text": 5}, "text"),
        ({"filters": {"brand": "x"}}, "filters"),
        ({"sort": "cheap"}, "sort"),
    ],
)
def test_search_request_type_errors(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(QueryError, match=needle):
        SearchRequest(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ config


def test_search_config_defaults() -> None:
    cfg = SearchConfig()
    assert cfg.fields[0] == ("title", 3.0)
    assert dict(cfg.fields) == {
        "title": 3.0,
        "brand.text": 2.0,
        "category.text": 1.5,
        "tags.text": 1.5,
        "description": 1.0,
    }
    assert cfg.price_ranges[0] == (None, 25.0) and cfg.price_ranges[-1] == (500.0, None)
    assert cfg.rating_ranges == ((4.0, None), (3.0, None), (2.0, None))
    assert (cfg.max_size, cfg.max_query_length, cfg.max_result_window, cfg.facet_size) == (100, 256, 10000, 20)
    assert (cfg.multi_match_type, cfg.tie_breaker) == ("best_fields", 0.3)


def test_search_config_multi_match_type_and_tie_breaker() -> None:
    cfg = SearchConfig.from_dict({"multi_match_type": "cross_fields", "tie_breaker": 0})
    assert (cfg.multi_match_type, cfg.tie_breaker) == ("cross_fields", 0.0)
    assert isinstance(cfg.tie_breaker, float)


def test_search_config_from_dict() -> None:
    cfg = SearchConfig.from_dict(
        {
            "fields": {"title": 4, "description": 1},
            "minimum_should_match": "75%",
            "max_size": 50,
            "price_ranges": [[None, 10], [10, None]],
            "rating_ranges": [4, [3, None]],
            "facet_size": 5,
        }
    )
    assert cfg.fields == (("title", 4.0), ("description", 1.0))
    assert cfg.minimum_should_match == "75%"
    assert cfg.max_size == 50
    assert cfg.price_ranges == ((None, 10.0), (10.0, None))
    assert cfg.rating_ranges == ((4.0, None), (3.0, None))
    assert cfg.facet_size == 5
    assert cfg.max_query_length == 256  # untouched default
    assert SearchConfig.from_dict(None) == SearchConfig()
    assert SearchConfig.from_dict({}) == SearchConfig()


def test_search_config_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as exc:
        SearchConfig.from_dict({"max_sise": 10})
    msg = str(exc.value)
    assert "max_sise" in msg and "max_size" in msg and "fields" in msg


@pytest.mark.parametrize(
    ("d", "needle"),
    [
        ({"fields": {"secret": 1}}, "secret"),
        ({"fields": {"title": 0}}, "title"),
        ({"fields": {"title": "high"}}, "title"),
        ({"fields": {}}, "fields"),
        ({"fields": "title"}, "fields"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": "10"}, "max_size"),
        ({"max_size": 20000}, "max_result_window"),
        ({"facet_size": True}, "facet_size"),
        ({"price_ranges": [[10]]}, "price_ranges"),
        ({"price_ranges": [[50, 10]]}, "price_ranges"),
        ({"price_ranges": "cheap"}, "price_ranges"),
        ({"rating_ranges": [[None, None]]}, "rating_ranges"),
        ({"minimum_should_match": ""}, "minimum_should_match"),
        ({"multi_match_type": "phrase"}, "best_fields, most_fields, cross_fields"),
        ({"multi_match_type": None}, "multi_match_type"),
        ({"tie_breaker": 1.5}, "tie_breaker"),
        ({"tie_breaker": "high"}, "tie_breaker"),
    ],
)
def test_search_config_validation(d: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SearchConfig.from_dict(d)
