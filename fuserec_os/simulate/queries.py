"""What simulated shoppers type: intents, and the imperfect queries that express them.

A shopper thinks in an *intent* (a leaf product type, sometimes narrowed by a brand or a modifier such as
"waterproof" or "black") and types a query that expresses it imperfectly:

- ``canonical``: one of the catalog's own nouns for the leaf ("running shoes", "trainers");
- ``informal``: a nickname, abbreviation or regional word the catalog text never contains
  ("cans" for headphones, "sneaks", "lappy", "sox"): BM25 cannot find those products, a shop's
  synonym rules and category merchandising can;
- ``broad``: a department ("shoes", "kitchen") matching hundreds of products;
- ``specific``: the canonical noun with a brand, a tag, a colour or a gender ("stridewell running shoes",
  "waterproof hiking boots", "womens jeans");
- ``typo``: a canonical or specific query with one misspelt word, drawn from a small deterministic set
  of variants per word, so the number of distinct query strings stays bounded (a few thousand).

Every query string the simulator can produce is enumerated up front (:meth:`QueryVocabulary.all_queries`)
and mapped to the category path a shop's query-understanding rules would assign it
(:meth:`QueryVocabulary.category_for`): the leaf for most queries, the department for broad ones.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fuserec_os.simulate.catalog import BRANDS, CATEGORY_TREE

__all__ = [
    "BROAD_TERMS",
    "INFORMAL_TERMS",
    "QUERY_KINDS",
    "LeafQueries",
    "QueryIntent",
    "QueryVocabulary",
    "typo_variants",
]

QUERY_KINDS: tuple[str, ...] = ("canonical", "informal", "broad", "specific", "typo")
"""Kinds of query text, in the order their default probabilities are given."""

DEFAULT_KIND_WEIGHTS: tuple[float, ...] = (0.38, 0.11, 0.12, 0.31, 0.08)

INFORMAL_TERMS: Mapping[str, tuple[str, ...]] = {
    "electronics > headphones": ("cans", "buds", "earpods"),
    "electronics > laptops": ("lappy", "chromebook", "netbook"),
    "electronics > smartphones": ("cellphone", "iphone", "handset"),
    "electronics > smartwatches": ("fitbit", "smartband", "wristband"),
    "electronics > speakers": ("boombox", "jambox"),
    "electronics > cameras": ("dslr", "camcorder", "gopro"),
    "shoes > running shoes": ("joggers", "jogging sneaks"),
    "shoes > hiking boots": ("hikers", "trekkers"),
    "shoes > sneakers": ("sneaks", "plimsolls"),
    "shoes > sandals": ("thongs", "sliders", "jandals"),
    "shoes > dress shoes": ("brogues", "wingtips"),
    "clothing > t-shirts": ("crewneck", "tank"),
    "clothing > hoodies": ("hoody", "jumper", "sweater"),
    "clothing > jeans": ("pants", "trousers", "levis"),
    "clothing > jackets": ("parka", "anorak", "windbreaker"),
    "clothing > dresses": ("frock", "gown", "maxi"),
    "clothing > socks": ("sox", "hosiery"),
    "home > kitchen > coffee makers": ("percolator", "keurig"),
    "home > kitchen > cookware": ("wok", "pots", "griddle"),
    "home > kitchen > blenders": ("nutribullet", "liquidizer"),
    "home > bedding > sheets": ("duvet", "bedclothes"),
    "home > decor > lamps": ("lampshade", "nightlight", "sconce"),
    "sports & outdoors > yoga mats": ("yogamat",),
    "sports & outdoors > tents": ("bivvy", "tarp"),
    "sports & outdoors > backpacks": ("knapsack", "bookbag", "schoolbag"),
    "sports & outdoors > dumbbells": ("barbell", "dumbell"),
    "sports & outdoors > water bottles": ("flask", "hydroflask", "canteen"),
    "beauty > skincare": ("lotion", "moisturiser"),
    "beauty > hair care": ("hairwash", "detangler"),
    "beauty > makeup": ("lippy", "lipgloss", "cosmetics"),
    "beauty > fragrance": ("edp", "aftershave"),
    "toys > building sets": ("lego", "legos"),
    "toys > board games": ("boardgame", "monopoly"),
    "toys > dolls": ("barbie", "dolly"),
    "toys > rc cars": ("quadcopter", "buggy"),
    "toys > puzzles": ("brainteaser", "rubiks"),
}
"""Per leaf: words shoppers use that the generated catalog text does not contain (checked by a unit test)."""

BROAD_TERMS: Mapping[str, tuple[str, ...]] = {
    "electronics": ("electronics",),
    "shoes": ("shoes",),
    "clothing": ("clothing", "clothes"),
    "home": ("home",),
    "home > kitchen": ("kitchen",),
    "home > bedding": ("bedding",),
    "home > decor": ("decor",),
    "sports & outdoors": ("sports", "outdoors"),
    "beauty": ("beauty",),
    "toys": ("toys",),
}
"""Department-level queries and the category path (prefix) they denote."""

_GENDER_WORDS = {"men": "mens", "women": "womens", "kids": "kids"}
_COLORS_PER_LEAF = 4
_TAG_STOP = frozenset({"bestseller", "new", "sale", "gift", "kids", "family", "beauty"})
_KEYBOARD_NEIGHBOURS = {
    "a": "sq",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


@dataclass(frozen=True, slots=True)
class QueryIntent:
    """What a shopper wants (``leaf``, optional ``brand``/``modifier``) and the ``text`` they typed.

    ``category`` is the category path the shop's query rules map ``text`` to (the leaf, or a department
    for broad queries); ``kind`` is one of :data:`QUERY_KINDS`, or ``"browse"`` for a product page
    reached without a query (then ``text`` is empty).
    """

    leaf: str
    top: str
    kind: str
    text: str
    category: str
    brand: str | None = None
    modifier: str | None = None


@dataclass(frozen=True)
class LeafQueries:
    """The query vocabulary of one leaf category."""

    leaf: str
    top: str
    nouns: tuple[str, ...]
    informal: tuple[str, ...]
    broad: tuple[tuple[str, str], ...]  # (text, category prefix)
    brands: tuple[str, ...]
    modifiers: tuple[tuple[str, str], ...]  # (word typed, facet value matched on the product)


def typo_variants(word: str, n: int = 2) -> tuple[str, ...]:
    """Up to ``n`` deterministic misspellings of ``word`` (words shorter than 4 letters get none).

    Candidates are a dropped letter, two swapped neighbours, a doubled letter and a keyboard-neighbour
    slip, all away from the first letter (people rarely get that wrong); the choice is seeded by the
    word itself (CRC32, not Python's randomised ``hash``), so it is stable across runs and processes.
    """
    if len(word) < 4 or not word.isalpha():
        return ()
    cands: list[str] = []
    for i in range(1, len(word)):
        cands.append(word[:i] + word[i + 1 :])
        if i + 1 < len(word) and word[i] != word[i + 1]:
            cands.append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        cands.append(word[:i] + word[i] + word[i:])
        for c in _KEYBOARD_NEIGHBOURS.get(word[i], ""):
            cands.append(word[:i] + c + word[i + 1 :])
    unique = sorted({c for c in cands if c != word})
    rng = random.Random(zlib.crc32(word.encode("utf-8")))
    return tuple(rng.sample(unique, k=min(n, len(unique))))


def _leaf_queries(top: str, leaf_name: str) -> LeafQueries:
    spec = CATEGORY_TREE[top][leaf_name]
    path = f"{top} > {leaf_name}"
    nouns = tuple(dict.fromkeys(n.lower() for n in spec.nouns))
    broad: list[tuple[str, str]] = []
    parts = path.split(" > ")
    for depth in range(1, len(parts)):
        prefix = " > ".join(parts[:depth])
        broad.extend((term, prefix) for term in BROAD_TERMS.get(prefix, ()))
    brands = tuple(dict.fromkeys(b.name for b in BRANDS[top]))
    mods: list[tuple[str, str]] = []
    noun_words = {w for n in nouns for w in n.split()}
    broad_words = {t for terms in BROAD_TERMS.values() for t in terms}
    for tag in spec.tags:
        if tag not in _TAG_STOP and tag not in noun_words and tag not in broad_words:
            mods.append((tag, tag))
    for g in dict.fromkeys(spec.genders):
        if g in _GENDER_WORDS:
            mods.append((_GENDER_WORDS[g], g))
    for color in tuple(dict.fromkeys(spec.attributes.get("color", ())))[:_COLORS_PER_LEAF]:
        mods.append((color, color))
    return LeafQueries(
        leaf=path,
        top=top,
        nouns=nouns,
        informal=INFORMAL_TERMS.get(path, ()),
        broad=tuple(broad),
        brands=brands,
        modifiers=tuple(mods),
    )


class QueryVocabulary:
    """Every query the simulator can type, per leaf, with the category a shop would map it to."""

    def __init__(self, kind_weights: Sequence[float] = DEFAULT_KIND_WEIGHTS) -> None:
        if len(kind_weights) != len(QUERY_KINDS) or any(w < 0 for w in kind_weights) or sum(kind_weights) <= 0:
            raise ValueError(f"kind_weights needs {len(QUERY_KINDS)} weights >= 0 for {', '.join(QUERY_KINDS)}")
        self.kind_weights = tuple(float(w) for w in kind_weights)
        self._kind_cum = []
        total = 0.0
        for w in self.kind_weights:
            total += w
            self._kind_cum.append(total)
        self.leaves: dict[str, LeafQueries] = {
            f"{top} > {leaf}": _leaf_queries(top, leaf) for top, leaves in CATEGORY_TREE.items() for leaf in leaves
        }
        self._category: dict[str, str] = {}
        self._kind: dict[str, str] = {}
        for lq in self.leaves.values():
            for text, prefix in lq.broad:
                self._register(text, prefix, "broad")
        for lq in self.leaves.values():
            for text in lq.nouns:
                self._register(text, lq.leaf, "canonical")
            for text in lq.informal:
                self._register(text, lq.leaf, "informal")
            for text in self._specific_texts(lq):
                self._register(text, lq.leaf, "specific")
        for lq in self.leaves.values():
            for base in (*lq.nouns, *self._specific_texts(lq)):
                for typo in self._typos(base):
                    self._register(typo, self._category[base], "typo")

    def _register(self, text: str, category: str, kind: str) -> None:
        if text not in self._category:
            self._category[text] = category
            self._kind[text] = kind

    @staticmethod
    def _specific_texts(lq: LeafQueries) -> list[str]:
        noun = lq.nouns[0]
        return [f"{b.lower()} {noun}" for b in lq.brands] + [f"{word} {noun}" for word, _ in lq.modifiers]

    @staticmethod
    def _typos(base: str) -> list[str]:
        words = base.split(" ")
        out = []
        for i, w in enumerate(words):
            for v in typo_variants(w):
                out.append(" ".join([*words[:i], v, *words[i + 1 :]]))
        return out

    def all_queries(self) -> list[str]:
        """Every distinct query string the simulator can produce (bounded: a few thousand)."""
        return list(self._category)

    def category_for(self, text: str) -> str | None:
        """The category path a shop's query rules assign to ``text`` (None for text outside the vocabulary)."""
        return self._category.get(text)

    def kind_of(self, text: str) -> str | None:
        return self._kind.get(text)

    def intent(
        self,
        rng: random.Random,
        leaf: str,
        favourite_brands: Sequence[str] = (),
        kind: str | None = None,
    ) -> QueryIntent:
        """Draw a query for an intent on ``leaf``; specific queries prefer the shopper's favourite brands."""
        lq = self.leaves[leaf]
        if kind is None:
            r = rng.random() * self._kind_cum[-1]
            kind = QUERY_KINDS[next(i for i, c in enumerate(self._kind_cum) if r < c)]
        if kind == "informal" and not lq.informal:
            kind = "canonical"
        if kind == "canonical":
            text = lq.nouns[0] if rng.random() < 0.5 else rng.choice(lq.nouns)
            return QueryIntent(leaf, lq.top, kind, text, self._category[text])
        if kind == "informal":
            text = rng.choice(lq.informal)
            return QueryIntent(leaf, lq.top, kind, text, self._category[text])
        if kind == "broad":
            text, prefix = rng.choice(lq.broad)
            return QueryIntent(leaf, lq.top, kind, text, prefix)
        brand, modifier, text = self._specific(rng, lq, favourite_brands)
        if kind == "typo":
            variants = self._typos(text)
            if not variants:
                return QueryIntent(leaf, lq.top, "specific", text, self._category[text], brand, modifier)
            typo = rng.choice(variants)
            return QueryIntent(leaf, lq.top, "typo", typo, self._category[typo], brand, modifier)
        kind = "canonical" if brand is None and modifier is None else "specific"
        return QueryIntent(leaf, lq.top, kind, text, self._category[text], brand, modifier)

    def _specific(
        self, rng: random.Random, lq: LeafQueries, favourite_brands: Sequence[str]
    ) -> tuple[str | None, str | None, str]:
        noun = lq.nouns[0]
        r = rng.random()
        fav = [b for b in favourite_brands if b in lq.brands]
        if r < 0.2:
            return None, None, noun  # the plain noun (typed as is, or misspelt)
        if r < 0.55 and (fav or lq.brands):
            brand = rng.choice(fav) if fav and rng.random() < 0.8 else rng.choice(lq.brands)
            return brand, None, f"{brand.lower()} {noun}"
        if lq.modifiers:
            word, value = rng.choice(lq.modifiers)
            return None, value, f"{word} {noun}"
        return None, None, noun
