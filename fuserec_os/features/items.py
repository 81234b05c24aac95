"""Per-item arrays for feature assembly, built once per catalog (and product vectors), aligned by row.

Why precompute: a request scores 100-1000 candidates in well under a millisecond, so nothing per item may be
parsed, tokenised or looked up in a Python object at request time. Everything an item contributes to a
feature is here as a NumPy array indexed by the item's row; categories, brands and terms are integer codes,
and sparse rows (title terms, tf-idf) are CSR arrays that :mod:`~fuserec_os.features.assemble` gathers for
the candidates in one vectorised step. Missing inputs are NaN (numbers) or -1 (codes), never 0.

Every per-item array has ``len(table) + 1`` entries: the last one is the *unknown product* sentinel (NaN,
-1, an empty title/tf-idf row, the zero vector), so assembly maps unknown products (row -1 from
:meth:`ItemTable.rows`) to row ``len(table)`` and needs no masks to stay in bounds.

:class:`~fuserec_os.profiles.compute.ProductCatalog` keeps what profiles need (category, brand, price, rating,
tf-idf); the other item fields (title, review_count, popularity, in_stock, created_at) come from the same
products frame, passed as ``products=``. Without it those features are missing for every item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fuserec_os.index.validate import category_ancestors
from fuserec_os.profiles.compute import ProductCatalog
from fuserec_os.text import terms

__all__ = ["ItemTable"]

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def _clean_id(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = " ".join(str(value).split())
    return text or None


def _bool_or_nan(value: Any) -> float:
    """1.0 / 0.0 for anything that reads as a boolean, NaN otherwise (unknown stock is not 'out of stock')."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
        return v if v in (0.0, 1.0) else np.nan
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE:
            return 1.0
        if key in _FALSE:
            return 0.0
    return np.nan


def _numbers(values: pd.Series) -> np.ndarray:
    out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _epoch_seconds(values: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(values.astype(object), utc=True, errors="coerce", format="ISO8601")
    missing = ts.isna().to_numpy()
    ns = ts.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    ns[missing] = np.nan
    out: np.ndarray = ns / 1e9
    return out


def _log1p_nonneg(values: np.ndarray) -> np.ndarray:
    """log1p for values >= 0; NaN for missing or negative (a negative count is bad data, not a small count)."""
    out = np.full(len(values), np.nan)
    ok = values >= 0
    out[ok] = np.log1p(values[ok])
    return out


def _pad(values: np.ndarray, fill: Any) -> np.ndarray:
    """``values`` plus the unknown-product sentinel entry."""
    out: np.ndarray = np.append(values, np.array([fill], dtype=values.dtype))
    return out


def _csr_from_lists(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = [c for r in rows for c in r]
    return indptr, np.asarray(flat, dtype=np.int64)


@dataclass(eq=False)
class ItemTable:
    """Item arrays aligned by row (``product_ids[i]`` is row ``i``); see the module docstring."""

    product_ids: list[str]
    index: dict[str, int]
    price: np.ndarray  # raw price, NaN when unknown (and <= 0 is treated as unknown for ratios)
    log_price: np.ndarray
    rating: np.ndarray
    log_review_count: np.ndarray
    log_popularity: np.ndarray
    in_stock: np.ndarray  # 1.0 / 0.0 / NaN
    created_s: np.ndarray  # epoch seconds, NaN when unknown
    category_index: dict[str, int]  # every category path (leaf and ancestors) -> code
    leaf: np.ndarray  # int64 code of the leaf category, -1 when none
    ancestors: np.ndarray  # int64 [n, depth-1] codes of the ancestor paths (leaf excluded), -1 padded
    brand_index: dict[str, int]
    brand: np.ndarray  # int64 code, -1 when none
    has_title: np.ndarray  # bool
    title_vocab: dict[str, int]
    title_indptr: np.ndarray
    title_indices: np.ndarray
    term_index: dict[str, int]  # the catalog's tf-idf vocabulary
    tfidf: sp.csr_matrix  # [n + 1, terms], rows L2-normalised (all-zero rows and the sentinel stay empty)
    has_terms: np.ndarray  # bool: the item's tf-idf row is not empty
    vector_index: dict[str, int]  # every product with a latent vector (catalog or not) -> row of ``vectors``
    vectors: np.ndarray  # float64 [m + 1, k], L2-normalised; the last row is zeros (index -1: no vector)
    item_vector: np.ndarray  # int64: row of ``vectors`` for each item, -1 without one

    def __len__(self) -> int:
        return len(self.product_ids)

    @cached_property
    def product_ids_with_sentinel(self) -> list[str]:
        """``product_ids`` and an id no product has, for the unknown-product row (per-row lookups elsewhere)."""
        return [*self.product_ids, "\x00unknown product\x00"]

    def safe_rows(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` with -1 (unknown product) replaced by the sentinel row ``len(self)``."""
        out: np.ndarray = np.where(rows < 0, len(self.product_ids), rows)
        return out

    def rows(self, product_ids: Sequence[str]) -> np.ndarray:
        """Row of each product id, -1 for a product not in the table (its item features are then missing)."""
        return np.fromiter(map(self.index.get, product_ids, repeat(-1)), dtype=np.int64, count=len(product_ids))

    def with_vectors(self, product_vectors: Mapping[str, np.ndarray] | None) -> ItemTable:
        """This table with other product vectors (training refits them as of each day); the rest is shared."""
        vector_index, vectors = _normalised_vectors(product_vectors)
        ids = self.product_ids
        item_vector = np.fromiter((vector_index.get(p, -1) for p in ids), dtype=np.int64, count=len(ids))
        return replace(
            self,
            vector_index=vector_index,
            vectors=np.vstack([vectors, np.zeros((1, vectors.shape[1]))]),
            item_vector=_pad(item_vector, -1),
        )

    @classmethod
    def from_frame(cls, products: pd.DataFrame, product_vectors: Mapping[str, np.ndarray] | None = None) -> ItemTable:
        """Prepare the :class:`ProductCatalog` from ``products`` and the table from both (a convenience)."""
        return cls.from_catalog(ProductCatalog.from_frame(products), product_vectors, products=products)

    @classmethod
    def from_catalog(
        cls,
        catalog: ProductCatalog | pd.DataFrame,
        product_vectors: Mapping[str, np.ndarray] | None = None,
        *,
        products: pd.DataFrame | None = None,
    ) -> ItemTable:
        """Precompute every per-item array (see the module docstring for what ``products`` adds).

        ``catalog`` may also be the products frame itself: it is then prepared here and used as ``products``.
        """
        if isinstance(catalog, pd.DataFrame):
            products = catalog if products is None else products
            catalog = ProductCatalog.from_frame(catalog)
        ids = list(catalog.product_ids)
        n = len(ids)
        price = np.asarray(catalog.price, dtype=np.float64).copy()
        with np.errstate(invalid="ignore"):
            log_price = _log1p_nonneg(price)
        extra = _extra_columns(products, ids)

        category_index = {str(c): i for i, c in enumerate(catalog.category_names.tolist())}
        leaf = np.full(n, -1, dtype=np.int64)
        anc_lists: list[list[int]] = []
        for i, cat in enumerate(catalog.category):
            if cat is None:
                anc_lists.append([])
                continue
            paths = category_ancestors(cat)
            leaf[i] = category_index.setdefault(cat, len(category_index))
            anc_lists.append([category_index.setdefault(p, len(category_index)) for p in paths[:-1]])
        depth = max((len(a) for a in anc_lists), default=0)
        ancestors = np.full((n, max(depth, 1)), -1, dtype=np.int64)
        for i, a in enumerate(anc_lists):
            ancestors[i, : len(a)] = a

        brand_index = {str(b): i for i, b in enumerate(catalog.brand_names.tolist())}
        brand = np.array(
            [brand_index.setdefault(b, len(brand_index)) if b is not None else -1 for b in catalog.brand],
            dtype=np.int64,
        )

        title_vocab: dict[str, int] = {}
        title_rows = [
            [title_vocab.setdefault(t, len(title_vocab)) for t in terms(title)] if title else []
            for title in extra["title"]
        ]
        title_indptr, title_indices = _csr_from_lists(title_rows)

        tfidf = catalog.tfidf.tocsr().astype(np.float64)
        tfidf.sort_indices()
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        tfidf = sp.csr_matrix(sp.diags(scale) @ tfidf)
        tfidf = sp.csr_matrix(sp.vstack([tfidf, sp.csr_matrix((1, tfidf.shape[1]))], format="csr"))
        tfidf.sort_indices()
        term_index = {str(t): i for i, t in enumerate(catalog.terms.tolist())}

        vector_index, vectors = _normalised_vectors(product_vectors)
        item_vector = np.fromiter((vector_index.get(p, -1) for p in ids), dtype=np.int64, count=n)
        has_title = np.array([t is not None for t in extra["title"]], dtype=bool)

        return cls(
            product_ids=ids,
            index=dict(catalog.index),
            price=_pad(price, np.nan),
            log_price=_pad(log_price, np.nan),
            rating=_pad(np.asarray(catalog.rating, dtype=np.float64), np.nan),
            log_review_count=_pad(_log1p_nonneg(extra["review_count"]), np.nan),
            log_popularity=_pad(_log1p_nonneg(extra["popularity"]), np.nan),
            in_stock=_pad(extra["in_stock"], np.nan),
            created_s=_pad(extra["created_s"], np.nan),
            category_index=category_index,
            leaf=_pad(leaf, -1),
            ancestors=np.vstack([ancestors, np.full((1, ancestors.shape[1]), -1, dtype=np.int64)]),
            brand_index=brand_index,
            brand=_pad(brand, -1),
            has_title=_pad(has_title, False),
            title_vocab=title_vocab,
            title_indptr=np.r_[title_indptr, title_indptr[-1]],
            title_indices=title_indices,
            term_index=term_index,
            tfidf=tfidf,
            has_terms=np.diff(tfidf.indptr) > 0,
            vector_index=vector_index,
            vectors=np.vstack([vectors, np.zeros((1, vectors.shape[1]))]),
            item_vector=_pad(item_vector, -1),
        )


def _extra_columns(products: pd.DataFrame | None, ids: list[str]) -> dict[str, Any]:
    """Title, review count, popularity, stock and creation time aligned to ``ids`` (NaN / None when absent)."""
    n = len(ids)
    out: dict[str, Any] = {
        "title": [None] * n,
        "review_count": np.full(n, np.nan),
        "popularity": np.full(n, np.nan),
        "in_stock": np.full(n, np.nan),
        "created_s": np.full(n, np.nan),
    }
    if products is None or "product_id" not in products.columns or n == 0:
        return out
    frame = products.copy()
    frame["product_id"] = [_clean_id(v) for v in frame["product_id"].tolist()]
    frame = frame[frame["product_id"].notna()].drop_duplicates("product_id", keep="last")
    frame = frame.set_index("product_id").reindex(pd.Index(ids, dtype=object))
    if "title" in frame.columns:
        out["title"] = [t if isinstance(t, str) and t.strip() else None for t in frame["title"].tolist()]
    for name in ("review_count", "popularity"):
        if name in frame.columns:
            out[name] = _numbers(frame[name])
    if "in_stock" in frame.columns:
        out["in_stock"] = np.array([_bool_or_nan(v) for v in frame["in_stock"].tolist()], dtype=np.float64)
    if "created_at" in frame.columns:
        out["created_s"] = _epoch_seconds(frame["created_at"])
    return out


def _normalised_vectors(product_vectors: Mapping[str, np.ndarray] | None) -> tuple[dict[str, int], np.ndarray]:
    """L2-normalised product vectors (zero vectors dropped: they have no direction)."""
    if not product_vectors:
        return {}, np.zeros((0, 0))
    pids = [str(p) for p in product_vectors]
    V = np.vstack([np.asarray(v, dtype=np.float64).ravel() for v in product_vectors.values()])
    norms = np.linalg.norm(V, axis=1)
    keep = np.flatnonzero(norms > 0)
    V = V[keep] / norms[keep, None]
    return {pids[i]: j for j, i in enumerate(keep.tolist())}, V
