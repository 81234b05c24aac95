"""Business rules after the model: the ``rules`` section of the ranking YAML and the :class:`BusinessRules` that
applies it (the :class:`~fuserec_os.rerank.stage.RuleSet` the rerank stage calls).

Rules reorder or drop the reranked candidates, never add one. They run in this fixed order, each on the
previous one's output, so a later rule wins over an earlier one:

1. **out of stock** (``out_of_stock``): ``keep`` (default: a personalized list holds what the plain search
   holds); ``demote`` moves every product whose document says ``in_stock: false`` after every other product,
   relative order kept; ``drop`` removes them. A product without stock information counts as in stock.
2. **brand cap** (``max_per_brand_first_page``, null = off): on the first page (the request's page size) at
   most N products of one brand; the extras move to just after the first page, relative order kept, and the
   next products fill their places. When too few other products exist to fill the page, the first extras stay
   at the end of the first page (the cap gives way, said in the notes). Products without a brand are not
   capped.
3. **boosts** (``boosts``, per query): ``{product id: N}`` moves the product up N places (not above the first),
   ``{product id: top}`` moves it to the first place. Every target is computed from the order before any boost;
   boosts competing for a place are settled by target, then by the order before boosting.
4. **pins** (``pins``, per query): ``[P1, P2]`` puts P1 at position 1 and P2 at 2; ``null`` leaves a position
   free (``[P1, null, P3]``). Pins win over everything else (a pinned out-of-stock product kept by ``demote``
   comes back up). A pin beyond the end of the list goes to the end. A pinned product that is not a candidate
   (or was dropped as out of stock) is reported in the notes, never added: the stage fetches pinned products
   with the behavioural candidates (:meth:`BusinessRules.pinned_ids`), so filters still apply.

Queries in the config are normalised like the search log's (:func:`~fuserec_os.behaviour.events.normalize_query`:
lower case, whitespace collapsed), so ``Running  Shoes`` and ``running shoes`` are one query. Every key is
checked and a product id may appear once per query (pinned twice, boosted twice or both pinned and boosted is
a :class:`~fuserec_os.errors.ConfigError`).

Pure and fast: no I/O, one pass per rule over the candidates (O(n), plus sorting the few pins and boosts of the
query). ``new_rank`` of the returned hits is stale: the stage renumbers them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fuserec_os.behaviour.config import check_keys
from fuserec_os.errors import ConfigError
from fuserec_os.text import normalize_query

if TYPE_CHECKING:  # annotations only: the config imports this module, and a plain search loads no pandas
    from fuserec_os.rerank.stage import RankedHit

__all__ = ["OUT_OF_STOCK", "TOP", "BusinessRules", "RulesConfig"]

OUT_OF_STOCK: tuple[str, ...] = ("keep", "demote", "drop")
TOP = "top"
_KEYS = ("out_of_stock", "max_per_brand_first_page", "pins", "boosts")


# ------------------------------------------------------------------------------------------ the config section


@dataclass(frozen=True)
class RulesConfig:
    """The ``rules`` section: see the module docstring for what each rule does and their order.

    ``pins`` maps a normalised query to product ids by position (None: a free position); ``boosts`` maps a
    normalised query to ``{product id: places up (>= 1) or "top"}``. Both are normalised and checked on
    construction, so ``RulesConfig(pins={"Running  Shoes": ["P1"]})`` is the same as the YAML.
    """

    out_of_stock: str = "keep"
    max_per_brand_first_page: int | None = None
    pins: Mapping[str, Sequence[str | None]] = field(default_factory=dict)
    boosts: Mapping[str, Mapping[str, int | str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.out_of_stock not in OUT_OF_STOCK:
            raise ConfigError(f"rules.out_of_stock: {self.out_of_stock!r} must be one of {', '.join(OUT_OF_STOCK)}")
        cap = self.max_per_brand_first_page
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ConfigError(
                f"rules.max_per_brand_first_page: {cap!r} must be a whole number >= 1, or null for no cap"
            )
        pins = _parse_pins(self.pins)
        boosts = _parse_boosts(self.boosts)
        for query, amounts in boosts.items():
            both = [pid for pid in amounts if pid in pins.get(query, ())]
            if both:
                raise ConfigError(
                    f"rules.boosts.{query}.{both[0]}: {both[0]} is also pinned for this query (pins win); "
                    "give it either a pin or a boost"
                )
        object.__setattr__(self, "pins", pins)
        object.__setattr__(self, "boosts", boosts)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> RulesConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("'rules' must be a mapping (e.g. rules: {out_of_stock: demote, pins: {...}})")
        check_keys("rules", raw, _KEYS)
        # null means "the default", as everywhere in this config (for the brand cap the default is off)
        return cls(**{str(k): v for k, v in raw.items() if v is not None})


def _query(section: str, raw: Any, seen: dict[str, str]) -> str:
    """The normalised query for a config key; ConfigError for a blank one or one given twice."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(f"rules.{section}: {raw!r} is not a query (expected the search text, e.g. running shoes)")
    text = str(raw)
    query = normalize_query(text)
    if not query:
        raise ConfigError(f"rules.{section}: a blank query ({text!r}) cannot have {section}; name the search text")
    if query in seen:
        raise ConfigError(
            f"rules.{section}: {seen[query]!r} and {text!r} are the same query once normalised ({query!r}); "
            "give it once"
        )
    seen[query] = text
    return query


def _product_id(where: str, raw: Any) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where}: {raw!r} is not a product id (expected the product_id text, e.g. P000123)")
    return raw.strip()


def _parse_pins(raw: Any) -> dict[str, tuple[str | None, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "rules.pins must be a mapping of query -> product ids in position order "
            '(e.g. pins: {"running shoes": [P000123, P000456]})'
        )
    out: dict[str, tuple[str | None, ...]] = {}
    seen: dict[str, str] = {}
    for key, ids in raw.items():
        query = _query("pins", key, seen)
        where = f"rules.pins.{query}"
        if isinstance(ids, (str, int)) and not isinstance(ids, bool):
            ids = [ids]  # one product: pinned first
        if not isinstance(ids, (list, tuple)) or not any(pid is not None for pid in ids):
            raise ConfigError(
                f"{where}: {ids!r} must be a list of product ids, position 1 first (null leaves a position free)"
            )
        slots: list[str | None] = []
        positions: dict[str, int] = {}
        for pos, item in enumerate(ids, start=1):
            if item is None:
                slots.append(None)
                continue
            pid = _product_id(where, item)
            if pid in positions:
                raise ConfigError(
                    f"{where}: {pid} is pinned twice (positions {positions[pid]} and {pos}); a product has one place"
                )
            positions[pid] = pos
            slots.append(pid)
        while slots[-1] is None:
            slots.pop()
        out[query] = tuple(slots)
    return out


def _parse_boosts(raw: Any) -> dict[str, dict[str, int | str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "rules.boosts must be a mapping of query -> {product id: places up or top} "
            '(e.g. boosts: {"running shoes": {P000789: 5, P000042: top}})'
        )
    out: dict[str, dict[str, int | str]] = {}
    seen: dict[str, str] = {}
    for key, amounts in raw.items():
        query = _query("boosts", key, seen)
        where = f"rules.boosts.{query}"
        if not isinstance(amounts, Mapping) or not amounts:
            raise ConfigError(f"{where}: {amounts!r} must be a mapping of product id -> places up (>= 1) or top")
        parsed: dict[str, int | str] = {}
        for item, amount in amounts.items():
            pid = _product_id(where, item)
            if pid in parsed:
                raise ConfigError(f"{where}: {pid} is boosted twice; a product has one boost per query")
            if amount != TOP and (not isinstance(amount, int) or isinstance(amount, bool) or amount < 1):
                raise ConfigError(f"{where}.{pid}: {amount!r} must be a whole number of places up (>= 1) or top")
            parsed[pid] = amount
        out[query] = parsed
    return out


# ------------------------------------------------------------------------------------------ the rules


class BusinessRules:
    """The :class:`~fuserec_os.rerank.stage.RuleSet` for a :class:`RulesConfig`: ``RerankStage(rules=...)``."""

    def __init__(self, config: RulesConfig | None = None) -> None:
        self.config = config or RulesConfig()
        # (position, product id) in position order, precomputed once per query
        self._pins: dict[str, tuple[tuple[int, str], ...]] = {
            q: tuple((pos, pid) for pos, pid in enumerate(slots, start=1) if pid is not None)
            for q, slots in self.config.pins.items()
        }
        self._boosts: dict[str, tuple[tuple[str, int | str], ...]] = {
            q: tuple(amounts.items()) for q, amounts in self.config.boosts.items()
        }

    def pinned_ids(self, query_norm: str) -> tuple[str, ...]:
        """Products pinned for this query, position order (the stage fetches them as candidates)."""
        return tuple(pid for _, pid in self._pins.get(normalize_query(query_norm), ()))

    def apply(
        self, query_norm: str, ranked: list[RankedHit], page_size: int
    ) -> tuple[list[RankedHit], tuple[str, ...]]:
        """Stock, then brand cap, then boosts, then pins; the new order and one short note per thing done."""
        query = normalize_query(query_norm)
        cfg = self.config
        notes: list[str] = []
        out = list(ranked)
        dropped: set[str] = set()
        if cfg.out_of_stock != "keep" and out:
            out = _stock(out, cfg.out_of_stock, dropped, notes)
        if cfg.max_per_brand_first_page is not None and page_size > 0 and out:
            out = _brand_cap(out, cfg.max_per_brand_first_page, page_size, notes)
        boosts = self._boosts.get(query)
        if boosts:
            out = _boost(out, query, boosts, notes)
        pins = self._pins.get(query)
        if pins:
            out = _pin(out, query, pins, dropped, notes)
        return out, tuple(notes)


def _stock(items: list[RankedHit], mode: str, dropped: set[str], notes: list[str]) -> list[RankedHit]:
    kept: list[RankedHit] = []
    out_of_stock: list[RankedHit] = []
    for h in items:
        (out_of_stock if h.hit.source.get("in_stock") is False else kept).append(h)
    if not out_of_stock:
        return items
    n = len(out_of_stock)
    if mode == "drop":
        dropped.update(h.id for h in out_of_stock)
        notes.append(f"dropped {n} out-of-stock product{_s(n)}")
        return kept
    notes.append(f"demoted {n} out-of-stock product{_s(n)}")
    return kept + out_of_stock


def _brand(h: RankedHit) -> str | None:
    brand = h.hit.source.get("brand")
    return brand if isinstance(brand, str) and brand else None


def _brand_cap(items: list[RankedHit], cap: int, page_size: int, notes: list[str]) -> list[RankedHit]:
    page: list[RankedHit] = []
    over: list[RankedHit] = []
    counts: dict[str, int] = {}
    i = 0
    while i < len(items) and len(page) < page_size:
        h = items[i]
        i += 1
        brand = _brand(h)
        if brand is not None:
            if counts.get(brand, 0) >= cap:
                over.append(h)
                continue
            counts[brand] = counts.get(brand, 0) + 1
        page.append(h)
    if not over:
        return items
    short = page_size - len(page)  # > 0 only when the list ran out before the page was full
    if short > 0:
        gave, over = over[:short], over[short:]
        page.extend(gave)
        notes.append(
            f"brand cap {cap} gave way: {len(gave)} product{_s(len(gave))} over the cap kept on the first page "
            "(too few other products)"
        )
    if over:
        per_brand: dict[str, int] = {}
        for h in over:
            b = _brand(h) or ""
            per_brand[b] = per_brand.get(b, 0) + 1
        brands = ", ".join(f"{b} {c}" for b, c in list(per_brand.items())[:3]) + (", ..." if len(per_brand) > 3 else "")
        notes.append(f"brand cap {cap}: moved {len(over)} product{_s(len(over))} after the first page ({brands})")
    return page + over + items[i:]


def _positions(items: list[RankedHit], wanted: set[str]) -> dict[str, int]:
    """Index in ``items`` of each wanted product id that is there (one pass, no index of the whole list)."""
    found: dict[str, int] = {}
    for i, h in enumerate(items):
        if h.hit.id in wanted:
            found[h.hit.id] = i
    return found


def _without(items: list[RankedHit], taken: list[int]) -> list[RankedHit]:
    """``items`` minus the (sorted) indices ``taken``, by slices."""
    rest: list[RankedHit] = []
    start = 0
    for i in taken:
        rest.extend(items[start:i])
        start = i + 1
    rest.extend(items[start:])
    return rest


def _boost(
    items: list[RankedHit], query: str, boosts: Sequence[tuple[str, int | str]], notes: list[str]
) -> list[RankedHit]:
    index = _positions(items, {pid for pid, _ in boosts})
    moves: list[tuple[int, int]] = []  # (target index, index before boosting)
    for pid, amount in boosts:
        i = index.get(pid)
        if i is None:
            notes.append(f"boost of {pid} for '{query}' skipped: not a candidate")
            continue
        target = 0 if amount == TOP else max(0, i - int(amount))
        if target < i:
            moves.append((target, i))
    if not moves:
        return items
    moves.sort()
    rest = _without(items, sorted(i for _, i in moves))
    out: list[RankedHit] = []
    r = 0
    for target, i in moves:
        if len(out) < target:
            take = target - len(out)
            out.extend(rest[r : r + take])
            r += take
        out.append(items[i])
        asked = "" if len(out) == target + 1 else f" (asked {target + 1}: taken by other boosts)"
        notes.append(f"boosted {items[i].id} from {i + 1} to {len(out)} for '{query}'{asked}")
    out.extend(rest[r:])
    return out


def _pin(
    items: list[RankedHit],
    query: str,
    pins: Sequence[tuple[int, str]],
    dropped: set[str],
    notes: list[str],
) -> list[RankedHit]:
    index = _positions(items, {pid for _, pid in pins})
    present: list[tuple[int, int]] = []  # (asked position, index in items), position order
    for pos, pid in pins:
        i = index.get(pid)
        if i is None:
            why = "dropped as out of stock" if pid in dropped else "not a candidate"
            notes.append(f"pin of {pid} at {pos} for '{query}' skipped: {why}")
        else:
            present.append((pos, i))
    if not present:
        return items
    rest = _without(items, sorted(i for _, i in present))
    out: list[RankedHit] = []
    r = 0
    for pos, i in present:  # position order; the others fill the places between, a pin beyond them goes last
        take = pos - 1 - len(out)
        if take > 0:
            out.extend(rest[r : r + take])
            r = min(r + take, len(rest))
        out.append(items[i])
        asked = "" if pos == len(out) else f" (asked {pos}: too few candidates)"
        notes.append(f"pinned {items[i].id} at {len(out)} for '{query}'{asked}")
    out.extend(rest[r:])
    return out


def _s(n: int) -> str:
    return "" if n == 1 else "s"
