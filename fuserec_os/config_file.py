"""Write keys of the ``search:`` section into a ranking config YAML file, keeping everything else as written.

What ``fuserec search tune --write`` uses. The file is edited as text: only the lines of the keys being set
are replaced (a key's inline comment is kept; comment lines inside a replaced block go with it), a missing
key is added at the end of the section, a missing section at the end of the file; every other line, comments
included, stays byte for byte. The result is parsed and validated before it replaces the file (atomically),
and must read back as the old document with just those keys changed. When the layout defeats the text edit
(a flow-style ``search: {max_size: 50}``, odd indentation), the whole document is dumped instead, and the
report says that comments were dropped.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fuserec_os.config import parse_ranking_config
from fuserec_os.errors import ConfigError

__all__ = ["WriteReport", "set_search_keys"]

_SECTION = "search"
_KEY_RE = re.compile(r"^(?P<indent>[ ]*)(?P<key>[^\s#:][^:#]*?)\s*:(?P<rest>.*)$")


@dataclass(frozen=True)
class WriteReport:
    path: Path
    keys: tuple[str, ...]  # dotted keys written, e.g. ("search.fields", "search.multi_match_type")
    created: bool  # the file did not exist
    kept_comments: bool  # False: the document was dumped whole (comments and layout dropped)

    def describe(self) -> str:
        what = ", ".join(self.keys)
        if self.created:
            return f"created {self.path} with {what}"
        if self.kept_comments:
            return f"rewrote {what} in {self.path} (every other line kept as it was)"
        return f"rewrote {self.path} whole with new {what} (its layout defeated a line edit: comments were dropped)"


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("\n...").strip()


def _render(key: str, value: Any, indent: str, unit: str, comment: str) -> list[str]:
    if isinstance(value, Mapping):
        out = [f"{indent}{key}:{comment}\n"]
        out += [f"{indent}{unit}{_scalar(k)}: {_scalar(v)}\n" for k, v in value.items()]
        return out
    return [f"{indent}{key}: {_scalar(value)}{comment}\n"]


def _comment(rest: str) -> str:
    """The inline ``# comment`` of a line's remainder (with its leading spaces), or ''."""
    m = re.search(r"(\s+#.*)$", rest.rstrip("\n"))
    return m.group(1) if m else ""


def _is_content(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _edit(text: str, values: Mapping[str, Any]) -> str | None:
    """``text`` with the ``search`` keys set, or None when the layout is not one this line edit understands."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, ln in enumerate(lines) if re.match(rf"^{_SECTION}\s*:", ln)), None)
    if start is None:
        block = [f"{_SECTION}:\n"]
        for key, value in values.items():
            block += _render(key, value, "  ", "  ", "")
        return "".join(lines) + "".join(block)
    rest = lines[start].split(":", 1)[1]
    inline = rest.split("#", 1)[0].strip()
    if inline not in ("", "{}", "null", "~"):
        return None  # a flow mapping: leave it to the dump
    end = next(
        (i for i in range(start + 1, len(lines)) if _is_content(lines[i]) and _indent(lines[i]) == 0), len(lines)
    )
    body = [i for i in range(start + 1, end) if _is_content(lines[i])]
    width = _indent(lines[body[0]]) if body else 2
    if width == 0 or (inline and body):
        return None
    indent = " " * width
    new_lines = list(lines)
    new_lines[start] = f"{_SECTION}:{_comment(rest)}\n"
    inserts: list[str] = []
    replaced: list[tuple[int, int, list[str]]] = []
    for key, value in values.items():
        at = next(
            (
                i
                for i in body
                if _indent(lines[i]) == width
                and (m := _KEY_RE.match(lines[i].rstrip("\n")))
                and m.group("key").strip("'\"") == key
            ),
            None,
        )
        if at is None:
            inserts += _render(key, value, indent, indent, "")
            continue
        stop = at + 1  # the key's block: what follows it indented deeper (comments and blanks inside it too)
        while stop < end and (not _is_content(lines[stop]) or _indent(lines[stop]) > width):
            stop += 1
        while stop > at + 1 and not _is_content(lines[stop - 1]):  # trailing blanks/comments belong to the next key
            stop -= 1
        m = _KEY_RE.match(lines[at].rstrip("\n"))
        assert m is not None
        replaced.append((at, stop, _render(key, value, indent, indent, _comment(m.group("rest")))))
    for at, stop, block in sorted(replaced, reverse=True):
        new_lines[at:stop] = block
    if inserts:
        last = max((i for i in range(start, end) if _is_content(lines[i])), default=start)
        shift = sum(len(block) - (stop - at) for at, stop, block in replaced if at <= last)
        pos = last + 1 + shift
        new_lines[pos:pos] = inserts
    return "".join(new_lines)


def set_search_keys(path: Path, values: Mapping[str, Any]) -> WriteReport:
    """Set ``search.<key>`` to each of ``values`` (a mapping value is written as a block map) in ``path``.

    Creates the file (``version: 1`` and the section) when it does not exist. The new document must be a
    valid ranking config (else ConfigError, and the file is left alone).
    """
    created = not path.exists()
    try:
        old_text = "" if created else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ranking config: {exc.strerror}") from None
    try:
        old_raw = yaml.safe_load(old_text) if old_text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML, not rewritten: {exc}") from None
    if old_raw is None:
        old_raw = {}
    if not isinstance(old_raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, not rewritten")
    expected = dict(old_raw)
    section = dict(expected.get(_SECTION) or {})
    section.update(values)
    expected[_SECTION] = section
    if created:
        expected = {"version": 1, **expected}

    text = _edit(old_text if not created else "version: 1\n", values)
    kept = text is not None and _reads_as(text, expected)
    if text is None or not kept:
        text = yaml.safe_dump(expected, sort_keys=False, default_flow_style=None)
    parse_ranking_config(yaml.safe_load(text), str(path))  # ConfigError before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if not created:
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return WriteReport(path, tuple(f"{_SECTION}.{k}" for k in values), created, kept)


def _reads_as(text: str, expected: Mapping[str, Any]) -> bool:
    try:
        return bool(yaml.safe_load(text) == expected)
    except yaml.YAMLError:
        return False
