"""Plain-text tables for search results: what the CLI and the demo print."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fuserec_os.search.backend import FacetBucket, SearchResult


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_hits(result: SearchResult, title_width: int = 48) -> str:
    """A ranked table: rank, id, title, brand, price, rating, stock, score."""
    first = (result.page - 1) * result.size
    lines = [
        f"{result.total} match(es), page {result.page}, {len(result.hits)} shown, engine took {result.took_ms} ms",
    ]
    if not result.hits:
        return lines[0]
    lines.append(f"{'#':>3}  {'id':<8} {'title':<{title_width}} {'brand':<14} {'price':>9} {'rating':>6} stock  score")
    for i, hit in enumerate(result.hits, start=first + 1):
        src = hit.source
        price = src.get("price")
        rating = src.get("rating")
        stock = "yes" if src.get("in_stock") else "no"
        score = f"{hit.score:.2f}" if isinstance(hit.score, (int, float)) else "-"
        pid = _cut(str(src.get("product_id", hit.id)), 8)
        title = _cut(str(src.get("title", "")), title_width)
        lines.append(
            f"{i:>3}  {pid:<8} {title:<{title_width}} "
            f"{_cut(str(src.get('brand', '')), 14):<14} {(f'{price:.2f}' if price is not None else '-'):>9} "
            f"{(f'{rating:.1f}' if rating is not None else '-'):>6} {stock:<5}  {score}"
        )
    return "\n".join(lines)


def render_facets(facets: dict[str, list[FacetBucket]], top: int = 6) -> str:
    """One line per facet: ``brand: Nike (12), Acme (9), ...``."""
    lines = []
    for name, buckets in facets.items():
        shown = [f"{b.key} ({b.count})" for b in buckets[:top] if b.count > 0]
        more = len([b for b in buckets if b.count > 0]) - len(shown)
        lines.append(f"  {name}: " + (", ".join(shown) or "-") + (f", +{more} more" if more > 0 else ""))
    return "facets:\n" + "\n".join(lines)
