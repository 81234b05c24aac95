"""The proxy's async, pooled client to the engine (:mod:`fuserec_os.serve.http1`), and how engine failures map
to HTTP answers.

Raw bytes go through unchanged where the proxy has nothing to change. A connection failure is a 503 and a
timeout a 504, both in OpenSearch's error shape; the pool reconnects by itself once the engine is back, so the
proxy never needs a restart. With several cluster URLs requests rotate over them and skip, for a while, one
that refused a connection.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fuserec_os.serve import jsonio
from fuserec_os.serve.errors import ProxyError, engine_timeout, engine_unavailable
from fuserec_os.serve.http1 import ConnectError, HTTPPool, ProtocolError
from fuserec_os.settings import Settings, mask_url

_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding",
    "upgrade", "host", "content-length", "content-encoding",
}  # fmt: skip
_DEAD_FOR_S = 5.0


@dataclass
class EngineResponse:
    status: int
    content: bytes
    headers: Mapping[str, str]
    elapsed_ms: float

    def json(self) -> Any:
        return jsonio.loads(self.content)


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The engine's response headers a client may see (hop-by-hop and length/encoding dropped)."""
    return {k: v for k, v in headers.items() if k.lower() not in _HOP}


class AsyncEngine:
    """Pooled async HTTP to the engine. ``on_error(kind)`` is called for every failure (metrics)."""

    def __init__(
        self,
        urls: Sequence[str],
        settings: Settings,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if not urls:
            raise ValueError("the proxy needs at least one engine URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.where = ", ".join(mask_url(u) for u in self.urls)
        self._next = itertools.cycle(range(len(self.urls)))
        self._dead_until = [0.0] * len(self.urls)
        self.on_error = on_error or (lambda kind: None)
        self.basic_auth: str | None = None
        if settings.user:
            token = base64.b64encode(f"{settings.user}:{settings.password or ''}".encode()).decode("ascii")
            self.basic_auth = f"Basic {token}"
        context: ssl.SSLContext | None = None
        if any(u.lower().startswith("https:") for u in self.urls):
            if not settings.verify_certs:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context = ssl.create_default_context(cafile=str(settings.ca_certs) if settings.ca_certs else None)
        self.timeout = settings.timeout
        self.client = HTTPPool(ssl_context=context, connect_timeout=min(settings.timeout, 5.0), max_idle=64)

    async def close(self) -> None:
        await self.client.aclose()

    def _pick(self) -> int:
        now = time.monotonic()
        for _ in range(len(self.urls)):
            i = next(self._next)
            if self._dead_until[i] <= now:
                return i
        return next(self._next)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        client_auth: str | None = None,
    ) -> EngineResponse:
        """One request; ``client_auth`` (the client's Authorization header) wins over the configured user."""
        hdrs = dict(headers or {})
        if client_auth:
            hdrs["Authorization"] = client_auth
        elif self.basic_auth is not None:
            hdrs["Authorization"] = self.basic_auth
        if content is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        i = self._pick()
        t0 = time.perf_counter()
        try:
            resp = await self.client.request(
                method, self.urls[i], path, params=params, content=content, headers=hdrs, timeout=self.timeout
            )
        except asyncio.TimeoutError as exc:
            self.on_error("timeout")
            raise engine_timeout(f"the engine at {self.where} did not answer in time") from exc
        except (ConnectError, ProtocolError) as exc:
            self._dead_until[i] = time.monotonic() + _DEAD_FOR_S if len(self.urls) > 1 else 0.0
            self.on_error("unreachable")
            raise engine_unavailable(
                f"cannot reach the engine at {mask_url(self.urls[i])}: {exc or type(exc).__name__}"
            ) from exc
        except OSError as exc:
            self.on_error("transport")
            raise ProxyError(502, "engine_error_exception", f"engine request failed: {type(exc).__name__}") from exc
        if resp.status >= 500:
            self.on_error(f"http_{resp.status}")
        return EngineResponse(resp.status, resp.content, resp.headers, (time.perf_counter() - t0) * 1000)

    async def json(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        params: Sequence[tuple[str, str]] = (),
        client_auth: str | None = None,
    ) -> tuple[int, Any, float]:
        """A JSON request; (status, parsed body, ms)."""
        resp = await self.request(method, path, params=params, content=jsonio.dumps(body), client_auth=client_auth)
        try:
            data = resp.json()
        except ValueError:
            data = {"raw": resp.content[:200].decode("utf-8", "replace")}
        return resp.status, data, resp.elapsed_ms
