"""The proxy's ASGI app (Starlette): one catch-all route dispatching on method and path.

``create_app(settings)`` builds everything from the deployment settings and the ranking YAML; tests pass their
own engine URLs, model loader and intervals. See ``docs/proxy.md`` for what a client sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fuserec_os.errors import ConfigError, FuserecError
from fuserec_os.experiments.config import ExperimentsConfig
from fuserec_os.profiles.item_cache import ItemSignalsCache
from fuserec_os.profiles.jobs import ITEMS_ALIAS, STATS_ALIAS
from fuserec_os.rerank.rules import BusinessRules
from fuserec_os.rerank.stage import RerankSettings, RuleSet
from fuserec_os.serve import jsonio
from fuserec_os.serve import personalize as pz
from fuserec_os.serve.engine import AsyncEngine, response_headers
from fuserec_os.serve.errors import ProxyError, bad_request, engine_unavailable, forbidden, too_large, unauthorized
from fuserec_os.serve.experiments import ExperimentRouter
from fuserec_os.serve.filter_path import apply_filter_path, filter_path_of
from fuserec_os.serve.impressions import ImpressionLog
from fuserec_os.serve.metrics import Metrics
from fuserec_os.serve.models import ActiveVersion, Loader, ModelHolder, Reloader, registry_loader
from fuserec_os.serve.policy import classify
from fuserec_os.settings import Settings

log = logging.getLogger("fuserec.serve")

API_KEY_HEADER = "x-fuserec-api-key"
WINDOW_HEADER = "x-fuserec-window"
EXPLAIN_HEADER = "x-fuserec-explain"
SESSION_HEADER = "x-fuserec-session-id"
REQUEST_ID_HEADER = "X-Fuserec-Request-Id"
MAX_USER_ID_BYTES = 512  # OpenSearch's document id limit: a longer id cannot have a profile
MAX_EVENTS_PER_BATCH = 10_000
_DROP_REQUEST_HEADERS = {
    "host", "content-length", "content-encoding", "connection", "keep-alive", "transfer-encoding", "te",
    "upgrade", "authorization", "accept-encoding", "proxy-authorization",
}  # fmt: skip


def _json(body: Any, status: int = 200, *, pretty: bool = False) -> Response:
    return Response(jsonio.dumps(body, pretty=pretty), status_code=status, media_type="application/json")


def _pretty(params: list[tuple[str, str]]) -> bool:
    """``?pretty`` or ``?pretty=true``: the engine indents its answer, so an answer the proxy builds is too."""
    return any(k == "pretty" and v.strip().lower() in ("", "true") for k, v in params)


@dataclass
class ProxyOptions:
    """What tests and the command may override; everything else comes from the settings."""

    urls: tuple[str, ...] = ()
    rerank: RerankSettings | None = None
    rules: RuleSet | None = None
    events_cfg: Any = None
    profiles_cfg: Any = None  # ProfilesConfig of the live profile updates (default: the built-in one)
    loader: Loader | None = None
    active_version: ActiveVersion | None = None
    reload_seconds: float | None = None
    impression_seconds: float = 1.0
    load_at_start: bool = True
    clock: Callable[[], Any] | None = None
    """The request time features are computed at (default: now, UTC); the demo serves its simulated shop's time."""
    experiments: ExperimentsConfig | None = None
    """A/B tests and interleaving (the ranking YAML's ``experiments``); None: none."""
    experiments_seconds: float = 10.0
    """How often stopped experiments are polled from the cluster."""
    guardrail_seconds: float = 300.0
    """How often the experiments' guardrails are checked (a report over their logs), in the background."""


class Proxy:
    """Process-wide state: engine client, model holder and reloader, impression log, metrics."""

    def __init__(self, settings: Settings, options: ProxyOptions) -> None:
        from fuserec_os.engine.client import make_client

        self.settings = settings
        self.metrics = Metrics()
        urls = options.urls or settings.opensearch_urls
        self.engine = AsyncEngine(urls, settings, on_error=lambda kind: self.metrics.count("engine_errors", kind))
        self.sync = make_client(settings, list(urls))
        self.products_alias = settings.alias("products")
        self.stores = pz.Stores(settings.alias("profiles"), settings.alias(STATS_ALIAS))
        interval = options.reload_seconds or settings.proxy_reload_seconds
        # the item signals live in memory (loaded with a model that uses them, polled every reload interval)
        self.signals = ItemSignalsCache(self.sync, settings.alias(ITEMS_ALIAS), interval_s=interval)
        self.holder = ModelHolder(options.rerank or RerankSettings(), options.rules, self.signals)
        self.events_cfg = options.events_cfg
        self.profiles_cfg = options.profiles_cfg
        self.live: Any = None  # the LiveUpdater, made on the first events POST when events.live_updates is on
        active, loader = registry_loader(self.sync, settings.index_prefix, self.products_alias)
        self.reloader = Reloader(
            self.holder,
            options.active_version or active,
            options.loader or loader,
            interval,
            on_result=self._reloaded,
            freeze_heap=True,
        )
        self.experiments = ExperimentRouter(
            options.experiments or ExperimentsConfig(),
            settings.index_prefix,
            stopped_reader=self._stopped_experiments,
            loader=options.loader or loader,
            poll_seconds=options.experiments_seconds,
            guardrail_check=self._check_guardrails,
            guardrail_seconds=options.guardrail_seconds,
            ensure_signals=self.signals.ensure_loaded,
        )
        self.impressions = ImpressionLog(
            self._write_impressions,
            interval=options.impression_seconds,
            on_count=lambda key, n: self.metrics.count("impressions", key, n),
        )
        self.load_at_start = options.load_at_start
        self.clock = options.clock
        self.user_header = settings.proxy_user_header.lower()
        self.started = time.time()

    # -- background work -------------------------------------------------------------------------------------
    def _reloaded(self, result: str, version: str | None) -> None:
        self.metrics.count("reloads", result)
        self.metrics.model_version = self.holder.version

    def _check_guardrails(self) -> Any:
        from fuserec_os.experiments.report import check_guardrails

        return check_guardrails(self.sync, self.settings.index_prefix, self.experiments.config)

    def _stopped_experiments(self, names: list[str]) -> set[str]:
        from fuserec_os.experiments.state import stopped_experiments

        return set(stopped_experiments(self.sync, self.settings.index_prefix, names))

    def _write_impressions(self, rows: Any) -> Any:
        from fuserec_os.behaviour.search_log import record_impressions
        from fuserec_os.index.mappings import load_named_mapping

        spec = load_named_mapping("searches", self.settings.resolved_mappings_dir())
        return record_impressions(self.sync, rows, spec, self.settings.alias("searches"))

    def _write_events(self, rows: Any) -> Any:
        from fuserec_os.behaviour.event_store import record_events
        from fuserec_os.behaviour.events import DEFAULT_EVENTS_CONFIG
        from fuserec_os.index.mappings import load_named_mapping

        spec = load_named_mapping("events", self.settings.resolved_mappings_dir())
        cfg = self.events_cfg or DEFAULT_EVENTS_CONFIG
        if not cfg.live_updates:
            return record_events(self.sync, rows, spec, self.settings.alias("events"), cfg=cfg), None
        # live: stored, then folded into the user's profile and the query statistics before the response
        from fuserec_os.profiles.config import ProfilesConfig
        from fuserec_os.profiles.live import LiveUpdater, record_events_live

        if self.live is None:
            profiles_cfg = self.profiles_cfg or ProfilesConfig()
            self.live = LiveUpdater.for_prefix(
                self.sync, self.settings.index_prefix, profiles_cfg, signals_cache=self.signals
            )
        return record_events_live(self.sync, rows, spec, self.settings.alias("events"), updater=self.live, cfg=cfg)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.impressions.start()
        if self.load_at_start:
            await asyncio.to_thread(self.reloader.check)
        self.metrics.model_version = self.holder.version
        self.reloader.start()
        if self.experiments.enabled:
            await asyncio.to_thread(self.experiments.check)
            self.experiments.start()
        try:
            yield
        finally:
            self.experiments.stop()
            self.reloader.stop()
            await self.impressions.close()
            await self.engine.close()
            self.sync.close()

    # -- request helpers -------------------------------------------------------------------------------------
    async def body(self, request: Request) -> bytes:
        limit = self.settings.proxy_max_body
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            raise too_large(
                f"request body of {length} bytes is above the proxy's limit of {limit} bytes (FUSEREC_PROXY_MAX_BODY)"
            )
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise too_large(f"request body is above the proxy's limit of {limit} bytes (FUSEREC_PROXY_MAX_BODY)")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if request.headers.get("content-encoding", "").lower() in ("gzip", "deflate") and raw:
            d = zlib.decompressobj(zlib.MAX_WBITS | 32)
            try:
                raw = d.decompress(raw, limit + 1)
            except zlib.error:
                raise bad_request("request body is not valid gzip/deflate") from None
            if len(raw) > limit or d.unconsumed_tail:
                raise too_large(f"decompressed request body is above the proxy's limit of {limit} bytes")
        return raw

    def user_id(self, request: Request) -> str | None:
        raw = request.headers.get(self.user_header)
        if raw is None:
            return None
        try:
            value = raw.encode("latin-1").decode("utf-8").strip()
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise bad_request(f"header {self.settings.proxy_user_header}: not valid UTF-8") from None
        if not value:
            return None
        if len(value.encode("utf-8")) > MAX_USER_ID_BYTES:
            raise bad_request(
                f"header {self.settings.proxy_user_header}: a user id is at most {MAX_USER_ID_BYTES} bytes"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise bad_request(f"header {self.settings.proxy_user_header}: control characters are not allowed")
        return value

    def session_id(self, request: Request) -> str | None:
        """The session id header when it is usable as an id (else None: never an error, it is optional)."""
        value = (request.headers.get(SESSION_HEADER) or "").strip()
        if not value or len(value.encode("utf-8", "replace")) > MAX_USER_ID_BYTES:
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return None
        return value

    def session_experiment(self, request: Request, index: str | None) -> bool:
        """An anonymous search (no user id) that an experiment assigns by its session id."""
        if index is None or not self.experiments.enabled or self.session_id(request) is None:
            return False
        return self.experiments.covers(index)

    def window(self, request: Request, params: list[tuple[str, str]]) -> int:
        raw = request.headers.get(WINDOW_HEADER) or dict(params).get("fuserec_window")
        settings = self.holder.settings
        if raw is None:
            return settings.window
        try:
            return settings.clamp_window(int(raw))
        except (ValueError, ConfigError):
            raise bad_request(
                f"window: {raw!r} must be a whole number from 1 to {settings.max_window} (rerank.max_window)"
            ) from None

    def forward_headers(self, request: Request) -> dict[str, str]:
        out = {}
        for k, v in request.headers.items():
            low = k.lower()
            if low in _DROP_REQUEST_HEADERS or low.startswith("x-fuserec-") or low == self.user_header:
                continue
            out[k] = v
        return out

    async def passthrough(self, request: Request, content: bytes | None, params: list[tuple[str, str]]) -> Response:
        resp = await self.engine.request(
            request.method,
            request.url.path,
            params=params,
            content=content if content else None,
            headers=self.forward_headers(request),
            client_auth=request.headers.get("authorization"),
        )
        return Response(resp.content, status_code=resp.status, headers=response_headers(resp.headers))

    # -- endpoints ------------------------------------------------------------------------------------------
    async def search(self, request: Request, index: str | None, request_id: str) -> tuple[Response, str]:
        raw = await self.body(request)
        params = [(k, v) for k, v in request.query_params.multi_items() if not k.startswith("fuserec")]
        user = self.user_id(request)
        window = self.window(request, request.query_params.multi_items())
        anonymous_in_experiment = user is None and self.session_experiment(request, index)
        personalizable = (user is not None or anonymous_in_experiment) and index == self.products_alias
        other_format = pz.not_json(params, request.headers)  # YAML, CBOR, Smile: the engine reads and answers it
        if not personalizable or other_format or index is None:
            if raw.strip() and not other_format:
                pz.parse_body(raw)  # a clear 400 for malformed JSON, whatever the engine would say
            resp = await self.passthrough(request, raw, params)
            if personalizable:
                resp.headers["X-Fuserec-Personalized"] = f"false; {other_format}"
            return resp, "search"
        body = pz.parse_body(raw)
        plan = pz.plan_search(body, params)
        if isinstance(plan, str):
            resp = await self.passthrough(request, raw, params)
            resp.headers["X-Fuserec-Personalized"] = f"false; {plan}"
            return resp, "search"
        out = await self.personalize(request, index, plan, user, window, request_id)
        if out.engine_response is not None and out.status != 200:
            er = out.engine_response
            return Response(er.content, status_code=er.status, headers=response_headers(er.headers)), "search"
        return _json(apply_filter_path(out.body, plan.filter_path), pretty=_pretty(params)), "search_personalized"

    async def personalize(
        self, request: Request, index: str, plan: pz.SearchPlan, user: str | None, window: int, request_id: str
    ) -> pz.Personalized:
        stage = self.holder.stage()
        explain = request.headers.get(EXPLAIN_HEADER, "").strip().lower() in ("true", "1", "yes")
        session = self.session_id(request)
        t_exp = time.perf_counter()
        routed = self.experiments.route(index, user, session, stage, request_id)
        exp_ms = (time.perf_counter() - t_exp) * 1000
        out = await pz.personalized_search(
            self.engine,
            stage,
            self.stores,
            index,
            plan,
            user_id=user,
            window=window,
            request_id=request_id,
            client_auth=request.headers.get("authorization"),
            explain=explain,
            now=self.clock() if self.clock is not None else None,
            ranker=routed.ranker if routed is not None else None,
        )
        if out.result is not None:
            self.metrics.outcome(out.result.applied, out.result.fallback)
            # every search is logged, one that found nothing included (an empty page: product_ids [], n_shown 0):
            # the experiment report counts searches from this log, so skipping empty ones would flatter a variant
            # that finds nothing more often
            if user is not None or routed is not None:
                row: dict[str, Any] = {
                    "request_id": request_id,
                    "user_id": user,
                    "timestamp": self.clock().timestamp() if self.clock is not None else time.time(),
                    "product_ids": out.page_ids,
                }
                if session:
                    row["session_id"] = session
                if plan.text:
                    row["query"] = plan.text
                if routed is not None:
                    t_exp = time.perf_counter()
                    row.update(routed.impression(out.page_ids))
                    exp_ms += (time.perf_counter() - t_exp) * 1000
                self.impressions.add(row)
        if routed is not None and out.status == 200 and isinstance(out.body, dict):
            # what the experiment cost this request beyond the variant's own ranking: assignment and routing,
            # and the impression's experiment fields (the write itself is batched off the request path)
            section = out.body.setdefault("fuserec", {})
            section.update(routed.info())
            section.setdefault("timings_ms", {})["experiment"] = round(exp_ms, 4)
            self.metrics.count("experiments", f"{routed.assignment.experiment.name}/{routed.variant_name}")
        return out

    async def msearch(self, request: Request, index: str | None, request_id: str) -> tuple[Response, str]:
        raw = await self.body(request)
        params = [(k, v) for k, v in request.query_params.multi_items() if not k.startswith("fuserec")]
        user = self.user_id(request)
        window = self.window(request, request.query_params.multi_items())
        lines = [ln for ln in raw.split(b"\n") if ln.strip()]
        if user is None or pz.not_json(params, request.headers):
            return await self.passthrough(request, raw, params), "msearch"
        if len(lines) % 2:
            raise bad_request("_msearch: the body must be header/body line pairs (an odd number of lines was sent)")
        pairs: list[tuple[dict[str, Any], dict[str, Any], bytes, bytes]] = []
        for i in range(0, len(lines), 2):
            header = pz.parse_body(lines[i])
            pairs.append((header, pz.parse_body(lines[i + 1]), lines[i], lines[i + 1]))
        plans: dict[int, tuple[str, pz.SearchPlan]] = {}
        for n, (header, body, _, _) in enumerate(pairs):
            target = header.get("index", index)
            if isinstance(target, list) and len(target) == 1:
                target = target[0]
            if target != self.products_alias:
                continue
            item_params = [
                (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in header.items() if k != "index"
            ]
            plan = pz.plan_search(body, item_params)
            if isinstance(plan, pz.SearchPlan):
                plans[n] = (str(target), plan)
        if not plans:
            return await self.passthrough(request, raw, params), "msearch"
        # the whole answer is built here: filter_path applies to it, not to the engine's part (filter_path.py)
        filter_path = filter_path_of(params)
        params = [(k, v) for k, v in params if k != "filter_path"]
        responses: list[Any] = [None] * len(pairs)
        rest = [n for n in range(len(pairs)) if n not in plans]

        async def run_rest() -> None:
            if not rest:
                return
            content = b"".join(pairs[n][2] + b"\n" + pairs[n][3] + b"\n" for n in rest)
            path = f"/{index}/_msearch" if index else "/_msearch"
            resp = await self.engine.request(
                "POST", path, params=params, content=content,
                headers={"Content-Type": "application/x-ndjson"}, client_auth=request.headers.get("authorization"),
            )  # fmt: skip
            data = jsonio.loads(resp.content)
            if resp.status != 200:
                for n in rest:
                    responses[n] = {**data, "status": resp.status}
                return
            for n, item in zip(rest, data.get("responses", []), strict=False):
                responses[n] = item

        async def run_one(n: int) -> None:
            target, plan = plans[n]
            rid = f"{request_id}-{n}"
            try:
                out = await self.personalize(request, target, plan, user, window, rid)
            except ProxyError as exc:
                responses[n] = exc.body()
                return
            if out.status != 200:
                er = out.engine_response
                body = jsonio.loads(er.content) if er is not None and er.content else {}
                responses[n] = {**body, "status": out.status}
            else:
                responses[n] = {**out.body, "status": 200}

        await asyncio.gather(run_rest(), *(run_one(n) for n in plans))
        took = max((r.get("took", 0) for r in responses if isinstance(r, dict)), default=0)
        answer = apply_filter_path({"took": took, "responses": responses}, filter_path)
        return _json(answer, pretty=_pretty(params)), "msearch_personalized"

    async def events(self, request: Request) -> Response:
        raw = await self.body(request)
        try:
            data = jsonio.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"failed to parse the events body as JSON: {exc}") from None
        rows = data.get("events") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not rows:
            raise bad_request('expected a JSON array of events, or {"events": [...]}, with at least one event')
        if len(rows) > MAX_EVENTS_PER_BATCH:
            raise too_large(f"{len(rows)} events in one batch; at most {MAX_EVENTS_PER_BATCH}")
        bad = [i for i, r in enumerate(rows) if not isinstance(r, dict)]
        good = [r if isinstance(r, dict) else {} for r in rows]
        try:
            result, live = await asyncio.to_thread(self._write_events, good)
        except FuserecError as exc:
            self.metrics.count("events", "engine_error")
            raise engine_unavailable(f"recording events: {exc}") from None
        out = result.as_dict()
        if live is not None:
            out["live_update"] = live.as_dict()
            self.metrics.count(
                "events", "live_error" if live.error else "live_applied", 1 if live.error else live.events
            )
        out["rejected"] = [r for r in out["rejected"] if r["index"] not in bad] + [
            {"index": i, "reasons": ["event: expected a JSON object"]} for i in bad
        ]
        out["rejected"].sort(key=lambda r: r["index"])
        out["errors"] = bool(out["rejected"])
        self.metrics.count("events", "accepted", out["accepted"])
        self.metrics.count("events", "rejected", len(out["rejected"]))
        return JSONResponse(out)

    async def health(self) -> Response:
        try:
            resp = await asyncio.wait_for(self.engine.request("GET", "/"), timeout=2.0)
            engine_ok = resp.status == 200
            engine_state = "ok" if engine_ok else f"http {resp.status}"
        except (ProxyError, asyncio.TimeoutError) as exc:
            engine_ok, engine_state = False, getattr(exc, "reason", "timeout")
        body = {
            "status": "ok" if engine_ok else "engine_unavailable",
            "engine": engine_state,
            "model_version": self.holder.version,
            "model_refused": dict(self.reloader.refused),
            "item_signals": self.signals.info(),
            "uptime_s": round(time.time() - self.started, 1),
        }
        return JSONResponse(body, status_code=200 if engine_ok else 503)

    async def dispatch(self, request: Request) -> Response:
        t0 = time.perf_counter()
        path = request.url.path
        method = request.method.upper()
        route = "unknown"
        request_id = uuid.uuid4().hex
        try:
            if path.rstrip("/") == "/_fuserec/health" and method in ("GET", "HEAD"):
                route = "health"
                resp = await self.health()
            else:
                self.check_key(request)
                if path.startswith("/_fuserec/"):
                    route, resp = await self.own_endpoint(request, path.rstrip("/"), method)
                else:
                    decision = classify(method, path, self.settings.proxy_allow)
                    route = decision.route
                    if decision.route == "search":
                        resp, route = await self.search(request, decision.index, request_id)
                    elif decision.route == "msearch":
                        resp, route = await self.msearch(request, decision.index, request_id)
                    elif decision.route in ("read", "allowed"):
                        raw = await self.body(request)
                        resp = await self.passthrough(request, raw, list(request.query_params.multi_items()))
                    else:
                        raise forbidden(decision.reason)
        except ProxyError as exc:
            resp = exc.response()
        except Exception:  # a bug: say so in OpenSearch's shape, log the traceback (never the api key)
            log.exception("fuserec serve: internal error on %s %s", method, path)
            resp = ProxyError(500, "fuserec_internal_error", "internal proxy error (logged)").response()
        if route in ("search", "search_personalized", "msearch", "msearch_personalized"):
            resp.headers[REQUEST_ID_HEADER] = request_id
        self.metrics.request(route, method, resp.status_code, time.perf_counter() - t0)
        return resp

    def check_key(self, request: Request) -> None:
        key = self.settings.proxy_api_key
        if not key:
            return
        given = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), key.encode("utf-8")):
            raise unauthorized("fuserec proxy: missing or wrong X-Fuserec-Api-Key")

    async def own_endpoint(self, request: Request, path: str, method: str) -> tuple[str, Response]:
        if path == "/_fuserec/metrics" and method == "GET":
            self.metrics.model_version = self.holder.version
            return "metrics", PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")
        if path == "/_fuserec/events" and method == "POST":
            return "events", await self.events(request)
        raise ProxyError(404, "resource_not_found_exception", f"no fuserec endpoint {method} {path}")


def create_app(settings: Settings, options: ProxyOptions | None = None) -> Starlette:
    """The ASGI app; ``app.state.proxy`` is the :class:`Proxy` (tests reach the holder and metrics there)."""
    proxy = Proxy(settings, options or ProxyOptions())
    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
    app = Starlette(
        routes=[Route("/", proxy.dispatch, methods=methods), Route("/{path:path}", proxy.dispatch, methods=methods)],
        lifespan=proxy.lifespan,
    )
    app.state.proxy = proxy
    return app


def engine_urls(settings: Settings) -> tuple[str, ...]:
    """The cluster URLs, else the recorded background engine's; EngineUnavailableError when there is neither."""
    if settings.opensearch_urls:
        return settings.opensearch_urls
    from fuserec_os.engine.embedded import check_engine
    from fuserec_os.errors import EngineUnavailableError

    live = check_engine(settings.state_dir)
    if live.record is not None and live.record.url and live.state in ("running", "busy", "starting"):
        return (str(live.record.url),)
    raise EngineUnavailableError(
        "fuserec serve needs an engine: set FUSEREC_OPENSEARCH_URL, or run 'fuserec engine start' first."
    )


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (several workers): settings and ranking config from the environment."""
    from fuserec_os.config import load_ranking_config

    settings = Settings.from_env()
    ranking = load_ranking_config(settings.config_path)
    options = ProxyOptions(
        urls=engine_urls(settings),
        rerank=ranking.rerank,
        rules=BusinessRules(ranking.rules),
        events_cfg=ranking.events,
        profiles_cfg=ranking.profiles,
        experiments=ranking.experiments,
    )
    return create_app(settings, options)
