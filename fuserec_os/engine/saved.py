"""The embedded engine's saved data: written by ``engine stop``, checked before ``engine start`` loads it.

osmem keeps everything in memory; the only way back after a restart is its ``-seed`` folder: per index a
``<name>.index.json`` (settings, mappings, aliases) and a ``<name>.ndjson`` (a bulk body). One damaged file
there makes osmem exit at once and load nothing, so every pair is checked first (the index file parses, every
bulk line parses, actions and documents pair up, the file ends with a newline, the document count matches
the save's manifest). A damaged pair is moved aside to ``<state_dir>/engine-data-quarantine/<time>/``
(outside ``engine-data/``, which every save replaces) and named; the other indices load.

``manifest.json`` (osmem ignores it) records when the save was made and how many documents each index
holds: a file cut exactly at a line end still parses, but its count does not match.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

from fuserec_os.engine.client import engine_errors

DATA_DIR = "engine-data"
QUARANTINE_DIR = "engine-data-quarantine"
MANIFEST = "manifest.json"
INDEX_SUFFIX = ".index.json"
DOCS_SUFFIX = ".ndjson"
_ACTIONS_WITH_DOC = {"index", "create", "update"}
_ACTIONS = _ACTIONS_WITH_DOC | {"delete"}
# Settings that the engine reports but refuses (or must not get) at index creation.
_READ_ONLY_SETTINGS = {
    "uuid",
    "creation_date",
    "provided_name",
    "version",
    "replication",
    "resize",
    "routing",
}


def utc_now() -> str:
    """Now as ISO 8601 UTC to the second, as every time the engine commands print: ``2026-03-01T12:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def data_path(state_dir: Path) -> Path:
    return state_dir / DATA_DIR


def has_saved_data(state_dir: Path) -> bool:
    """True when ``engine-data/`` holds at least one saved index (what a temporary engine would not see)."""
    data = data_path(state_dir)
    return data.is_dir() and any(p.name.endswith((INDEX_SUFFIX, DOCS_SUFFIX)) for p in data.iterdir())


def saved_bytes(state_dir: Path) -> int:
    """Size of what ``engine start`` would load (what its start-up time grows with)."""
    data = data_path(state_dir)
    if not data.is_dir():
        return 0
    return sum(p.stat().st_size for p in data.iterdir() if p.is_file())


def last_save_time(state_dir: Path) -> str | None:
    """When the saved data was written: the manifest's time, else (older saves) the newest file's mtime."""
    data = data_path(state_dir)
    if not has_saved_data(state_dir):
        return None
    manifest = read_manifest(data)
    if isinstance(manifest.get("saved_at"), str):
        return str(manifest["saved_at"])
    newest = max(p.stat().st_mtime for p in data.iterdir() if p.is_file())
    return datetime.fromtimestamp(newest, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(data: Path) -> dict[str, Any]:
    try:
        raw = json.loads((data / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


@dataclass(frozen=True)
class SaveReport:
    indices: dict[str, int]
    path: Path
    saved_at: str

    @property
    def documents(self) -> int:
        return sum(self.indices.values())


def save_indices(client: OpenSearch, target: Path) -> SaveReport:
    """Write every index (settings, mappings, aliases, docs) in osmem's seed format, replacing ``target``.

    Written to a sibling temp folder first and swapped in at the end, so a failed save never loses the
    previous one. ``saved_at`` is when the save began: anything written after it may be missing from it.
    """
    saved_at = utc_now()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts: dict[str, int] = {}
    with engine_errors("saving the embedded engine's indices"):
        described = client.indices.get(index="*")
        for name in sorted(described):
            if name.startswith("."):
                continue
            body = described[name]
            settings = {
                k: v for k, v in body.get("settings", {}).get("index", {}).items() if k not in _READ_ONLY_SETTINGS
            }
            spec = {
                "settings": {"index": settings},
                "mappings": body.get("mappings", {}),
                "aliases": body.get("aliases", {}),
            }
            (tmp / f"{name}{INDEX_SUFFIX}").write_text(json.dumps(spec, indent=2) + "\n")
            n = 0
            with open(tmp / f"{name}{DOCS_SUFFIX}", "w") as out:
                for hit in helpers.scan(client, index=name, query={"query": {"match_all": {}}}, size=1000):
                    out.write(json.dumps({"index": {"_index": name, "_id": hit["_id"]}}) + "\n")
                    out.write(json.dumps(hit["_source"], ensure_ascii=False) + "\n")
                    n += 1
            counts[name] = n
    (tmp / MANIFEST).write_text(json.dumps({"saved_at": saved_at, "indices": counts}, indent=2) + "\n")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return SaveReport(indices=counts, path=target, saved_at=saved_at)


@dataclass(frozen=True)
class SeedProblem:
    """A saved index osmem could not load: its name, its files (in the data folder) and why."""

    index: str
    files: list[str]
    reason: str


@dataclass(frozen=True)
class Quarantined:
    """A saved index set aside: where its files went and why."""

    index: str
    files: list[str]
    reason: str
    path: Path

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "files": self.files, "reason": self.reason, "path": str(self.path)}

    def message(self) -> str:
        return (
            f"saved index '{self.index}' is damaged ({self.reason}): {' and '.join(self.files)} moved to "
            f"{self.path}/ and not loaded; the other saved indices load"
        )


def _index_name(file_name: str) -> str | None:
    for suffix in (INDEX_SUFFIX, DOCS_SUFFIX):
        if file_name.endswith(suffix):
            return file_name[: -len(suffix)]
    return None


def check_saved_data(data: Path) -> list[SeedProblem]:
    """Every saved index in ``data`` that osmem would fail on (and so fail the whole start), with the reason."""
    if not data.is_dir():
        return []
    names = sorted({n for p in data.iterdir() if p.is_file() and (n := _index_name(p.name))})
    expected = read_manifest(data).get("indices")
    counts: dict[str, Any] = expected if isinstance(expected, dict) else {}
    problems = []
    for name in names:
        files = [f for f in (f"{name}{INDEX_SUFFIX}", f"{name}{DOCS_SUFFIX}") if (data / f).is_file()]
        reason = _check_index_file(data / f"{name}{INDEX_SUFFIX}")
        if reason is None:
            want = counts.get(name)
            reason = _check_docs_file(data / f"{name}{DOCS_SUFFIX}", want if isinstance(want, int) else None)
        if reason is not None:
            problems.append(SeedProblem(index=name, files=files, reason=reason))
    return problems


def _check_index_file(path: Path) -> str | None:
    if not path.is_file():
        return None  # a bulk file alone loads with dynamic mappings
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"{path.name} is not valid JSON ({exc}): the file is cut or damaged"
    if not isinstance(spec, dict):
        return f"{path.name} is not a JSON object (expected settings, mappings and aliases)"
    return None


def _check_docs_file(path: Path, expected: int | None) -> str | None:
    if not path.is_file():
        if expected:
            return f"{path.name} is missing although the save's manifest lists {expected} documents"
        return None
    docs = 0
    pending: int | None = None  # the line of an action still waiting for its document
    last = b""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            last = raw
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                return (
                    f"{path.name}: line {lineno} is not valid JSON ({exc.msg} at column {exc.colno}): "
                    "the file is cut or damaged"
                )
            except ValueError as exc:  # bytes that are not UTF-8
                return f"{path.name}: line {lineno} is not valid JSON ({exc}): the file is cut or damaged"
            if pending is not None:
                if not isinstance(obj, dict):
                    return f"{path.name}: line {lineno}, the document of the action on line {pending}, is not an object"
                pending, docs = None, docs + 1
                continue
            action = next(iter(obj)) if isinstance(obj, dict) and len(obj) == 1 else None
            if action not in _ACTIONS or not isinstance(obj[action], dict):
                return f"{path.name}: line {lineno} is not a bulk action (index, create, update or delete)"
            if action in _ACTIONS_WITH_DOC:
                pending = lineno
    if pending is not None:
        return f"{path.name}: the action on line {pending} has no document after it: the file is cut"
    if last and not last.endswith(b"\n"):
        return f"{path.name}: the last line has no newline at its end: the file is cut"
    if expected is not None and docs != expected:
        return f"{path.name} holds {docs} documents but the save's manifest says {expected}: the file is cut or changed"
    return None


def set_aside(state_dir: Path, problems: list[SeedProblem]) -> list[Quarantined]:
    """Move each problem's files out of ``engine-data/`` into one new ``engine-data-quarantine/<time>/``."""
    if not problems:
        return []
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = state_dir / QUARANTINE_DIR
    dest = root / stamp
    n = 1
    while dest.exists():
        n += 1
        dest = root / f"{stamp}-{n}"
    dest.mkdir(parents=True)
    data = data_path(state_dir)
    moved = []
    for problem in problems:
        for name in problem.files:
            (data / name).rename(dest / name)
        moved.append(Quarantined(index=problem.index, files=problem.files, reason=problem.reason, path=dest))
    return moved


def set_aside_damaged(state_dir: Path) -> list[Quarantined]:
    """Check the saved data and move every damaged index aside (see the module docstring)."""
    return set_aside(state_dir, check_saved_data(data_path(state_dir)))


def problem_named_in(log_tail: str, data: Path, reason: str) -> SeedProblem | None:
    """The saved index an osmem start-up error names (``seed <file>: <error>``), if it is one of ours."""
    import re

    for match in re.finditer(r"seed (\S+?): (.*)", log_tail):
        name = _index_name(Path(match.group(1)).name)
        if name is None:
            continue
        files = [f for f in (f"{name}{INDEX_SUFFIX}", f"{name}{DOCS_SUFFIX}") if (data / f).is_file()]
        if files:
            return SeedProblem(index=name, files=files, reason=f"{reason}: {match.group(2).strip()[:300]}")
    return None
