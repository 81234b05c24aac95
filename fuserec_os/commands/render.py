"""Plain-text tables for search results: what the CLI and the demo print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fuserec_os.search.backend import FacetBucket, SearchResult


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_personalization(info: dict[str, Any], user_id: str | None) -> str:
    """One line saying what the rerank stage did: for whom, which model, applied or why not, timings."""
    who = f"for {user_id}" if user_id else "without a user (cold start)"
    version = info.get("model_version") or "no model"
    fallback = info.get("fallback")
    if info.get("applied"):
        what = "reranked" + (f" ({fallback.replace('_', ' ')}: the model's cold-start path)" if fallback else "")
    else:
        what = f"engine order ({(fallback or 'nothing to rerank').replace('_', ' ')})"
    t = info.get("timings_ms", {})
    steps = ", ".join(f"{k} {v:.1f} ms" for k, v in t.items() if isinstance(v, (int, float)))
    line = (
        f"personalized {who}: {what}, model {version}, window {info.get('window')}, "
        f"+{info.get('behavioural_candidates', 0)} behavioural; {steps}"
    )
    if info.get("model_load_ms") is not None:
        line += f" (model loaded in {info['model_load_ms']:.0f} ms)"
    if info.get("features_at"):
        line += f"; features as of {info['features_at']}"
    notes = info.get("notes") or []
    return "\n".join([line, *(f"  note: {n}" for n in notes)])


def _ranks(ranking: dict[str, Any] | None) -> str:
    if not ranking:
        return ""
    engine = ranking.get("engine_rank")
    source = ranking.get("source")
    where = f"engine #{engine}" if engine is not None else ("behavioural" if source == "behavioural" else "engine tail")
    return f"{where} -> #{ranking.get('new_rank')}"


def _scores(ranking: dict[str, Any]) -> str:
    def num(key: str) -> str:
        v = ranking.get(key)
        return f"{v:.3f}" if isinstance(v, (int, float)) else "-"

    return f"engine {num('engine_score')}, model {num('model_score')}, blended {num('blended_score')}"


def render_hits(result: SearchResult, title_width: int = 48, *, explain: bool = False) -> str:
    """A ranked table: rank, id, title, brand, price, rating, stock, score.

    ``explain`` (personalized searches): under each hit its engine rank -> new rank, the engine, model and
    blended scores, and the features that moved it most in words with their signed contributions.
    """
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
        if explain and hit.ranking:
            lines.append(f"{'':>5}{_ranks(hit.ranking)}  {_scores(hit.ranking)}")
            words = [f"{e['feature']} {e['contribution']:+.2f}" for e in hit.ranking.get("explanation") or []]
            if words:
                lines.append(f"{'':>5}" + "; ".join(words))
    return "\n".join(lines)


def render_facets(facets: dict[str, list[FacetBucket]], top: int = 6) -> str:
    """One line per facet: ``brand: Nike (12), Acme (9), ...``."""
    lines = []
    for name, buckets in facets.items():
        shown = [f"{b.key} ({b.count})" for b in buckets[:top] if b.count > 0]
        more = len([b for b in buckets if b.count > 0]) - len(shown)
        lines.append(f"  {name}: " + (", ".join(shown) or "-") + (f", +{more} more" if more > 0 else ""))
    return "facets:\n" + "\n".join(lines)
