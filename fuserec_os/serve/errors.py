"""Errors the proxy answers itself, in OpenSearch's shape so an unchanged client raises its usual exceptions."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class ProxyError(Exception):
    """An error answered by the proxy: HTTP ``status``, OpenSearch error ``type`` and a ``reason``."""

    def __init__(self, status: int, type_: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.type = type_
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.type, self.reason)

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response(
            json.dumps(self.body()).encode(), status_code=self.status, media_type="application/json", headers=headers
        )


def error_body(status: int, type_: str, reason: str) -> dict[str, Any]:
    """``{"error": {"root_cause": [...], "type": ..., "reason": ...}, "status": ...}`` as OpenSearch writes it."""
    cause = {"type": type_, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def bad_request(reason: str) -> ProxyError:
    return ProxyError(400, "illegal_argument_exception", reason)


def forbidden(reason: str) -> ProxyError:
    return ProxyError(403, "security_exception", reason)


def unauthorized(reason: str) -> ProxyError:
    return ProxyError(401, "security_exception", reason)


def too_large(reason: str) -> ProxyError:
    return ProxyError(413, "content_too_long_exception", reason)


def engine_unavailable(reason: str) -> ProxyError:
    return ProxyError(503, "engine_unavailable_exception", reason)


def engine_timeout(reason: str) -> ProxyError:
    return ProxyError(504, "timeout_exception", reason)
