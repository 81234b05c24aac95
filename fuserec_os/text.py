"""Query and title terms: one tokeniser for ``title_term_share`` and the term-level engagement stats.

Why our own and not the engine's analyzer: the features must be computed identically offline (pandas, no
engine) and online (the proxy), in microseconds. Lower-cased alphanumeric runs plus a tiny suffix stemmer
(``-s``, ``-es``, ``-ing``, then a final ``-e``) are enough to make "shoes" ~ "shoe", "boxes" ~ "box",
"charging" ~ "charge", and keep the vocabulary small; anything cleverer belongs in the engine's text score.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["normalize_query", "stem", "terms"]

_TOKEN = re.compile(r"[0-9a-z]+")
_VOWELS = re.compile(r"[aeiouy]")
_ES_AFTER = ("s", "x", "z", "ch", "sh")  # "boxes", "glasses", "watches": the plural adds -es
_DOUBLE_KEEP = frozenset("lsz")  # "running" -> "run", but "falling" -> "fall"


def normalize_query(text: str) -> str:
    """Lower-cased, whitespace-collapsed query text: "Running  Shoes" and "running shoes" count as one query.

    Here, with no pandas, because the config (business rules keyed by query) is read by every command.
    """
    return " ".join(text.lower().split())


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Strip a plural (-es, -s), then -ing, then a final -e, so the forms of a word meet.

    The final -e goes in every case ("shoe" -> "sho", "shoes" -> "shoe" -> "sho"), which is what makes
    "-s" vs "-es" plurals and "charge"/"charging" agree without a dictionary. Short words are left alone.
    """
    w = word
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(_ES_AFTER):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing") and _VOWELS.search(w[:-3]):  # not "string" -> "str"
        w = w[:-3]
        if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in _DOUBLE_KEEP and w[-1].isalpha():
            w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


@lru_cache(maxsize=65536)
def terms(text: str) -> tuple[str, ...]:
    """Distinct stemmed terms of ``text`` in first-occurrence order (empty for empty text).

    Cached: the same queries and titles come back constantly, and tokenising is the only string work
    in feature assembly.
    """
    seen: dict[str, None] = {}
    for tok in _TOKEN.findall(text.lower()):
        seen.setdefault(stem(tok), None)
    return tuple(seen)
