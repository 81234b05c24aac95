"""The safe Boolean parser: AST shapes, unknown fields as text, fallbacks that never raise."""

from __future__ import annotations

import random

import pytest

from fuserec_os.search.syntax import (
    MAX_DEPTH,
    And,
    FieldMatch,
    Not,
    Or,
    Phrase,
    Range,
    Terms,
    has_syntax,
    parse,
)


def node_of(text: str) -> object:
    result = parse(text)
    assert not result.fallback, result.warnings
    return result.node


# ------------------------------------------------------------------------------------------------ shapes


def test_empty_input_gives_no_node() -> None:
    for text in ("", "   ", "\t\n"):
        r = parse(text)
        assert r.node is None and not r.fallback and r.warnings == []


def test_adjacent_bare_words_form_one_group() -> None:
    assert node_of("red running shoes") == Terms(("red", "running", "shoes"))


def test_explicit_and_splits_groups() -> None:
    assert node_of("red AND shoes") == And((Terms(("red",)), Terms(("shoes",))))


def test_lowercase_operators_are_words() -> None:
    assert node_of("salt and pepper or not") == Terms(("salt", "and", "pepper", "or", "not"))


def test_or() -> None:
    assert node_of("nike OR adidas") == Or((Terms(("nike",)), Terms(("adidas",))))


def test_precedence_not_over_and_over_or() -> None:
    assert node_of("a OR b AND NOT c") == Or((Terms(("a",)), And((Terms(("b",)), Not(Terms(("c",)))))))


def test_parentheses_override_precedence() -> None:
    assert node_of("(a OR b) AND c") == And((Or((Terms(("a",)), Terms(("b",)))), Terms(("c",))))


def test_nested_and_is_flattened() -> None:
    assert node_of("(a AND b) AND c") == And((Terms(("a",)), Terms(("b",)), Terms(("c",))))


def test_minus_negates_term_phrase_field_and_group() -> None:
    assert node_of('shoes -red -"high heel" -brand:nike -(a OR b)') == And(
        (
            Terms(("shoes",)),
            Not(Terms(("red",))),
            Not(Phrase("high heel")),
            Not(FieldMatch("brand", "nike")),
            Not(Or((Terms(("a",)), Terms(("b",))))),
        )
    )


def test_hyphen_inside_a_word_is_not_negation() -> None:
    assert node_of("t-shirt x-large") == Terms(("t-shirt", "x-large"))
    assert not has_syntax("t-shirt - cotton")


def test_plus_term_is_its_own_required_clause() -> None:
    assert node_of("+red shoes") == And((Terms(("red",)), Terms(("shoes",))))


def test_double_negation_cancels() -> None:
    assert node_of("NOT NOT red") == Terms(("red",))


def test_phrase_whitespace_is_normalised() -> None:
    assert node_of('"running   shoes"') == Phrase("running shoes")


def test_phrase_next_to_words() -> None:
    assert node_of('cheap "running shoes" men') == And((Terms(("cheap",)), Phrase("running shoes"), Terms(("men",))))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("brand:nike", FieldMatch("brand", "nike")),
        ("Brand:Nike", FieldMatch("brand", "Nike")),
        ("TITLE:laptop", FieldMatch("title", "laptop")),
        ("tag:sport", FieldMatch("tags", "sport")),
        ('description:"water resistant"', FieldMatch("description", "water resistant", phrase=True)),
        ("attr.color:red", FieldMatch("attr.color", "red")),
        ('attr.size:"x large"', FieldMatch("attr.size", "x large", phrase=True)),
        ("in_stock:true", FieldMatch("in_stock", "true")),
        ("price:20", FieldMatch("price", "20")),
        ("title:a:b", FieldMatch("title", "a:b")),
    ],
)
def test_field_matches(text: str, expected: FieldMatch) -> None:
    assert node_of(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("price:[10 TO 50]", Range("price", 10, 50)),
        ("price:[10 to 50]", Range("price", 10, 50)),
        ("price:[10 TO *]", Range("price", 10, None)),
        ("price:[* TO 50]", Range("price", None, 50)),
        ("price:{10 TO 50}", Range("price", 10, 50, include_lower=False, include_upper=False)),
        ("price:[10 TO 50}", Range("price", 10, 50, include_upper=False)),
        ("rating:[4.5 TO *]", Range("rating", 4.5, None)),
        ("rating:>=4", Range("rating", lower=4)),
        ("rating:>4", Range("rating", lower=4, include_lower=False)),
        ("price:<50", Range("price", upper=50, include_upper=False)),
        ("price:<=50", Range("price", upper=50)),
        ("review_count:>=100", Range("review_count", lower=100)),
    ],
)
def test_ranges(text: str, expected: Range) -> None:
    assert node_of(text) == expected


def test_range_next_to_other_clauses() -> None:
    assert node_of("laptop price:[100 TO 500] brand:dell") == And(
        (Terms(("laptop",)), Range("price", 100, 500), FieldMatch("brand", "dell"))
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("secret:foo", ("secret", "foo")),
        ("http://example.com/a", ("http", "//example.com/a")),
        ("_source:password", ("_source", "password")),
        ("script:foo bar", ("script", "foo", "bar")),
    ],
)
def test_unknown_field_is_plain_text(text: str, words: tuple[str, ...]) -> None:
    assert not has_syntax(text)
    assert node_of(text) == Terms(words)


def test_negated_unknown_field_negates_the_whole_token() -> None:
    assert node_of("shoes -secret:foo") == And((Terms(("shoes",)), Not(Terms(("secret", "foo")))))


def test_junk_only_clause_is_dropped_with_warning() -> None:
    r = parse("& AND shoes")
    assert r.node == Terms(("shoes",))
    assert not r.fallback
    assert any("&" in w for w in r.warnings)


# ------------------------------------------------------------------------------------------------ has_syntax


@pytest.mark.parametrize("text", ["red shoes", "c++ book", "10:30 alarm clock", "t-shirt", "a & b", "shoes and socks"])
def test_has_syntax_false_for_plain_text(text: str) -> None:
    assert not has_syntax(text)


@pytest.mark.parametrize(
    "text",
    ['"red shoes"', "red AND shoes", "NOT red", "-red", "+red", "(red)", "brand:nike", "price:>5", '"open'],
)
def test_has_syntax_true(text: str) -> None:
    assert has_syntax(text)


# ------------------------------------------------------------------------------------------------ fallback


@pytest.mark.parametrize(
    ("text", "words", "reason"),
    [
        ("shoes AND", ("shoes",), "AND"),
        ("AND shoes", ("shoes",), "AND"),
        ("shoes OR", ("shoes",), "OR"),
        ("NOT", ("NOT",), "NOT"),
        ("red NOT", ("red",), "NOT"),
        ('"running shoes', ("running", "shoes"), "quote"),
        ("(red OR blue", ("red", "blue"), "parenthes"),
        ("red) shoes", ("red", "shoes"), "parenthes"),
        ("price:[abc TO 5]", ("price", "abc", "5"), "abc"),
        ("price:[10 TO 50", ("price", "10", "50"), "closed"),
        ("price:[10 50]", ("price", "10", "50"), "range"),
        ("price:>=cheap", ("price", "cheap"), "number"),
        ("title:[a TO b]", ("title", "a", "b"), "ranges only"),
        ("title: shoes", ("title", "shoes"), "no value"),
        ("brand:(nike OR adidas)", ("brand", "nike", "adidas"), "not supported"),
    ],
)
def test_broken_syntax_falls_back_to_stripped_text(text: str, words: tuple[str, ...], reason: str) -> None:
    r = parse(text)
    assert r.fallback
    assert r.node == Terms(words)
    assert len(r.warnings) == 1
    assert reason in r.warnings[0]


def test_only_syntax_characters_still_give_a_text_node() -> None:
    r = parse("()")
    assert r.fallback and isinstance(r.node, Terms) and r.node.words == ("()",)


def test_deep_nesting_falls_back_instead_of_recursing() -> None:
    ok = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert node_of(ok) == Terms(("a",))
    too_deep = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    r = parse(too_deep)
    assert r.fallback and r.node == Terms(("a",))
    r = parse("(" * 5000 + "a")
    assert r.fallback
    r = parse("NOT " * 2000 + "a")
    assert r.fallback
    r = parse("-" * 5000 + "a")
    assert r.fallback


NASTY = [
    *'abc xyz12 ""(){}[]:\\/~^*?!+-&|<>=.,;\'#@%$\t\n\u00e9\u4e2d\u200b\x00',
    "AND",
    "OR",
    "NOT",
    "TO",
    " price:",
    " title:",
    " attr.c:",
    " in_stock:",
]


def test_random_input_never_raises() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        text = "".join(rng.choice(NASTY) for _ in range(rng.randint(0, 40)))
        r = parse(text)
        if text.strip():
            assert r.node is not None, text
        else:
            assert r.node is None
        assert isinstance(has_syntax(text), bool)
