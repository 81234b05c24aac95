"""What the proxy forwards and what it refuses: reads pass, writes and admin get 403 unless allowed.

An explicit list of read endpoints, not a list of dangerous ones: an endpoint OpenSearch adds later is refused
until someone decides it is harmless (``FUSEREC_PROXY_ALLOW`` opens any endpoint, as ``METHOD /path-glob`` or
``/path-glob`` entries).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Route = Literal["search", "msearch", "read", "allowed", "denied"]

_READ_ONLY = ("GET", "HEAD")
_READ_BODY = ("GET", "HEAD", "POST")


@dataclass(frozen=True)
class Decision:
    route: Route
    index: str | None = None
    """The target (first path segment) for ``search``/``msearch``; None for ``/_search``."""
    reason: str = ""


def _read(method: str, parts: Sequence[str]) -> bool:
    """Read-only endpoints forwarded as they are (the cluster still checks the client's credentials)."""
    n = len(parts)
    if n == 0:
        return method in _READ_ONLY
    first, last = parts[0], parts[-1]
    if first == "_cluster" and n >= 2 and parts[1] == "health":
        return method in _READ_ONLY
    if last in ("_count", "_mget", "_field_caps") and n <= 2:
        return method in _READ_BODY
    if "_mapping" in parts and (parts.index("_mapping") <= 1):
        return method in _READ_ONLY
    if n == 3 and parts[1] in ("_doc", "_source") and not first.startswith("_"):
        return method in _READ_ONLY
    if n == 1 and not first.startswith("_"):
        return method == "HEAD"  # indices.exists
    if first == "_search" and n >= 2 and parts[1] in ("scroll", "point_in_time"):
        return method in ("GET", "POST", "DELETE")  # continuing or clearing a scroll / PIT the client opened
    if n >= 3 and parts[1] == "_search" and parts[2] == "point_in_time":
        return method == "POST"
    return False


def classify(method: str, path: str, allow: Sequence[str] = ()) -> Decision:
    """Where a request goes: personalizable search, msearch, a pass-through read, an allowed write, or 403."""
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    n = len(parts)
    if method in ("GET", "POST"):
        if n == 1 and parts[0] == "_search":
            return Decision("search", None)
        if n == 2 and parts[1] == "_search" and not parts[0].startswith("_"):
            return Decision("search", parts[0])
        if n == 1 and parts[0] == "_msearch":
            return Decision("msearch", None)
        if n == 2 and parts[1] == "_msearch" and not parts[0].startswith("_"):
            return Decision("msearch", parts[0])
    if _read(method, parts):
        return Decision("read")
    if is_allowed(method, "/" + "/".join(parts), allow):
        return Decision("allowed")
    return Decision(
        "denied",
        reason=f"fuserec proxy: {method} /{'/'.join(parts)} is a write or admin endpoint and is refused "
        "(read endpoints and searches pass; FUSEREC_PROXY_ALLOW opens others)",
    )


def is_allowed(method: str, path: str, allow: Sequence[str]) -> bool:
    for entry in allow:
        want_method, _, pattern = entry.strip().rpartition(" ")
        if want_method and want_method.strip().upper() not in ("*", method):
            continue
        if fnmatch.fnmatchcase(path, pattern.strip()):
            return True
    return False
