"""Build an OpenSearch client from settings, and turn engine failures into our own errors.

Why: a raw ``ConnectionError(<urllib3...>)`` traceback tells a shop engineer nothing. Every call site that
talks to the engine goes through :func:`engine_errors` (or :func:`map_engine_error`) so the user sees one line
naming the URL and the cause: connection refused, TLS, 401/403, timeout, or the engine's own reason (kept
short: an engine reason can quote a whole document).

Where to look when nothing answers depends on which engine it was: "is OpenSearch running there? (docker
compose up -d ...)" helps only for a configured cluster, so it is added by whoever knows that
(:func:`with_unreachable_hint`, from :func:`fuserec_os.engine.open_engine` and the CLI), once, at the end.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as osx

from fuserec_os.errors import EngineError, EngineUnavailableError, FuserecError, extended
from fuserec_os.settings import Settings, mask_url

#: What to check when an engine of this kind does not answer (see :func:`with_unreachable_hint`).
UNREACHABLE_HINTS = {
    "cluster": "Is OpenSearch running there? (docker compose up -d, or unset FUSEREC_OPENSEARCH_URL for the "
    "embedded engine)",
    "embedded": "Is the background engine still running? ('fuserec engine status'; 'fuserec engine start' "
    "starts it again)",
}

#: Longest engine reason quoted in an error or a reject (the middle of a longer one is elided).
MAX_REASON = 300


def make_client(settings: Settings, urls: Sequence[str] | None = None) -> OpenSearch:
    """An opensearch-py client for ``urls`` (default: the configured cluster) with auth, TLS and retries."""
    hosts = list(urls if urls is not None else settings.opensearch_urls)
    kwargs: dict[str, Any] = {
        "hosts": hosts,
        "timeout": settings.timeout,
        "max_retries": settings.retries,
        "retry_on_timeout": settings.retries > 0,
        "http_compress": False,
        # the rerank pipeline reads the profile and statistics beside the engine query from a thread pool:
        # keep a connection per concurrent request instead of urllib3's default single one
        "pool_maxsize": 10,
    }
    if settings.user:
        kwargs["http_auth"] = (settings.user, settings.password or "")
    if any(h.startswith("https://") for h in hosts):
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = settings.verify_certs
        kwargs["ssl_show_warn"] = settings.verify_certs
        if settings.ca_certs is not None:
            kwargs["ca_certs"] = str(settings.ca_certs)
    return OpenSearch(**kwargs)


def describe_urls(urls: Sequence[str]) -> str:
    """How error messages name the cluster: the URL, or the list of them, passwords masked."""
    return ", ".join(mask_url(u) for u in urls)


def check_reachable(client: OpenSearch, where: str) -> dict[str, Any]:
    """``GET /``: the cluster's info, or EngineUnavailableError naming ``where`` and the cause."""
    with engine_errors(f"connecting to {where}", where=where):
        info: dict[str, Any] = client.info()
    return info


def map_engine_error(exc: Exception, action: str, where: str | None = None) -> FuserecError:
    """Translate an opensearch-py exception into a FuserecError whose message says what to do."""
    at = f" at {where}" if where else ""
    if isinstance(exc, FuserecError):
        return exc
    if isinstance(exc, osx.SSLError) or _is_ssl(exc):
        return EngineUnavailableError(
            f"TLS handshake failed{at} while {action}: {_root(exc)}. Check the URL scheme (http vs https), "
            "FUSEREC_OPENSEARCH_CA_CERTS, or set FUSEREC_OPENSEARCH_VERIFY_CERTS=false for a self-signed dev cluster."
        )
    if isinstance(exc, osx.ConnectionTimeout):
        return EngineUnavailableError(
            f"the engine{at} did not answer in time while {action}. Raise FUSEREC_OPENSEARCH_TIMEOUT or check the "
            "cluster's health."
        )
    if isinstance(exc, osx.ConnectionError):
        cause = _root(exc)
        if "refused" in cause.lower():
            cause = "connection refused"
        unreachable = EngineUnavailableError(f"cannot reach OpenSearch{at} while {action}: {cause}.")
        unreachable.unreachable = True
        return unreachable
    if isinstance(exc, osx.AuthenticationException):
        return EngineUnavailableError(
            f"OpenSearch{at} answered 401 Unauthorized while {action}: set FUSEREC_OPENSEARCH_USER and "
            "FUSEREC_OPENSEARCH_PASSWORD to valid credentials."
        )
    if isinstance(exc, osx.AuthorizationException):
        return EngineUnavailableError(
            f"OpenSearch{at} answered 403 Forbidden while {action}: the user lacks the permission "
            f"({error_reason(exc)}). Grant it in the security plugin's roles."
        )
    if isinstance(exc, osx.TransportError):
        return EngineError(f"OpenSearch refused {action}: {exc.status_code} {error_reason(exc)}")
    return EngineError(f"unexpected error while {action}: {type(exc).__name__}: {exc}")


def with_unreachable_hint(exc: FuserecError, kind: str) -> FuserecError:
    """``exc`` with where to look appended, when nothing answered and the engine ``kind`` has a hint (a
    configured ``cluster``: is it running?; the ``embedded`` background engine: is it still running?)."""
    hint = UNREACHABLE_HINTS.get(kind)
    if not isinstance(exc, EngineUnavailableError) or not exc.unreachable or hint is None or hint in str(exc):
        return exc
    return extended(exc, hint)


def shorten(text: str, limit: int = MAX_REASON) -> str:
    """``text`` if it is at most ``limit`` characters, else its start and end around an ellipsis."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return f"{text[: limit - tail - 5]} [...] {text[-tail:]}"


@contextmanager
def engine_errors(action: str, where: str | None = None) -> Iterator[None]:
    """Run a block of engine calls; re-raise any opensearch-py error as our own (see map_engine_error)."""
    try:
        yield
    except osx.OpenSearchException as exc:
        raise map_engine_error(exc, action, where) from exc


def error_reason(exc: osx.TransportError) -> str:
    """The engine's ``type: reason`` for an error response (what a user needs to fix it)."""
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        root = err.get("root_cause") or [{}]
        reason = err.get("reason") or (root[0].get("reason") if root else None)
        return shorten(f"{err.get('type', 'error')}: {reason}")
    return shorten(str(exc.error))


def _root(exc: BaseException) -> str:
    """The innermost cause's message: urllib3 wraps the socket error several levels deep."""
    seen = exc
    for candidate in _chain(exc):
        seen = candidate
    text = str(seen) or type(seen).__name__
    return text.split(": ", 1)[-1] if "NewConnectionError" in text else text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    cur: BaseException | None = exc
    depth = 0
    while cur is not None and depth < 10:
        yield cur
        info = getattr(cur, "info", None)
        cur = info if isinstance(info, BaseException) else (cur.__cause__ or cur.__context__)
        depth += 1


def _is_ssl(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) or "SSL" in type(e).__name__ for e in _chain(exc))
