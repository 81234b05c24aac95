"""The last step of ``fuserec demo``: the query proxy in front of the demo's engine, seen from an app.

The proxy (``fuserec serve``'s app) runs in this process, uvicorn in a thread on a free loopback port, against
the engine the demo used, and is stopped whatever happens. Two shoppers with clearly different tastes are
picked from the stored profiles (same department, different favourite brands: :func:`pick_shoppers`), and a
query both could type (their department's product noun, e.g. 'running shoes'). An unchanged
``opensearchpy.OpenSearch`` client sends it once per shopper with the user id header (plus the proxy's
``X-Fuserec-Explain`` opt-in), and once without it (engine order). The lists are printed side by side, then,
per shopper, the hits that moved up most with the features that moved them, in words.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from fuserec_os.commands.render import _cut, render_personalization
from fuserec_os.config import RankingConfig
from fuserec_os.engine import Engine
from fuserec_os.errors import FuserecError
from fuserec_os.profiles.compute import UserProfile
from fuserec_os.settings import Settings

USER_HEADER = "X-Fuserec-User-Id"
EXPLAIN_HEADER = "X-Fuserec-Explain"
SIZE = 10
MOVES = 3
DEMO_BUDGET_MS = 1000.0
"""The demo's proxy allows the rerank stage this long (the configured budget, 25 ms by default, is for
production): explanations cost extra, and the demo runs on busy laptops; the timings printed are the real ones."""


class ProxyStepError(FuserecError):
    """The demo's proxy step could not run (the proxy did not start, or did not load the model)."""

    exit_code = 1


@dataclass(frozen=True)
class Shopper:
    user_id: str
    brand: str
    share: float  # of the profile's brand weight
    department: str  # top-level category of the favourite leaf
    leaf: str  # favourite leaf category path
    n_events: int
    median_price: float | None = None


@dataclass(frozen=True)
class ShopperPair:
    a: Shopper
    b: Shopper
    leaf: str
    query: str
    in_leaf: tuple[int, int]  # products of a's and b's brand in the leaf


def _shopper(p: UserProfile, min_events: int) -> Shopper | None:
    if p.n_events < min_events:
        return None
    brands = p.top_brands(1)
    leaves = p.top_categories(1, depth=2)
    if not brands or not leaves:
        return None
    leaf = leaves[0][0]
    median = p.price.median if p.price is not None else None
    return Shopper(p.user_id, brands[0][0], brands[0][1], leaf.split(" > ")[0], leaf, p.n_events, median)


def pick_shoppers(
    profiles: Sequence[UserProfile],
    products: Sequence[Mapping[str, Any]],
    *,
    min_events: Sequence[int] = (15, 8),
    min_products: int = 3,
    personalized: Callable[[int], bool] | None = None,
) -> ShopperPair | None:
    """Two shoppers whose favourite leaf category is the same and whose favourite brands differ, both brands
    having at least ``min_products`` products there; of all such pairs, the one with the strongest tastes
    (highest smaller brand share, then more events, then user ids), among shoppers with at least
    ``min_events[0]`` events, else ``min_events[1]``, ... Deterministic. None if there is none.

    ``personalized(n_events)``: whether the model's blend gate personalizes a shopper with that much history;
    shoppers it would leave in engine order are taken only when no pair of personalized ones exists.
    """
    if personalized is not None:
        chosen = pick_shoppers(
            [p for p in profiles if personalized(p.n_events)], products, min_events=min_events,
            min_products=min_products,
        )  # fmt: skip
        if chosen is not None:
            return chosen
    per_leaf_brand = Counter((str(d.get("category", "")).lower(), str(d.get("brand", ""))) for d in products)
    for least in min_events:
        groups: dict[str, list[Shopper]] = {}
        for p in profiles:
            s = _shopper(p, least)
            if s is not None and per_leaf_brand[(s.leaf, s.brand)] >= min_products:
                groups.setdefault(s.leaf, []).append(s)
        best: tuple[tuple[float, int], ShopperPair] | None = None
        for leaf in sorted(groups):
            people = sorted(groups[leaf], key=lambda s: (-s.share, -s.n_events, s.user_id))
            a = people[0]
            b = next((s for s in people[1:] if s.brand != a.brand), None)
            if b is None:
                continue
            key = (min(a.share, b.share), min(a.n_events, b.n_events))
            if best is None or key > best[0]:
                counts = (per_leaf_brand[(leaf, a.brand)], per_leaf_brand[(leaf, b.brand)])
                best = (key, ShopperPair(a, b, leaf, leaf.split(" > ")[-1], counts))
        if best is not None:
            return best[1]
    return None


# ------------------------------------------------------------------------------------------ the proxy thread


@dataclass
class RunningProxy:
    url: str
    app: Any
    load_seconds: float


@contextmanager
def running_proxy(
    engine: Engine,
    settings: Settings,
    ranking: RankingConfig,
    *,
    expect_model: str,
    active: bool = True,
    now: pd.Timestamp | None = None,
    timeout: float = 180.0,
    clock: Callable[[], Any] | None = None,
    experiments: Any = None,
    live_updates: bool | None = None,
) -> Iterator[RunningProxy]:
    """``fuserec serve``'s app in a thread on a free loopback port, stopped on exit whatever happens.

    Yields once ``/_fuserec/health`` says the engine answers and ``expect_model`` is loaded (the registry's
    active version, or with ``active=False`` that version whatever the registry's pointer says); raises
    :class:`ProxyStepError` naming the cause otherwise (port, start-up error, refused model, timeout).
    ``clock`` (a moving simulated time) wins over ``now`` (a fixed one); ``experiments`` (default: none, whatever the
    config says) and ``live_updates`` (default: the config's) are the closed loop's.
    """
    import uvicorn

    from fuserec_os.experiments.config import ExperimentsConfig
    from fuserec_os.rerank.rules import BusinessRules
    from fuserec_os.serve.app import ProxyOptions, create_app

    urls = settings.opensearch_urls or (engine.url,)
    rerank = replace(ranking.rerank, budget_ms=max(ranking.rerank.budget_ms, DEMO_BUDGET_MS))
    events_cfg = ranking.events if live_updates is None else replace(ranking.events, live_updates=live_updates)
    if clock is None and now is not None:
        clock = lambda: now  # noqa: E731
    options = ProxyOptions(
        urls=tuple(urls), rerank=rerank, rules=BusinessRules(ranking.rules), events_cfg=events_cfg,
        profiles_cfg=ranking.profiles, reload_seconds=3600.0, impression_seconds=0.5, clock=clock,
        active_version=None if active else (lambda: expect_model),
        experiments=experiments or ExperimentsConfig(),  # the demo's own steps run without the config's tests
    )  # fmt: skip
    try:
        app = create_app(settings, options)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    except (OSError, FuserecError) as exc:
        raise ProxyStepError(f"the proxy could not be set up: {exc}") from None
    port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    crashed: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed start-up included: reported below
            crashed.append(exc)

    thread = threading.Thread(target=serve, name="fuserec-demo-proxy", daemon=True)
    t0 = time.monotonic()
    thread.start()
    try:
        _wait_healthy(url, thread, crashed, expect_model, t0 + timeout)
        yield RunningProxy(url, app, time.monotonic() - t0)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _health(url: str) -> dict[str, Any] | str:
    try:
        with urllib.request.urlopen(f"{url}/_fuserec/health", timeout=5) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:  # 503: the engine does not answer the proxy
        try:
            body = json.loads(exc.read())
        except ValueError:
            return f"HTTP {exc.code}"
        return body if isinstance(body, dict) else f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _wait_healthy(
    url: str, thread: threading.Thread, crashed: list[BaseException], expect: str, deadline: float
) -> None:
    last: dict[str, Any] | str = "no answer yet"
    while True:
        if not thread.is_alive():
            why = f"{type(crashed[0]).__name__}: {crashed[0]}" if crashed else "the server thread ended"
            raise ProxyStepError(
                f"the proxy on {url} stopped while starting ({why}); its log above says more. Last health: "
                f"{_said(last)}"
            )
        last = _health(url)
        if isinstance(last, dict):
            refused = last.get("model_refused") or {}
            if expect in refused:
                raise ProxyStepError(f"the proxy on {url} refused model {expect}: {refused[expect]}")
            if last.get("status") == "ok" and last.get("model_version") == expect:
                return
        if time.monotonic() > deadline:
            raise ProxyStepError(
                f"the proxy on {url} did not report model {expect} loaded in time; last health: {_said(last)}"
            )
        time.sleep(0.1)


def _said(health: dict[str, Any] | str) -> str:
    if isinstance(health, str):
        return health
    return ", ".join(f"{k} {v if v not in (None, {}) else '-'}" for k, v in health.items())


# ------------------------------------------------------------------------------------------ the step


def query_body(text: str, size: int = SIZE) -> dict[str, Any]:
    """What a shop's search box might send: BM25 over the product text fields."""
    fields = ["title^3", "brand.text^2", "category.text^2", "tags.text", "description"]
    return {"query": {"multi_match": {"query": text, "fields": fields}}, "size": size}


def proxy_step(
    engine: Engine,
    settings: Settings,
    ranking: RankingConfig,
    profiles: Sequence[UserProfile],
    products: Sequence[Mapping[str, Any]],
    *,
    model_version: str | None,
    active: bool = True,
    now: pd.Timestamp | None = None,
    step: int,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Run the step; returns what it showed (users, query, the three id lists) for callers and tests."""
    from opensearchpy import OpenSearch

    echo(f"\n== {step}. the query proxy: one query for two shoppers through an unchanged opensearch-py client")
    if model_version is None:
        raise ProxyStepError("no model was trained or is active, so the proxy has nothing to serve")
    alias = settings.alias("products")
    searches_alias = settings.alias("searches")
    engine.client.indices.refresh(index=searches_alias, params={"ignore_unavailable": "true"})
    searches_before = int(engine.client.count(index=searches_alias)["count"])
    with running_proxy(engine, settings, ranking, expect_model=model_version, active=active, now=now) as proxy:
        echo(
            f"   fuserec serve on {proxy.url} -> {engine.url}: model {model_version} loaded, answering after "
            f"{proxy.load_seconds:.1f} s (rerank budget {DEMO_BUDGET_MS:.0f} ms for the demo)"
        )
        loaded = proxy.app.state.proxy.holder.model
        gate = loaded.artifact.gate if loaded is not None else None
        pair = pick_shoppers(profiles, products, personalized=(lambda n: gate.alpha(n) > 0) if gate else None)
        if pair is None:
            raise ProxyStepError(
                "no two shoppers share a favourite category with different favourite brands "
                "(run the demo with more --users or --days)"
            )
        for s in (pair.a, pair.b):
            if gate is not None and gate.alpha(s.n_events) <= 0:
                echo(
                    f"   note: the model's blend gate keeps engine order for {s.user_id} ({gate.segment(s.n_events)} "
                    f"history, alpha {gate.alpha(s.n_events):.2f}: validation did not support personalizing such "
                    "shoppers on this shop), so that list stays the engine's"
                )
        if not active:
            echo(
                f"   note: {model_version} was not promoted (step 14); this demo proxy serves it anyway to show the "
                "mechanism, a real one serves only the registry's active version"
            )
        a, b = pair.a, pair.b
        leaf = _title_path(pair.leaf)
        echo(
            f"   two shoppers of {leaf} with different favourite brands, and a query both could type: "
            f"'{pair.query}' (the catalog has {pair.in_leaf[0]} {a.brand} and {pair.in_leaf[1]} {b.brand} of them)"
        )
        echo(f"     {_taste(a)}\n     {_taste(b)}")
        echo(
            f'   sent by an unchanged client: OpenSearch("{proxy.url}").search(index="{alias}", body=..., '
            f"headers=...)\n     body: multi_match '{pair.query}', size {SIZE}; headers: {USER_HEADER} and "
            f"{EXPLAIN_HEADER}: true per shopper, none for engine order"
        )
        client = OpenSearch([proxy.url], timeout=60)
        try:
            body = query_body(pair.query)
            resp = {
                s.user_id: client.search(
                    index=alias, body=body, headers={USER_HEADER: s.user_id, EXPLAIN_HEADER: "true"}
                )
                for s in (a, b)
            }
            plain = client.search(index=alias, body=body)
        finally:
            client.close()
    # what reached the search log, counted by the engine (the proxy flushed its queue when it stopped)
    engine.client.indices.refresh(index=searches_alias, params={"ignore_unavailable": "true"})
    logged = int(engine.client.count(index=searches_alias)["count"]) - searches_before
    for s in (a, b):
        info = resp[s.user_id].get("fuserec") or {}
        echo("   " + render_personalization(info, s.user_id).replace("\n", "\n   "))
    total = plain["hits"]["total"]
    matches = total.get("value") if isinstance(total, dict) else total
    echo(f"\n   '{pair.query}': {matches} matches; top {SIZE} for each shopper, engine order for reference")
    lists = [(f"{s.user_id} ({s.brand})", resp[s.user_id]) for s in (a, b)]
    echo(render_side_by_side(lists, ("engine order (no user id)", plain)))
    ids = {uid: [h["_id"] for h in r["hits"]["hits"]] for uid, r in resp.items()}
    engine_ids = [h["_id"] for h in plain["hits"]["hits"]]
    shared = len(set(ids[a.user_id]) & set(ids[b.user_id]))
    echo(
        f"   the two lists share {shared} of {SIZE} products; {a.user_id} has {_brand_count(resp[a.user_id], a.brand)} "
        f"{a.brand} in the top {SIZE}, {b.user_id} {_brand_count(resp[b.user_id], b.brand)} {b.brand}; "
        f"the engine's order has {_brand_count(plain, a.brand)} and {_brand_count(plain, b.brand)}"
    )
    for s in (a, b):
        echo("")
        echo(render_moves(s.user_id, resp[s.user_id]))
    echo(f"   the proxy logged {logged} personalized searches into the search log (training reads them next time)")
    return {"pair": pair, "ids": ids, "engine": engine_ids, "logged": logged}


def _taste(s: Shopper) -> str:
    price = f", median price {_price(s.median_price)}" if s.median_price is not None else ""
    return f"{s.user_id} buys {s.brand}: {s.share:.0%} of their brand weight, {s.n_events} events{price}"


def _title_path(path: str) -> str:
    return " > ".join(part[:1].upper() + part[1:] for part in path.split(" > "))


def _brand_count(resp: Mapping[str, Any], brand: str) -> int:
    return sum(1 for h in resp["hits"]["hits"] if (h.get("_source") or {}).get("brand") == brand)


def _short_title(source: Mapping[str, Any], width: int = 0) -> str:
    """The title without the brand in front (the brand has its own column), and without its ``- Colour``
    ending when that is what makes it longer than ``width``."""
    title = str(source.get("title", "")).strip()
    brand = str(source.get("brand", "")).strip()
    if brand and title.lower().startswith(brand.lower() + " "):
        title = title[len(brand) + 1 :]
    if width and len(title) > width and " - " in title:
        title = title.rsplit(" - ", 1)[0]
    return _cut(title, width) if width else title


def render_side_by_side(
    lists: Sequence[tuple[str, Mapping[str, Any]]],
    reference: tuple[str, Mapping[str, Any]],
    *,
    title_width: int = 30,
    ref_title_width: int = 24,
) -> str:
    """Rank, title, brand and where the engine had it, one column per shopper; engine order last."""
    brand_w, was_w = 10, 6
    cell_w = title_width + 1 + brand_w + 1 + was_w
    ref_w = ref_title_width + 1 + brand_w
    head = "    " + "  ".join(f"{_cut(name, cell_w):<{cell_w}}" for name, _ in lists)
    head += f"  {_cut(reference[0], ref_w)}"
    sub_cell = f"{'title':<{title_width}} {'brand':<{brand_w}} {'engine':>{was_w}}"
    sub = "  # " + "  ".join(sub_cell for _ in lists) + f"  {'title':<{ref_title_width}} brand"
    rows = [head.rstrip(), sub.rstrip()]

    def cell(hit: Mapping[str, Any] | None, engine_rank: str | None) -> str:
        if hit is None:
            return " " * (cell_w if engine_rank is not None else ref_w)
        src = hit.get("_source") or {}
        width = title_width if engine_rank is not None else ref_title_width
        title = _short_title(src, width)
        text = f"{title:<{width}} {_cut(str(src.get('brand', '')), brand_w):<{brand_w}}"
        return text if engine_rank is None else f"{text} {engine_rank:>{was_w}}"

    ranks = [_engine_ranks(resp) for _, resp in lists]
    ref_hits = list(reference[1]["hits"]["hits"])
    n = max([len(ref_hits), *(len(resp["hits"]["hits"]) for _, resp in lists)])
    for i in range(n):
        parts = []
        for (_, resp), rank_of in zip(lists, ranks, strict=True):
            hits = resp["hits"]["hits"]
            hit = hits[i] if i < len(hits) else None
            parts.append(cell(hit, rank_of.get(str(hit["_id"]), "") if hit is not None else ""))
        parts.append(cell(ref_hits[i] if i < len(ref_hits) else None, None))
        rows.append(f"{i + 1:>3} " + "  ".join(parts).rstrip())
    return "\n".join(rows)


def _engine_ranks(resp: Mapping[str, Any]) -> dict[str, str]:
    """Where the engine had each hit of a personalized page: ``#7``, ``new`` for a behavioural candidate."""
    out: dict[str, str] = {}
    for h in (resp.get("fuserec") or {}).get("hits") or []:
        rank = h.get("engine_rank")
        out[str(h.get("_id"))] = f"#{rank}" if rank is not None else "new"
    return out


def render_moves(user_id: str, resp: Mapping[str, Any], top: int = MOVES) -> str:
    """The hits of the page that moved up most, each with the features that moved it, in words."""
    info = resp.get("fuserec") or {}
    window = int(info.get("window") or 0)
    sources = {str(h["_id"]): h.get("_source") or {} for h in resp["hits"]["hits"]}
    moved = []
    for h in info.get("hits") or []:
        engine = h.get("engine_rank")
        before = engine if engine is not None else window + 1
        if before > h["new_rank"]:
            moved.append((before - h["new_rank"], h))
    moved.sort(key=lambda t: (-t[0], t[1]["new_rank"]))
    if not moved:
        return f"   {user_id}: nothing moved up (the page is the engine's order)"
    lines = [f"   why {user_id}'s list differs: the {min(top, len(moved))} biggest moves up, and what moved them"]
    for _, h in moved[:top]:
        src = sources.get(str(h["_id"]), {})
        engine = h.get("engine_rank")
        was = f"engine #{engine}" if engine is not None else f"not in the engine's top {window}"
        lines.append(
            f"     {was} -> #{h['new_rank']}  {_cut(_short_title(src), 40)} ({src.get('brand', '-')}, "
            f"{_price(src.get('price'))})"
        )
        words = [f"{e['feature']} {e['contribution']:+.2f}" for e in h.get("explanation") or []]
        lines.append("         " + ("; ".join(words) if words else "no single feature stands out"))
    return "\n".join(lines)


def _price(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, (int, float)) else "no price"
