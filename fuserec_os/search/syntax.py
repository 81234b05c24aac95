"""A small, safe Boolean query parser.

User text never reaches the engine's ``query_string``/Lucene syntax: :func:`parse` turns it into a
tiny AST (:class:`Terms`, :class:`Phrase`, :class:`FieldMatch`, :class:`Range`, :class:`And`,
:class:`Or`, :class:`Not`) which :mod:`fuserec_os.search.query_builder` compiles to ``bool`` DSL.
Only whitelisted fields are reachable, and any input yields a node: broken syntax falls back to
plain text (``fallback=True``) with a warning instead of raising.

Syntax
------
* bare words (adjacent bare words form one free-text group), ``"quoted phrases"``;
* ``AND``, ``OR``, ``NOT`` (uppercase only; lowercase and/or/not are ordinary words);
  precedence ``NOT`` > ``AND`` > ``OR``; adjacent clauses are AND-ed;
* ``-term``, ``-"phrase"``, ``-field:value``, ``-(group)`` negate; ``+term`` requires a term;
* parentheses;
* ``field:value``, ``field:"a phrase"``, ``field:[10 TO 50]``, ``field:[10 TO *]``,
  ``field:{10 TO 50}`` (exclusive), ``field:>=4``, ``field:<50``.

Fields (case-insensitive): title, description, brand, category, tags (alias tag), price, rating,
review_count, in_stock and ``attr.<key>``. Any other ``prefix:`` (``http://x``, ``secret:foo``)
is not syntax: the token is searched as plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "FIELDS",
    "FIELD_LIMITS",
    "MAX_DEPTH",
    "NUMERIC_FIELDS",
    "And",
    "FieldMatch",
    "Node",
    "Not",
    "Or",
    "ParseResult",
    "Phrase",
    "Range",
    "Terms",
    "has_syntax",
    "parse",
]


# ------------------------------------------------------------------------------------------------ nodes


@dataclass(frozen=True)
class Terms:
    """A free-text group of words, searched together across the configured fields."""

    words: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Phrase:
    """A quoted phrase searched across the configured fields."""

    text: str


@dataclass(frozen=True)
class FieldMatch:
    """``field:value`` or ``field:"a phrase"`` (``field`` is canonical: lowercase, ``attr.<key>``)."""

    field: str
    value: str
    phrase: bool = False


@dataclass(frozen=True)
class Range:
    """A numeric range on price, rating or review_count; a ``None`` bound is open."""

    field: str
    lower: float | None = None
    upper: float | None = None
    include_lower: bool = True
    include_upper: bool = True


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node: TypeAlias = Terms | Phrase | FieldMatch | Range | And | Or | Not


@dataclass
class ParseResult:
    """What :func:`parse` made of a text. ``node`` is None only for empty/whitespace input."""

    node: Node | None
    warnings: list[str] = field(default_factory=list)
    fallback: bool = False


# ------------------------------------------------------------------------------------------------ fields

#: Text-like fields reachable with ``field:``.
TEXT_FIELDS = ("title", "description", "brand", "category", "tags")
#: Numeric fields: ``field:value`` is an exact match, ranges and comparisons are allowed.
NUMERIC_FIELDS = ("price", "rating", "review_count")
FIELD_LIMITS: dict[str, tuple[float, float]] = {
    "review_count": (-(2**31), 2**31 - 1),  # an integer field
    "price": (-9.2e16, 9.2e16),  # a scaled_float: the value x 100 in a long
    "rating": (-3.4e38, 3.4e38),  # a float
}
"""What each numeric field of ``mappings/products.json`` can hold: a number beyond it is refused by the
engine, so the query builder clamps range bounds to these and turns an exact value beyond them into
"nothing matches" (with a warning), and the number never reaches the engine invalid."""
#: Every field name reachable with ``field:`` (plus ``attr.<key>``).
FIELDS = (*TEXT_FIELDS, *NUMERIC_FIELDS, "in_stock")
_ALIASES = {"tag": "tags"}
#: Maximum nesting of parentheses and negations (keeps the DSL shallow and the parser iterative-safe).
MAX_DEPTH = 8

_FIELD_RE = re.compile(r"^([A-Za-z_][\w.\-]*):(.*)$", re.DOTALL)
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_OPERATORS = ("AND", "OR", "NOT")
#: Characters stripped from the text when it cannot be parsed.
SYNTAX_CHARS = frozenset('"()[]{}:+-\\/~^*?!<>=&|')


def canonical_field(name: str) -> str | None:
    """The canonical field for a ``name:`` prefix, or None when it is not a queryable field."""
    low = name.lower()
    low = _ALIASES.get(low, low)
    if low in FIELDS:
        return low
    if low.startswith("attr.") and len(name) > len("attr."):
        return "attr." + name[len("attr.") :]
    return None


def parse_number(text: str) -> float | None:
    """``int``/``float`` for a plain decimal number (no exponent, inf or nan), else None."""
    t = text.strip()
    if not _NUM_RE.match(t):
        return None
    if "." in t:
        return float(t)
    return int(t)


# ------------------------------------------------------------------------------------------------ lexer


class _ParseError(Exception):
    """Internal: the text cannot be parsed; never leaves :func:`parse`."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # WORD, ATOM, LP, RP, AND, OR, NOT, MINUS, PLUS
    words: tuple[str, ...] = ()
    node: Node | None = None
    text: str = ""


def _read_phrase(text: str, i: int) -> tuple[str, int]:
    """The phrase starting at the quote at ``i`` and the index after its closing quote."""
    j = text.find('"', i + 1)
    if j < 0:
        raise _ParseError("unbalanced quotes: a '\"' is never closed")
    phrase = " ".join(text[i + 1 : j].split())
    if not phrase:
        raise _ParseError('empty phrase ""')
    return phrase, j + 1


def _bound(text: str, name: str) -> float | None:
    if text == "*":
        return None
    n = parse_number(text)
    if n is None:
        raise _ParseError(f"range bound {text!r} for {name} is not a number (use a number or *)")
    return n


def _read_range(text: str, i: int, name: str, fname: str) -> tuple[Range, int]:
    """``[lo TO hi]`` / ``{lo TO hi}`` starting at ``i``; returns the node and the index after it."""
    k = i + 1
    while k < len(text) and text[k] not in "]}":
        if text[k] in '[{()"':
            break
        k += 1
    if k >= len(text) or text[k] not in "]}":
        raise _ParseError(f"the range after '{name}:' is not closed with ']' or '}}'")
    parts = text[i + 1 : k].split()
    if len(parts) != 3 or parts[1].upper() != "TO":
        raise _ParseError(f"a range must look like {name}:[10 TO 50] or {name}:{{10 TO *}}")
    if fname not in NUMERIC_FIELDS:
        raise _ParseError(f"ranges only work on {', '.join(NUMERIC_FIELDS)}, not on {name!r}")
    node = Range(
        fname,
        lower=_bound(parts[0], name),
        upper=_bound(parts[2], name),
        include_lower=text[i] == "[",
        include_upper=text[k] == "]",
    )
    return node, k + 1


def _comparison(value: str, name: str, fname: str) -> Range:
    """``>=4``, ``>4``, ``<=50``, ``<50``."""
    op = value[:2] if value[:2] in (">=", "<=") else value[:1]
    n = parse_number(value[len(op) :])
    if n is None:
        raise _ParseError(f"'{name}:{value}' needs a number after {op!r}, e.g. {name}:{op}10")
    if fname not in NUMERIC_FIELDS:
        raise _ParseError(f"comparisons only work on {', '.join(NUMERIC_FIELDS)}, not on {name!r}")
    if op.startswith(">"):
        return Range(fname, lower=n, include_lower=op == ">=")
    return Range(fname, upper=n, include_upper=op == "<=")


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            toks.append(_Tok("LP", text="("))
            i += 1
        elif ch == ")":
            toks.append(_Tok("RP", text=")"))
            i += 1
        elif ch == '"':
            phrase, i = _read_phrase(text, i)
            toks.append(_Tok("ATOM", node=Phrase(phrase), text=f'"{phrase}"'))
        elif ch in "+-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != ")":
            toks.append(_Tok("MINUS" if ch == "-" else "PLUS", text=ch))
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '()"':
                i += 1
            word = text[start:i]
            if word in _OPERATORS:
                toks.append(_Tok(word, text=word))
                continue
            m = _FIELD_RE.match(word)
            fname = canonical_field(m.group(1)) if m else None
            if m is None or fname is None:
                # Not syntax: an unknown "prefix:" is searched as plain words.
                words = tuple(w for w in word.split(":") if w) if m else (word,)
                toks.append(_Tok("WORD", words=words or (word,), text=word))
                continue
            name, value = m.group(1), m.group(2)
            node: Node
            if value == "":
                if i < n and text[i] == '"':
                    phrase, i = _read_phrase(text, i)
                    node = FieldMatch(fname, phrase, phrase=True)
                elif i < n and text[i] == "(":
                    raise _ParseError(f"'{name}:(...)' is not supported; write {name}:value for each value")
                else:
                    raise _ParseError(f"'{name}:' has no value")
            elif value[0] in "[{":
                node, i = _read_range(text, start + len(name) + 1, name, fname)
            elif value[0] in "<>":
                node = _comparison(value, name, fname)
            else:
                node = FieldMatch(fname, value)
            toks.append(_Tok("ATOM", node=node, text=text[start:i]))
    return toks


# ------------------------------------------------------------------------------------------------ parser


def _has_alnum(words: tuple[str, ...]) -> bool:
    return any(ch.isalnum() for w in words for ch in w)


def _make(kind: type[And] | type[Or], children: list[Node]) -> Node:
    flat: list[Node] = []
    for c in children:
        if isinstance(c, kind):
            flat.extend(c.children)
        else:
            flat.append(c)
    if len(flat) == 1:
        return flat[0]
    return kind(tuple(flat))


class _Parser:
    """Recursive descent over the tokens.

    or := and (OR and)* ; and := unary ([AND] unary)* ; unary := (NOT|-|+) unary | primary
    """

    def __init__(self, toks: list[_Tok], warnings: list[str]) -> None:
        self.toks = toks
        self.pos = 0
        self.depth = 0
        self.warnings = warnings

    def peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def advance(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _ParseError(f"parentheses and negations nest deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            if tok.kind == "RP":
                raise _ParseError("unbalanced parentheses: ')' without a matching '('")
            raise _ParseError(f"unexpected {tok.text!r}")  # pragma: no cover - or_expr consumes the rest
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.advance()
            children.append(self.and_expr())
        return _make(Or, children)

    def _missing_clause(self, tok: _Tok | None, after: str | None) -> _ParseError:
        if after is not None:
            return _ParseError(f"'{after}' needs a clause on both sides")
        if tok is None:
            return _ParseError("a clause is missing at the end")
        if tok.kind == "RP":
            return _ParseError("empty parentheses or ')' without a clause before it")
        return _ParseError(f"'{tok.text}' needs a clause on both sides")

    def and_expr(self) -> Node:
        items: list[tuple[Node, bool]] = []  # (node, is a mergeable bare-word group)
        pending_and = False
        while True:
            tok = self.peek()
            if tok is None or tok.kind in ("OR", "RP"):
                if pending_and:
                    raise self._missing_clause(tok, "AND")
                if not items:
                    prev = self.toks[self.pos - 1] if self.pos > 0 else None
                    raise self._missing_clause(tok, "OR" if prev is not None and prev.kind == "OR" else None)
                break
            if tok.kind == "AND":
                if not items or pending_and:
                    raise self._missing_clause(tok, "AND")
                self.advance()
                pending_and = True
                continue
            node, bare = self.unary()
            if bare and not pending_and and items and items[-1][1]:
                prev_node = items[-1][0]
                assert isinstance(prev_node, Terms) and isinstance(node, Terms)
                items[-1] = (Terms(prev_node.words + node.words), True)
            else:
                items.append((node, bare))
            pending_and = False
        nodes = [n for n, _ in items]
        kept = [n for n in nodes if not (isinstance(n, Terms) and not _has_alnum(n.words))]
        if kept and len(kept) < len(nodes):
            dropped = [n.text for n in nodes if isinstance(n, Terms) and not _has_alnum(n.words)]
            self.warnings.append(f"ignored {', '.join(map(repr, dropped))}: no letters or digits")
            nodes = kept
        return _make(And, nodes)

    def unary(self) -> tuple[Node, bool]:
        tok = self.peek()
        assert tok is not None
        if tok.kind in ("NOT", "MINUS", "PLUS"):
            self.advance()
            nxt = self.peek()
            if nxt is None or nxt.kind in ("AND", "OR", "RP"):
                raise _ParseError(f"'{tok.text}' needs a clause after it")
            self.enter()
            child, _ = self.unary()
            self.depth -= 1
            if tok.kind == "PLUS":
                return child, False
            if isinstance(child, Not):  # NOT NOT x == x
                return child.child, False
            return Not(child), False
        return self.primary()

    def primary(self) -> tuple[Node, bool]:
        tok = self.advance()
        if tok.kind == "LP":
            self.enter()
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "RP":
                raise _ParseError("unbalanced parentheses: '(' is never closed")
            self.advance()
            self.depth -= 1
            return node, False
        if tok.kind == "WORD":
            return Terms(tok.words), True
        if tok.kind == "ATOM":
            assert tok.node is not None
            return tok.node, False
        raise self._missing_clause(tok, None)  # pragma: no cover - callers check the token first


# ------------------------------------------------------------------------------------------------ API


def strip_syntax(text: str) -> Terms | None:
    """The plain words of ``text`` with syntax characters and operators removed (the fallback).

    If nothing but syntax is left, the raw whitespace-separated words are kept (they are only
    ever searched as plain text, so they stay harmless). None only for empty input.
    """
    cleaned = "".join(" " if c in SYNTAX_CHARS else c for c in text)
    words = [w for w in cleaned.split() if w not in (*_OPERATORS, "TO")]
    if not words:
        words = text.split()
    return Terms(tuple(words)) if words else None


def parse(text: str) -> ParseResult:
    """Parse ``text`` into a node. Never raises: broken syntax gives a plain-text ``fallback``."""
    if not text or text.isspace():
        return ParseResult(None, [], False)
    warnings: list[str] = []
    try:
        node = _Parser(_lex(text), warnings).parse()
    except _ParseError as exc:
        return ParseResult(
            strip_syntax(text),
            [f"could not parse the query ({exc}); searched it as plain text instead"],
            True,
        )
    return ParseResult(node, warnings, False)


def has_syntax(text: str) -> bool:
    """Whether ``text`` uses any operator or syntax (quotes, parentheses, AND/OR/NOT, -/+, field:)."""
    try:
        toks = _lex(text)
    except _ParseError:
        return True
    return any(t.kind != "WORD" for t in toks)
