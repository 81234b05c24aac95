"""Simulated logs in the shapes real shops hand over, to test loading them with CLI options only (no glue code).

Two real public logs needed pandas glue at every step, so the simulator writes the same shapes:

- a **click log** of a shop (:func:`click_log_rows`): one row per result click, ``visitor_id, sku, clicked_at,
  search_term, searched_at``; no event type, no request id and no search log. Loaded with
  ``--map user_id=visitor_id,product_id=sku,timestamp=clicked_at,query=search_term,query_time=searched_at
  --set type=click``;
- a **rating log** (:func:`rating_log_rows`): ``userId, itemId, rating, timestamp, tag``: an explicit rating
  (0.5-5 stars, halves) per engaged product with the words the user looked for as a tag-style query and epoch
  seconds. Loaded with ``--map user_id=userId,product_id=itemId,query=tag``; ``events.ratings`` turns the rating
  into an event type;
- a **catalog export** (:func:`catalog_export_rows`): ``sku, name, brand, department, price, short_description,
  long_description, ...``, loaded with ``--map product_id=sku,title=name,category=department,
  description=short_description+long_description``.

Ratings follow the simulated engagement (purchase 4.5-5, add to cart 4-4.5, click 2.5-4), so the rule "rating
>= 4 is a purchase-strength positive" recovers what the shoppers did. Seeded: the same input gives the same rows.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fuserec_os.simulate.catalog import GeneratedProduct

__all__ = [
    "CATALOG_EXPORT_MAP",
    "CLICK_LOG_MAP",
    "RATING_LOG_MAP",
    "SHAPES",
    "catalog_export_rows",
    "click_log_rows",
    "rating_log_rows",
    "write_table",
]

#: Log shapes ``fuserec generate events --shape`` writes besides the shop's own full log.
SHAPES = ("full", "clicks", "ratings")

#: The ``--map`` (and ``--set``) each shape loads with: what README and the tests use.
CLICK_LOG_MAP = "user_id=visitor_id,product_id=sku,timestamp=clicked_at,query=search_term,query_time=searched_at"
RATING_LOG_MAP = "user_id=userId,product_id=itemId,query=tag"
CATALOG_EXPORT_MAP = "product_id=sku,title=name,category=department,description=short_description+long_description"

_GRADE = {"click": 1, "add_to_cart": 2, "purchase": 3}
# rating range (in half stars) per strongest engagement
_STARS = {1: (5, 8), 2: (8, 9), 3: (9, 10)}


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def click_log_rows(
    events: Sequence[Mapping[str, Any]], impressions: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per result click: who, which product, when, the search text and when the search was made."""
    searched = {str(imp["request_id"]): str(imp["timestamp"]) for imp in impressions}
    rows = []
    for e in events:
        if e["type"] != "click" or not e.get("query"):
            continue
        rows.append(
            {
                "visitor_id": e["user_id"],
                "sku": e["product_id"],
                "clicked_at": e["timestamp"],
                "search_term": e["query"],
                "searched_at": searched.get(str(e.get("request_id")), ""),
            }
        )
    return rows


def rating_log_rows(events: Sequence[Mapping[str, Any]], seed: int = 7) -> list[dict[str, Any]]:
    """One rating per (user, product) engaged after a query, at the strongest engagement's time, with the
    query as the tag; stars from the engagement (see the module docstring)."""
    rng = random.Random(seed)
    best: dict[tuple[str, str], tuple[int, str, str]] = {}
    for e in events:
        grade = _GRADE.get(str(e["type"]))
        if grade is None or not e.get("query"):
            continue
        key = (str(e["user_id"]), str(e["product_id"]))
        if key not in best or grade > best[key][0]:
            best[key] = (grade, str(e["timestamp"]), " ".join(str(e["query"]).lower().split()))
    rows = []
    for (user, product), (grade, timestamp, tag) in best.items():
        low, high = _STARS[grade]
        rows.append(
            {
                "userId": user,
                "itemId": product,
                "rating": rng.randint(low, high) / 2,
                "timestamp": _epoch_ms(timestamp) // 1000,
                "tag": tag,
            }
        )
    rows.sort(key=lambda r: (r["timestamp"], r["userId"], r["itemId"]))
    return rows


def catalog_export_rows(products: Iterable[GeneratedProduct]) -> list[dict[str, Any]]:
    """The catalog as a shop system exports it: other column names, the description split in a short one
    (its first sentence) and a long one (the rest), tags as ``a|b``."""
    rows = []
    for p in products:
        doc = p.doc
        text = str(doc.get("description") or "")
        short, sep, rest = text.partition(". ")
        rows.append(
            {
                "sku": doc["product_id"],
                "name": doc["title"],
                "brand": doc.get("brand") or "",
                "department": doc.get("category") or "",
                "price": doc.get("price"),
                "currency": doc.get("currency") or "",
                "short_description": short + ("." if sep else ""),
                "long_description": rest,
                "tags": "|".join(doc.get("tags") or []),
                "in_stock": "yes" if doc.get("in_stock") else "no",
                "rating": doc.get("rating"),
                "review_count": doc.get("review_count"),
            }
        )
    return rows


def write_table(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Rows as CSV (``.csv``, header from the first row) or JSON Lines (``.jsonl``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        raise ValueError(f"unsupported file extension {path.suffix or '(none)'!r} for {path}; use .csv or .jsonl")
