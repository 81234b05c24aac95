"""User profiles from behaviour events: decayed affinities, price profile, interests, latent vectors.

Pure computation (no engine I/O; see :mod:`fuserec_os.profiles.store` for that).

The model
---------
An event of type ``t`` at time ``ts`` weighs ``weights[t] * 0.5 ** ((as_of - ts) / half_life)`` at the
reference time ``as_of`` (:class:`~fuserec_os.behaviour.config.ProfilesConfig`). A profile's *canonical state* is
what makes incremental updates exact:

* ``items``: per engaged product, the decayed weight ``w`` (as of ``as_of``), raw counts per event type and the
  last engagement time;
* ``counts`` per event type (raw), ``n_events``, ``first_seen``, ``last_seen``;
* ``recent``: the last ``recent_items`` engagements, newest first (ties: product id, then event type order);
* ``as_of``: the reference time of every decayed number.

Everything else is *derived* from ``items`` and a :class:`ProductCatalog`:

* ``categories``: decayed affinity per category path *including ancestors* (a purchase in
  ``home > kitchen > coffee makers`` adds to all three paths); ``brands``: decayed affinity per brand;
* ``price``: a decayed histogram over fixed log-spaced buckets (:data:`PRICE_EDGES`, 4 per doubling), the
  median and p25/p75 read from it (log-linear interpolation inside a bucket, so they are exact to a bucket),
  and ``sensitivity``: the decayed mean of ``log(price / median price of the product's leaf category)``
  (negative: the user engages below the category's typical price); ``None`` when no engaged product has a price;
* ``rating``: the decayed mean rating of engaged products (``None`` when none has a rating);
* ``interests``: the top ``interest_terms`` terms of ``sum(w * tf-idf row)`` with their weights, the TF-IDF
  (sublinear tf, English stop words, words of 2+ letters, terms in over half the products dropped once the
  catalog has 20+ products) fitted on the catalog's title + description + tags + brand + category;
* ``total_weight``: the sum of every item's ``w`` (catalog products or not);
* ``vector``: the user's row of ``U`` in ``R ~ U V^T`` (truncated SVD of the decayed user x product matrix
  ``R`` over *all* engaged products, ``latent_dims`` components or fewer when ``R`` is smaller; ``U = R V``);
  the product vectors ``V`` come back in :attr:`ProfileSet.product_vectors` for a side index.

Events whose product is not in the catalog still count for ``counts``, ``recent``, ``items``, ``total_weight``
and the latent factorisation, but contribute nothing to categories, brands, price, rating or interests.
Missing values are explicit ``None`` (never a 0 that would mean something else). Events with an unknown type,
a missing user or product id, or no timestamp are ignored.

Time and exactness
------------------
``build_profiles(..., as_of=T)`` uses only events with ``timestamp < T`` (strictly) and decays to ``T``, so a
training example at ``T`` never sees its own future. ``as_of=None`` means the latest event time + 1 ms (every
event included; deterministic, never the wall clock); with no usable events at all it is the current time.

:func:`update_profiles` decays the existing state to the new ``as_of`` (every decayed number times
``0.5 ** ((new - old) / half_life)``), adds the new events decayed to the new ``as_of``, merges counts, recent
items and first/last seen, and re-derives. The result equals a full rebuild over all events within
floating-point error, except for ``vector``: only a full build refits the factorisation. An updated user keeps
the old vector; a brand-new user gets the *fold-in* ``u = r V (V^T V)^-1`` when the caller passes the product
vectors of the last full build (``product_vectors=``), else ``None``. The caller must pass each event once:
the state keeps no event ids, so a replayed event would be counted twice.
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from fuserec_os.behaviour.config import EVENT_TYPES
from fuserec_os.index.validate import category_ancestors
from fuserec_os.profiles.config import ProfilesConfig

__all__ = [
    "PRICE_BUCKETS_PER_DOUBLING",
    "PRICE_EDGES",
    "SCHEMA_VERSION",
    "ItemState",
    "PriceProfile",
    "ProductCatalog",
    "ProfileSet",
    "RecentEvent",
    "UserProfile",
    "build_profiles",
    "fold_in",
    "iso_utc",
    "price_bucket",
    "profile_as_of",
    "profiles_to_docs",
    "to_utc",
    "update_profiles",
]

SCHEMA_VERSION = 1
"""Version of the profile document layout (``to_doc``); bump on incompatible changes."""

NS_PER_DAY = 86_400 * 1_000_000_000
PRICE_BUCKETS_PER_DOUBLING = 4
PRICE_EDGES: np.ndarray = 2.0 ** (np.arange(-2 * PRICE_BUCKETS_PER_DOUBLING, 20 * PRICE_BUCKETS_PER_DOUBLING + 1) / 4)
"""Bucket ``i`` holds prices in ``[PRICE_EDGES[i], PRICE_EDGES[i+1])`` (0.25 .. ~1M; outside: first/last bucket)."""
N_PRICE_BUCKETS = len(PRICE_EDGES) - 1
DOC_TOP_N = 10
"""How many categories/brands go into the profile document's filterable keyword arrays."""
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
_N_TYPES = len(EVENT_TYPES)
_BLOCK_ROWS = 4096  # users per block when deriving, so memory stays bounded for big builds
_TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"  # words of 2+ letters: model numbers are not interests
_MAX_DF = 0.5  # TF-IDF: terms in more than half of the products are ignored ...
_MAX_DF_MIN_PRODUCTS = 20  # ... once the catalog has at least this many products
_TIE_DIGITS = 1e9  # interest weights are compared at 9 significant digits so ties break by term, stably


# ------------------------------------------------------------------------------------------ time helpers


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while creating ~1M small acyclic objects (items, recent events).

    With many profiles alive, each automatic collection walks them all; pausing cuts build and update
    times by about a third. Nothing created here forms cycles, so nothing is leaked.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_utc(value: Any) -> pd.Timestamp:
    """A UTC, nanosecond-unit Timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{value!r} is not a timestamp")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def _ns_to_ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC").as_unit("ns")


def _ns_list(values: np.ndarray) -> list[pd.Timestamp]:
    """int64 ns -> UTC Timestamps, in bulk."""
    return list(pd.DatetimeIndex(values.astype("datetime64[ns]")).tz_localize("UTC"))


def iso_utc(ts: pd.Timestamp) -> str:
    """ISO 8601 UTC with as many fractional digits as needed (up to ns), e.g. 2026-01-02T03:04:05.123Z."""
    ts = to_utc(ts)
    frac = ts.value % 1_000_000_000
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}".rstrip("0") + "Z" if frac else base + "Z"


def _decay(cfg: ProfilesConfig, delta_ns: float | np.ndarray) -> Any:
    """``0.5 ** (delta / half_life)`` for a time difference in ns (scalar or array)."""
    return np.exp2(-np.asarray(delta_ns, dtype=np.float64) / (cfg.half_life_days * NS_PER_DAY))


def price_bucket(price: float | np.ndarray) -> Any:
    """Index of the fixed log-spaced bucket of a price (prices below 0.25 / above ~1M clip to the ends)."""
    p = np.asarray(price, dtype=np.float64)
    idx = np.searchsorted(PRICE_EDGES, p, side="right") - 1
    return np.clip(idx, 0, N_PRICE_BUCKETS - 1)


# ------------------------------------------------------------------------------------------ the catalog


def _text_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = " ".join(str(value).split())
    return text or None


def _normalise_category(value: Any) -> str | None:
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [str(p) for p in value if _text_or_none(p) is not None]
    else:
        text = _text_or_none(value)
        if text is None:
            return None
        parts = text.split(">")
    cleaned = [" ".join(p.split()) for p in parts]
    return " > ".join(p for p in cleaned if p) or None


def _tags_text(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return " ".join(str(v) for v in value if _text_or_none(v) is not None)
    text = _text_or_none(value)
    return re.sub(r"[|,]", " ", text) if text else ""


def _column(df: pd.DataFrame, name: str) -> list[Any]:
    return df[name].tolist() if name in df.columns else [None] * len(df)


def _numbers(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan).copy()
    values[~np.isfinite(values)] = np.nan
    return values


def _indicator(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


@dataclass(eq=False)
class ProductCatalog:
    """The product side of profiles, prepared once from a products frame (:meth:`from_frame`).

    Row ``i`` of every matrix is ``product_ids[i]``. ``category_matrix`` is 1 for the product's category and
    each ancestor; ``brand_matrix`` and ``price_matrix`` (price bucket) are one-hot; ``price_log_ratio`` is
    ``log(price / median price of the leaf category)`` (NaN when unknown); ``tfidf`` is the fitted TF-IDF
    matrix over ``terms``.
    """

    product_ids: list[str]
    index: dict[str, int]
    category: list[str | None]
    brand: list[str | None]
    price: np.ndarray
    rating: np.ndarray
    category_names: np.ndarray
    category_matrix: sp.csr_matrix
    brand_names: np.ndarray
    brand_matrix: sp.csr_matrix
    price_matrix: sp.csr_matrix
    leaf_median_price: dict[str, float]
    price_log_ratio: np.ndarray
    terms: np.ndarray
    tfidf: sp.csr_matrix
    vectorizer: TfidfVectorizer | None = None

    def __len__(self) -> int:
        return len(self.product_ids)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> ProductCatalog:
        """Prepare a catalog; rows without a product id are skipped, a repeated id keeps its last row."""
        if "product_id" not in df.columns:
            raise ValueError("products frame needs a 'product_id' column")
        ids_raw = [_text_or_none(v) for v in df["product_id"].tolist()]
        keep = [i for i, pid in enumerate(ids_raw) if pid is not None]
        df = df.iloc[keep].reset_index(drop=True)
        ids = [str(ids_raw[i]) for i in keep]
        last = {pid: i for i, pid in enumerate(ids)}
        if len(last) != len(ids):  # keep the last row of a repeated id
            rows = sorted(last.values())
            df = df.iloc[rows].reset_index(drop=True)
            ids = [ids[i] for i in rows]
        n = len(ids)
        index = {pid: i for i, pid in enumerate(ids)}
        categories = [_normalise_category(v) for v in _column(df, "category")]
        brands = [_text_or_none(v) for v in _column(df, "brand")]
        price = _numbers(df, "price")
        price[price < 0] = np.nan
        rating = _numbers(df, "rating")

        # categories incl. ancestors
        cat_index: dict[str, int] = {}
        rows_l: list[int] = []
        cols_l: list[int] = []
        for i, cat in enumerate(categories):
            if cat is None:
                continue
            for path in category_ancestors(cat):
                rows_l.append(i)
                cols_l.append(cat_index.setdefault(path, len(cat_index)))
        category_names = np.array(list(cat_index), dtype=object)
        category_matrix = _indicator(
            np.array(rows_l, dtype=np.int64), np.array(cols_l, dtype=np.int64), (n, len(cat_index))
        )

        brand_index: dict[str, int] = {}
        b_rows = [i for i, b in enumerate(brands) if b is not None]
        b_cols = [brand_index.setdefault(brands[i], len(brand_index)) for i in b_rows]  # type: ignore[arg-type]
        brand_names = np.array(list(brand_index), dtype=object)
        brand_matrix = _indicator(
            np.array(b_rows, dtype=np.int64), np.array(b_cols, dtype=np.int64), (n, len(brand_index))
        )

        priced = np.flatnonzero(~np.isnan(price))
        price_matrix = _indicator(priced, price_bucket(price[priced]), (n, N_PRICE_BUCKETS))

        leaf_median: dict[str, float] = {}
        frame = pd.DataFrame({"leaf": categories, "price": price})
        frame = frame[frame["leaf"].notna() & (frame["price"] > 0)]
        if len(frame):
            leaf_median = {str(k): float(v) for k, v in frame.groupby("leaf")["price"].median().items()}
        medians = np.array([leaf_median.get(c, np.nan) if c is not None else np.nan for c in categories], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.where((price > 0) & (medians > 0), np.log(price / medians), np.nan)

        texts = [
            " ".join(
                part
                for part in (
                    _text_or_none(title) or "",
                    _text_or_none(desc) or "",
                    _tags_text(tags),
                    brand or "",
                    cat or "",
                )
                if part
            )
            for title, desc, tags, brand, cat in zip(
                _column(df, "title"), _column(df, "description"), _column(df, "tags"), brands, categories, strict=True
            )
        ]
        vectorizer: TfidfVectorizer | None = TfidfVectorizer(
            token_pattern=_TOKEN_PATTERN,
            stop_words="english",
            sublinear_tf=True,
            # boilerplate ("features", "designed") in most descriptions is no interest; tiny catalogs keep all
            max_df=_MAX_DF if n >= _MAX_DF_MIN_PRODUCTS else 1.0,
            dtype=np.float64,
        )
        try:
            assert vectorizer is not None
            tfidf = sp.csr_matrix(vectorizer.fit_transform(texts))
            terms = np.asarray(vectorizer.get_feature_names_out(), dtype=object)
        except ValueError:  # empty vocabulary (no text at all): no interests
            vectorizer = None
            tfidf = sp.csr_matrix((n, 0))
            terms = np.array([], dtype=object)
        return cls(
            product_ids=ids,
            index=index,
            category=categories,
            brand=brands,
            price=price,
            rating=rating,
            category_names=category_names,
            category_matrix=category_matrix,
            brand_names=brand_names,
            brand_matrix=brand_matrix,
            price_matrix=price_matrix,
            leaf_median_price=leaf_median,
            price_log_ratio=log_ratio,
            terms=terms,
            tfidf=tfidf,
            vectorizer=vectorizer,
        )


# ------------------------------------------------------------------------------------------ the profile


class ItemState(NamedTuple):
    """One engaged product: decayed weight as of the profile's ``as_of``, raw counts per type, last time.

    (A named tuple: profiles of heavy users hold thousands, and updates rebuild them all.)
    """

    w: float
    counts: Mapping[str, int]
    last: pd.Timestamp


class RecentEvent(NamedTuple):
    product_id: str
    type: str
    timestamp: pd.Timestamp

    def sort_key(self) -> tuple[int, str, int]:
        """Newest first; ties by product id, then event type order (so builds and updates agree)."""
        return (-self.timestamp.value, self.product_id, _TYPE_INDEX.get(self.type, _N_TYPES))


@dataclass(frozen=True)
class PriceProfile:
    """Decayed price histogram (bucket index -> weight, see :data:`PRICE_EDGES`) and what is read from it."""

    histogram: Mapping[int, float]
    weight: float
    median: float
    p25: float
    p75: float
    sensitivity: float | None

    def scaled(self, factor: float) -> PriceProfile:
        return replace(self, histogram={b: w * factor for b, w in self.histogram.items()}, weight=self.weight * factor)


def _pairs(mapping: Mapping[str, float]) -> list[list[Any]]:
    return [[k, v] for k, v in mapping.items()]


def _ranked(mapping: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(mapping.items(), key=lambda kv: (-kv[1], kv[0]))


def _items_from_doc(raw: Mapping[str, Any]) -> dict[str, ItemState]:
    types = raw.get("types") or list(EVENT_TYPES)
    return {
        str(pid): ItemState(float(w), {t: int(c) for t, c in zip(types, counts, strict=True) if c}, to_utc(last))
        for pid, w, counts, last in zip(
            raw.get("product_id") or [], raw.get("w") or [], raw.get("counts") or [], raw.get("last") or [], strict=True
        )
    }


@dataclass(eq=False)
class UserProfile:
    """One user's profile: canonical state plus what is derived from it (see the module docstring).

    Equality compares :meth:`to_doc` output, so a ``from_doc(to_doc())`` round trip compares equal.
    """

    user_id: str
    as_of: pd.Timestamp
    first_seen: pd.Timestamp
    last_seen: pd.Timestamp
    n_events: int
    counts: dict[str, int]
    items: dict[str, ItemState]
    recent: list[RecentEvent]
    categories: dict[str, float] = field(default_factory=dict)
    brands: dict[str, float] = field(default_factory=dict)
    price: PriceProfile | None = None
    rating: float | None = None
    interests: dict[str, float] = field(default_factory=dict)
    total_weight: float = 0.0
    vector: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserProfile):
            return NotImplemented
        return self.to_doc() == other.to_doc()

    __hash__ = None  # type: ignore[assignment]

    # --- views -----------------------------------------------------------------------------------------
    def top_categories(self, n: int = 10, depth: int | None = None) -> list[tuple[str, float]]:
        """The ``n`` strongest category paths with their share of the categorised weight (0..1).

        Shares are relative to the sum of top-level categories (each categorised engagement counts once
        there), so ``home`` can be 1.0 while ``home > kitchen`` is 0.6. ``depth`` (1 = top level) keeps only
        paths of that depth.
        """
        total = sum(w for c, w in self.categories.items() if " > " not in c)
        if total <= 0:
            return []
        items = self.categories.items()
        if depth is not None:
            items = {c: w for c, w in items if c.count(" > ") + 1 == depth}.items()
        return [(c, w / total) for c, w in _ranked(dict(items))[:n]]

    def top_brands(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` strongest brands with their share of the branded weight (shares of all brands sum to 1)."""
        total = sum(self.brands.values())
        if total <= 0:
            return []
        return [(b, w / total) for b, w in _ranked(self.brands)[:n]]

    def decayed_to(self, t: Any, cfg: ProfilesConfig) -> UserProfile:
        """The same profile seen at a later time ``t``: every decayed number times ``0.5 ** (dt / half_life)``.

        Ratios (price median/spread/sensitivity, rating, shares, which interests lead) do not change; the
        latent vector is kept as is (only a full build refits it). Raises ValueError when ``t < as_of``:
        going back in time would need the events in between removed.
        """
        target = to_utc(t)
        if target < self.as_of:
            raise ValueError(f"cannot decay a profile as of {iso_utc(self.as_of)} back to {iso_utc(target)}")
        f = float(_decay(cfg, target.value - self.as_of.value))
        return replace(
            self,
            as_of=target,
            items={p: s._replace(w=s.w * f) for p, s in self.items.items()},
            recent=list(self.recent[: cfg.recent_items]),
            categories={k: v * f for k, v in self.categories.items()},
            brands={k: v * f for k, v in self.brands.items()},
            price=self.price.scaled(f) if self.price is not None else None,
            interests={k: v * f for k, v in self.interests.items()},
            total_weight=self.total_weight * f,
        )

    # --- documents ---------------------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """The engine document (mappings/profiles.json); JSON-serialisable, ``None`` for missing values."""
        price = self.price
        return {
            "user_id": self.user_id,
            "schema": SCHEMA_VERSION,
            "as_of": iso_utc(self.as_of),
            "first_seen": iso_utc(self.first_seen),
            "last_seen": iso_utc(self.last_seen),
            "n_events": int(self.n_events),
            "counts": {t: int(self.counts.get(t, 0)) for t in EVENT_TYPES},
            "total_weight": float(self.total_weight),
            "top_categories": [c for c, _ in _ranked(self.categories)[:DOC_TOP_N]],
            "top_brands": [b for b, _ in _ranked(self.brands)[:DOC_TOP_N]],
            "interests": list(self.interests),
            "price": None
            if price is None
            else {
                "median": price.median,
                "p25": price.p25,
                "p75": price.p75,
                "weight": price.weight,
                "sensitivity": price.sensitivity,
            },
            "rating": self.rating,
            "vector": None if self.vector is None else [float(x) for x in self.vector],
            "derived": {
                "categories": _pairs(self.categories),
                "brands": _pairs(self.brands),
                "interests": _pairs(self.interests),
                "price_histogram": None if price is None else [[int(b), w] for b, w in price.histogram.items()],
            },
            "items": {  # columnar: a heavy user's thousands of items without repeating keys
                "types": list(EVENT_TYPES),
                "product_id": list(self.items),
                "w": [s.w for s in self.items.values()],
                "counts": [[s.counts.get(t, 0) for t in EVENT_TYPES] for s in self.items.values()],
                "last": [iso_utc(s.last) for s in self.items.values()],
            },
            "recent": [
                {"product_id": r.product_id, "type": r.type, "timestamp": iso_utc(r.timestamp)} for r in self.recent
            ],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> UserProfile:
        """Inverse of :meth:`to_doc` (raises ValueError for a document of an unknown schema version)."""
        schema = doc.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ValueError(f"profile document schema {schema!r} is not supported (expected {SCHEMA_VERSION})")
        derived = doc.get("derived") or {}
        raw_price = doc.get("price")
        price = None
        if raw_price is not None:
            price = PriceProfile(
                histogram={int(b): float(w) for b, w in derived.get("price_histogram") or []},
                weight=float(raw_price["weight"]),
                median=float(raw_price["median"]),
                p25=float(raw_price["p25"]),
                p75=float(raw_price["p75"]),
                sensitivity=None if raw_price.get("sensitivity") is None else float(raw_price["sensitivity"]),
            )
        vector = doc.get("vector")
        return cls(
            user_id=str(doc["user_id"]),
            as_of=to_utc(doc["as_of"]),
            first_seen=to_utc(doc["first_seen"]),
            last_seen=to_utc(doc["last_seen"]),
            n_events=int(doc["n_events"]),
            counts={t: int((doc.get("counts") or {}).get(t, 0)) for t in EVENT_TYPES},
            items=_items_from_doc(doc.get("items") or {}),
            recent=[
                RecentEvent(str(r["product_id"]), str(r["type"]), to_utc(r["timestamp"]))
                for r in doc.get("recent") or []
            ],
            categories={str(k): float(v) for k, v in derived.get("categories") or []},
            brands={str(k): float(v) for k, v in derived.get("brands") or []},
            price=price,
            rating=None if doc.get("rating") is None else float(doc["rating"]),
            interests={str(k): float(v) for k, v in derived.get("interests") or []},
            total_weight=float(doc.get("total_weight") or 0.0),
            vector=None if vector is None else np.asarray(vector, dtype=np.float64),
        )


@dataclass(eq=False)
class ProfileSet:
    """The result of a full build: profiles by user id, product latent vectors by product id, ``as_of``,
    and an echo of the configuration used (plus ``latent_dims_used``: the components actually fitted)."""

    profiles: dict[str, UserProfile]
    product_vectors: dict[str, np.ndarray]
    as_of: pd.Timestamp
    config: dict[str, Any]

    def __len__(self) -> int:
        return len(self.profiles)

    def __getitem__(self, user_id: str) -> UserProfile:
        return self.profiles[user_id]

    def __iter__(self) -> Iterator[UserProfile]:
        return iter(self.profiles.values())


def _config_echo(cfg: ProfilesConfig) -> dict[str, Any]:
    return {
        "weights": dict(cfg.weights),
        "half_life_days": cfg.half_life_days,
        "recent_items": cfg.recent_items,
        "latent_dims": cfg.latent_dims,
        "interest_terms": cfg.interest_terms,
    }


# ------------------------------------------------------------------------------------------ events


@dataclass
class _Events:
    """Valid events as arrays: user and product codes into sorted uniques, type codes, ns timestamps."""

    users: list[str]
    products: list[str]
    u: np.ndarray
    p: np.ndarray
    t: np.ndarray
    ts: np.ndarray
    as_of_ns: int


_REQUIRED_EVENT_COLUMNS = ("user_id", "product_id", "type", "timestamp")


def _timestamps_ns(col: pd.Series) -> np.ndarray:
    if not isinstance(col.dtype, pd.DatetimeTZDtype):
        col = pd.to_datetime(col, utc=True, errors="coerce")
    values: np.ndarray = col.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8
    return values


def _prepare_events(events: pd.DataFrame, as_of: Any) -> _Events:
    missing = [c for c in _REQUIRED_EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events frame lacks column(s) {', '.join(missing)} (see fuserec_os.behaviour.events)")
    ts = _timestamps_ns(events["timestamp"])
    t = pd.Index(list(EVENT_TYPES)).get_indexer(pd.Index(events["type"])).astype(np.int64)  # -1: unknown type
    valid = (
        events["user_id"].notna().to_numpy()
        & events["product_id"].notna().to_numpy()
        & (t >= 0)
        & (ts != np.iinfo(np.int64).min)
    )
    if as_of is None:
        as_of_ns = int(ts[valid].max()) + 1_000_000 if valid.any() else pd.Timestamp.now(tz="UTC").as_unit("ns").value
    else:
        as_of_ns = to_utc(as_of).value
    valid &= ts < as_of_ns
    idx = np.flatnonzero(valid)
    user_col = events["user_id"].iloc[idx].astype(str)
    product_col = events["product_id"].iloc[idx].astype(str)
    u, users = pd.factorize(user_col, sort=True)
    p, products = pd.factorize(product_col, sort=True)
    return _Events(
        users=[str(x) for x in users],
        products=[str(x) for x in products],
        u=np.asarray(u, dtype=np.int64),
        p=np.asarray(p, dtype=np.int64),
        t=t[idx],
        ts=ts[idx],
        as_of_ns=as_of_ns,
    )


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


@dataclass
class _Pairs:
    """Per (user, product) aggregates, sorted by user then product."""

    u: np.ndarray
    p: np.ndarray
    w: np.ndarray
    counts: np.ndarray  # (pairs, n_types) int64
    last: np.ndarray  # ns


def _aggregate(ev: _Events, cfg: ProfilesConfig) -> tuple[list[UserProfile], _Pairs]:
    """Canonical state of every user in ``ev`` (derived fields left empty), plus the pair arrays."""
    n_users, n_products = len(ev.users), len(ev.products)
    if n_users == 0:
        empty = np.zeros(0, dtype=np.int64)
        return [], _Pairs(empty, empty, np.zeros(0), np.zeros((0, _N_TYPES), dtype=np.int64), empty)
    weights = np.array([float(cfg.weights[t]) for t in EVENT_TYPES])
    w = weights[ev.t] * _decay(cfg, ev.as_of_ns - ev.ts)

    # one grouping by (user, product, type)
    key = (ev.u * n_products + ev.p) * _N_TYPES + ev.t
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = _group_starts(ks)
    g_key = ks[starts]
    g_w = np.add.reduceat(w[order], starts) if len(starts) else np.zeros(0)
    g_n = np.diff(np.r_[starts, len(ks)])
    ts_sorted = ev.ts[order]
    g_last = np.maximum.reduceat(ts_sorted, starts) if len(starts) else np.zeros(0, dtype=np.int64)

    # (user, product) pairs from the groups
    pk = g_key // _N_TYPES
    p_starts = _group_starts(pk)
    pair_of_group = np.cumsum(np.r_[0, (pk[1:] != pk[:-1]).astype(np.int64)]) if len(pk) else pk
    n_pairs = len(p_starts)
    pair_counts = np.zeros((n_pairs, _N_TYPES), dtype=np.int64)
    pair_counts[pair_of_group, g_key % _N_TYPES] = g_n
    pairs = _Pairs(
        u=pk[p_starts] // max(n_products, 1),
        p=pk[p_starts] % max(n_products, 1),
        w=np.add.reduceat(g_w, p_starts) if n_pairs else np.zeros(0),
        counts=pair_counts,
        last=np.maximum.reduceat(g_last, p_starts) if n_pairs else np.zeros(0, dtype=np.int64),
    )

    # per user
    u_sorted = ks // (n_products * _N_TYPES)
    u_starts = _group_starts(u_sorted)
    first = np.minimum.reduceat(ts_sorted, u_starts) if len(u_starts) else np.zeros(0, dtype=np.int64)
    last = np.maximum.reduceat(ts_sorted, u_starts) if len(u_starts) else np.zeros(0, dtype=np.int64)
    counts = np.bincount(ev.u * _N_TYPES + ev.t, minlength=n_users * _N_TYPES).reshape(n_users, _N_TYPES)

    # recent: newest first, ties by product id (codes are sorted ids) then type order
    r_order = np.lexsort((ev.t, ev.p, -ev.ts, ev.u))
    r_u = ev.u[r_order]
    first_pos = np.searchsorted(r_u, np.arange(n_users))
    rank = np.arange(len(r_u)) - first_pos[r_u]
    r_keep = r_order[rank < cfg.recent_items]
    r_user_starts = np.searchsorted(ev.u[r_keep], np.arange(n_users + 1))
    r_ts = _ns_list(ev.ts[r_keep])
    r_p = ev.p[r_keep].tolist()
    r_t = ev.t[r_keep].tolist()

    pair_user_starts = np.searchsorted(pairs.u, np.arange(n_users + 1))
    pair_last = _ns_list(pairs.last)
    pair_w = pairs.w.tolist()
    pair_p = pairs.p.tolist()
    count_rows = pairs.counts.tolist()
    pair_count_dicts = [{EVENT_TYPES[j]: c for j, c in enumerate(row) if c} for row in count_rows]
    firsts, lasts = _ns_list(first), _ns_list(last)
    as_of = _ns_to_ts(ev.as_of_ns)
    products = ev.products
    profiles = []
    count_lists = counts.tolist()
    for i, user in enumerate(ev.users):
        a, b = int(pair_user_starts[i]), int(pair_user_starts[i + 1])
        ra, rb = int(r_user_starts[i]), int(r_user_starts[i + 1])
        profiles.append(
            UserProfile(
                user_id=user,
                as_of=as_of,
                first_seen=firsts[i],
                last_seen=lasts[i],
                n_events=int(sum(count_lists[i])),
                counts=dict(zip(EVENT_TYPES, count_lists[i], strict=True)),
                items={
                    products[pair_p[j]]: ItemState(pair_w[j], pair_count_dicts[j], pair_last[j]) for j in range(a, b)
                },
                recent=[RecentEvent(products[r_p[j]], EVENT_TYPES[r_t[j]], r_ts[j]) for j in range(ra, rb)],
            )
        )
    return profiles, pairs


# ------------------------------------------------------------------------------------------ derivation


def _row_dicts(m: sp.csr_matrix, names: np.ndarray) -> list[dict[str, float]]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    out: list[dict[str, float]] = []
    indptr, indices, data = m.indptr, m.indices, m.data
    for i in range(m.shape[0]):
        a, b = indptr[i], indptr[i + 1]
        vals = data[a:b]
        keep = vals > 0
        out.append(dict(zip(names[indices[a:b][keep]].tolist(), vals[keep].tolist(), strict=True)))
    return out


def _top_terms(m: sp.csr_matrix, terms: np.ndarray, k: int) -> list[dict[str, float]]:
    """Per row, the ``k`` largest positive entries, ties (at 9 significant digits) broken by term."""
    m = sp.csr_matrix(m)
    m.sort_indices()
    out: list[dict[str, float]] = []
    indptr, indices, data = m.indptr, m.indices, m.data
    for i in range(m.shape[0]):
        a, b = indptr[i], indptr[i + 1]
        vals, cols = data[a:b], indices[a:b]
        pos = vals > 0
        vals, cols = vals[pos], cols[pos]
        if len(vals) == 0:
            out.append({})
            continue
        if len(vals) > k:  # cut to candidates first: a full sort of long rows is the slow part
            kth = np.partition(vals, len(vals) - k)[len(vals) - k]
            cand = vals >= kth * (1 - 1e-6)
            vals, cols = vals[cand], cols[cand]
        q = np.round(vals / vals.max() * _TIE_DIGITS)
        order = np.lexsort((cols, -q))[:k]  # columns are in term order (the vocabulary is sorted)
        out.append(dict(zip(terms[cols[order]].tolist(), vals[order].tolist(), strict=True)))
    return out


def _quantiles(hist: np.ndarray, q: float) -> np.ndarray:
    """Per row, the q-quantile of a bucketed distribution, log-linear inside the bucket (rows must be > 0)."""
    cum = np.cumsum(hist, axis=1)
    target = q * cum[:, -1]
    idx = np.minimum((cum < target[:, None]).sum(axis=1), hist.shape[1] - 1)
    rows = np.arange(hist.shape[0])
    prev = np.where(idx > 0, cum[rows, np.maximum(idx - 1, 0)], 0.0)
    mass = hist[rows, idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(np.where(mass > 0, (target - prev) / mass, 0.5), 0.0, 1.0)
    lo, hi = np.log(PRICE_EDGES[idx]), np.log(PRICE_EDGES[idx + 1])
    result: np.ndarray = np.exp(lo + frac * (hi - lo))
    return result


def _derive(profiles: Sequence[UserProfile], catalog: ProductCatalog, cfg: ProfilesConfig) -> None:
    """Fill categories, brands, price, rating and interests of ``profiles`` from their items (in place)."""
    lr = np.nan_to_num(catalog.price_log_ratio, nan=0.0)
    has_lr = (~np.isnan(catalog.price_log_ratio)).astype(np.float64)
    rating = np.nan_to_num(catalog.rating, nan=0.0)
    has_rating = (~np.isnan(catalog.rating)).astype(np.float64)
    n_cat = len(catalog)
    for start in range(0, len(profiles), _BLOCK_ROWS):
        block = profiles[start : start + _BLOCK_ROWS]
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        index = catalog.index
        for r, prof in enumerate(block):
            for pid, state in prof.items.items():
                c = index.get(pid)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
                    vals.append(state.w)
        R = sp.csr_matrix((vals, (rows, cols)), shape=(len(block), n_cat))
        cats = _row_dicts(R @ catalog.category_matrix, catalog.category_names)
        brands = _row_dicts(R @ catalog.brand_matrix, catalog.brand_names)
        hist = np.asarray((R @ catalog.price_matrix).todense())
        priced = hist.sum(axis=1)
        ok = priced > 0
        med, p25, p75 = (np.full(len(block), np.nan) for _ in range(3))
        if ok.any():
            med[ok], p25[ok], p75[ok] = (_quantiles(hist[ok], q) for q in (0.5, 0.25, 0.75))
        sens_num, sens_den = R @ lr, R @ has_lr
        rat_num, rat_den = R @ rating, R @ has_rating
        interests = _top_terms(R @ catalog.tfidf, catalog.terms, cfg.interest_terms)
        for r, prof in enumerate(block):
            prof.categories = cats[r]
            prof.brands = brands[r]
            prof.interests = interests[r]
            prof.rating = float(rat_num[r] / rat_den[r]) if rat_den[r] > 0 else None
            if ok[r]:
                nz = np.flatnonzero(hist[r] > 0)
                prof.price = PriceProfile(
                    histogram=dict(zip(nz.tolist(), hist[r, nz].tolist(), strict=True)),
                    weight=float(priced[r]),
                    median=float(med[r]),
                    p25=float(p25[r]),
                    p75=float(p75[r]),
                    sensitivity=float(sens_num[r] / sens_den[r]) if sens_den[r] > 0 else None,
                )
            else:
                prof.price = None
            prof.total_weight = float(sum(s.w for s in prof.items.values()))


class _FoldIn:
    """The product vectors of a full build, prepared once for many :func:`fold_in` calls."""

    def __init__(self, product_vectors: Mapping[str, np.ndarray]) -> None:
        self.pos = {p: i for i, p in enumerate(product_vectors)}
        self.V = (
            np.vstack([np.asarray(v, dtype=np.float64) for v in product_vectors.values()])
            if product_vectors
            else np.zeros((0, 0))
        )
        gram = self.V.T @ self.V
        try:
            self.gram_inv = np.linalg.inv(gram)
        except np.linalg.LinAlgError:
            self.gram_inv = np.linalg.pinv(gram)

    def __call__(self, items: Mapping[str, float]) -> np.ndarray | None:
        idx = [(self.pos[p], w) for p, w in items.items() if p in self.pos]
        if not idx:
            return None
        rows = np.array([i for i, _ in idx], dtype=np.int64)
        weights = np.array([w for _, w in idx], dtype=np.float64)
        u: np.ndarray = (weights @ self.V[rows]) @ self.gram_inv
        return u


def fold_in(items: Mapping[str, float], product_vectors: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """A latent vector for a user outside the factorisation: ``u = r V (V^T V)^-1``.

    ``items`` maps product id -> decayed weight; products without a vector are ignored. ``None`` when no
    engaged product has a vector (or there are no vectors at all).
    """
    if not product_vectors:
        return None
    return _FoldIn(product_vectors)(items)


def _factorise(
    ev: _Events, pairs: _Pairs, profiles: Sequence[UserProfile], cfg: ProfilesConfig
) -> tuple[dict[str, np.ndarray], int]:
    """Truncated SVD of the decayed user x product matrix; sets each profile's vector, returns V by product."""
    n_users, n_products = len(ev.users), len(ev.products)
    k = min(cfg.latent_dims, n_users, n_products)
    if k < 1 or len(pairs.w) == 0 or not np.any(pairs.w > 0):
        return {}, 0
    R = sp.csr_matrix((pairs.w, (pairs.u, pairs.p)), shape=(n_users, n_products))
    if k >= min(n_users, n_products):  # tiny matrix: an exact SVD (TruncatedSVD needs k < n_features)
        _, _, vt = np.linalg.svd(R.toarray(), full_matrices=False)
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
        components = vt * np.where(signs == 0, 1.0, signs)[:, None]
    else:
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=0)
        svd.fit(R)
        components = svd.components_
    U = np.asarray(R @ components.T)
    for i, prof in enumerate(profiles):
        row = U[i]
        prof.vector = row.copy() if np.any(row != 0) else None
    vectors = {pid: components[:, j].copy() for j, pid in enumerate(ev.products)}
    return vectors, k


# ------------------------------------------------------------------------------------------ public API


def _as_catalog(catalog: ProductCatalog | pd.DataFrame) -> ProductCatalog:
    return catalog if isinstance(catalog, ProductCatalog) else ProductCatalog.from_frame(catalog)


def build_profiles(
    events: pd.DataFrame,
    catalog: ProductCatalog | pd.DataFrame,
    cfg: ProfilesConfig,
    as_of: Any = None,
) -> ProfileSet:
    """Every user's profile from ``events`` (only ``timestamp < as_of``), decayed to ``as_of``.

    ``as_of=None``: the latest usable event time + 1 ms (see the module docstring). ``catalog`` may be a
    products frame, prepared here with :meth:`ProductCatalog.from_frame` (prepare it once when building often).
    Also fits the latent factorisation: user vectors on the profiles, product vectors in the result.
    """
    cat = _as_catalog(catalog)
    ev = _prepare_events(events, as_of)
    with _gc_paused():
        profiles, pairs = _aggregate(ev, cfg)
        _derive(profiles, cat, cfg)
    vectors, k = _factorise(ev, pairs, profiles, cfg)
    echo = _config_echo(cfg)
    echo["latent_dims_used"] = k
    return ProfileSet(
        profiles={p.user_id: p for p in profiles},
        product_vectors=vectors,
        as_of=_ns_to_ts(ev.as_of_ns),
        config=echo,
    )


def _merge(old: UserProfile, new: UserProfile, cfg: ProfilesConfig) -> UserProfile:
    """``old`` decayed to ``new.as_of`` plus ``new``'s contributions (canonical state only; vector kept)."""
    if new.as_of < old.as_of:
        raise ValueError(
            f"user {old.user_id!r}: profile is as of {iso_utc(old.as_of)}, later than the update's {iso_utc(new.as_of)}"
        )
    f = float(_decay(cfg, new.as_of.value - old.as_of.value))
    items = {pid: ItemState(s.w * f, s.counts, s.last) for pid, s in old.items.items()}
    for pid, s in new.items.items():
        prev = items.get(pid)
        if prev is None:
            items[pid] = s
        else:
            counts = dict(prev.counts)
            for t, c in s.counts.items():
                counts[t] = counts.get(t, 0) + c
            items[pid] = ItemState(prev.w + s.w, counts, max(prev.last, s.last))
    items = dict(sorted(items.items()))  # the same order as a full build's (by product id)
    recent = sorted([*old.recent, *new.recent], key=RecentEvent.sort_key)[: cfg.recent_items]
    return UserProfile(
        user_id=old.user_id,
        as_of=new.as_of,
        first_seen=min(old.first_seen, new.first_seen),
        last_seen=max(old.last_seen, new.last_seen),
        n_events=old.n_events + new.n_events,
        counts={t: old.counts.get(t, 0) + new.counts.get(t, 0) for t in EVENT_TYPES},
        items=items,
        recent=recent,
        vector=old.vector,
    )


def update_profiles(
    existing: Mapping[str, UserProfile],
    new_events: pd.DataFrame,
    catalog: ProductCatalog | pd.DataFrame,
    cfg: ProfilesConfig,
    as_of: Any,
    product_vectors: Mapping[str, np.ndarray] | None = None,
) -> dict[str, UserProfile]:
    """Profiles of the users with new events (``timestamp < as_of``), brought to ``as_of``.

    Exact with respect to a full rebuild (see the module docstring) provided each event is passed once and
    ``as_of`` is not earlier than any updated profile's ``as_of`` (ValueError otherwise). Late events (older
    than the existing ``as_of``) are fine: decay is linear, so they are added at their own age. Users without
    new events are not returned (decay them lazily with :meth:`UserProfile.decayed_to`). Updated users keep
    their latent vector; new users get :func:`fold_in` over ``product_vectors`` when given, else ``None``.
    """
    if as_of is None:
        raise ValueError("update_profiles needs an explicit as_of")
    cat = _as_catalog(catalog)
    ev = _prepare_events(new_events, as_of)
    out: list[UserProfile] = []
    brand_new: list[UserProfile] = []
    with _gc_paused():
        fresh, _ = _aggregate(ev, cfg)
        for prof in fresh:
            old = existing.get(prof.user_id)
            if old is None:
                out.append(prof)
                brand_new.append(prof)
            else:
                out.append(_merge(old, prof, cfg))
        _derive(out, cat, cfg)
    if product_vectors and brand_new:
        project = _FoldIn(product_vectors)
        for prof in brand_new:
            prof.vector = project({p: s.w for p, s in prof.items.items()})
    return {p.user_id: p for p in out}


def profile_as_of(
    events: pd.DataFrame,
    catalog: ProductCatalog | pd.DataFrame,
    cfg: ProfilesConfig,
    user_id: str,
    as_of: Any,
    product_vectors: Mapping[str, np.ndarray] | None = None,
) -> UserProfile | None:
    """One user's profile from their events strictly before ``as_of`` (None when there are none).

    For point-in-time features (training): no factorisation is fitted; the vector is the fold-in over
    ``product_vectors`` when given, else ``None``.
    """
    mine = events[events["user_id"] == user_id] if "user_id" in events.columns else events
    got = update_profiles({}, mine, catalog, cfg, as_of, product_vectors)
    return got.get(str(user_id))


def profiles_to_docs(profiles: Iterable[UserProfile]) -> Iterator[dict[str, Any]]:
    """``to_doc()`` of each profile (a convenience for exports)."""
    for p in profiles:
        yield p.to_doc()
