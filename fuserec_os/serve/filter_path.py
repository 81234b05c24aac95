"""OpenSearch's ``filter_path`` response filtering, applied by the proxy to the answers it builds itself.

Why: a personalized search rewrites the engine's answer (the window becomes the page, scores are blended), so the
engine must answer it whole: with ``filter_path`` left on the window query, a filter such as
``hits.hits._source.title`` took the ids away and the window collapsed into one hit, and ``hits.hits._id`` took
the engine scores away from the blend. The proxy strips the parameter from what it sends and filters its own
answer the way the engine filters a response, so the client gets the shape it asked for.

The syntax (OpenSearch's "Common options"): a comma-separated list of dot-separated paths; ``*`` in a name
matches any characters of one field name, a ``**`` segment any number of levels; a path starting with ``-``
excludes. Exclusions apply first, then inclusions. Paths go through arrays (``hits.hits._id`` keeps the id of
every hit); an object or array left with nothing that matched is dropped, and a response with nothing that
matched is ``{}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["apply_filter_path", "filter_path_of"]

_MISSING = object()
Path = tuple[str, ...]


def filter_path_of(params: Sequence[tuple[str, str]]) -> str | None:
    """The request's ``filter_path`` (several parameters joined), or None when it has none."""
    values = [v for k, v in params if k == "filter_path" and v.strip()]
    return ",".join(values) if values else None


@lru_cache(maxsize=256)
def _parse(spec: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    includes: list[Path] = []
    excludes: list[Path] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        target = excludes if item.startswith("-") else includes
        path = tuple(s for s in item.lstrip("-").split(".") if s)
        if path:
            target.append(path)
    return tuple(includes), tuple(excludes)


@lru_cache(maxsize=1024)
def _pattern(segment: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", segment)))


def _match(segment: str, key: str) -> bool:
    return segment == key or ("*" in segment and _pattern(segment).fullmatch(key) is not None)


def _step(paths: Sequence[Path], key: str) -> tuple[list[Path], bool]:
    """The paths still to match below ``key``, and whether one of them ends at ``key``."""
    below: list[Path] = []
    ends = False
    for p in paths:
        if p[0] == "**":
            if len(p) == 1:
                ends = True
                continue
            below.append(p)  # ** takes this level and goes on
            if _match(p[1], key):  # ... or none: the next segment names this key
                if len(p) == 2:
                    ends = True
                else:
                    below.append(p[2:])
        elif _match(p[0], key):
            if len(p) == 1:
                ends = True
            else:
                below.append(p[1:])
    return below, ends


def _include(node: Any, paths: Sequence[Path]) -> Any:
    if isinstance(node, list):
        kept = [x for x in (_include(item, paths) for item in node) if x is not _MISSING]
        return kept if kept else _MISSING
    if not isinstance(node, dict):
        return _MISSING  # a value where a path wanted more levels
    out: dict[str, Any] = {}
    for key, value in node.items():
        below, ends = _step(paths, key)
        if ends:
            out[key] = value
        elif below:
            kept = _include(value, below)
            if kept is not _MISSING:
                out[key] = kept
    return out if out else _MISSING


def _exclude(node: Any, paths: Sequence[Path]) -> Any:
    if isinstance(node, list):
        return [_exclude(item, paths) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        below, ends = _step(paths, key)
        if ends:
            continue
        out[key] = _exclude(value, below) if below else value
    return out


def apply_filter_path(data: Any, spec: str | None) -> Any:
    """``data`` filtered by ``spec`` as the engine filters a response (module docstring); ``data`` unchanged when
    ``spec`` is None or names no path."""
    if spec is None:
        return data
    includes, excludes = _parse(spec)
    out = _exclude(data, excludes) if excludes else data
    if includes:
        out = _include(out, includes)
        if out is _MISSING:
            return {}
    return out
