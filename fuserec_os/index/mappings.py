"""Versioned mapping files (``mappings/<name>.json``): load and check them before the engine sees them.

A mapping file holds ``version`` (a whole number, bumped on every change), ``settings`` and ``mappings``.
Why check here: a JSON typo or a missing key should be reported with the file name and line, not as an
engine 400 halfway through a migration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuserec_os.errors import MappingError
from fuserec_os.settings import Settings

_ALLOWED_KEYS = {"version", "description", "settings", "mappings"}


@dataclass(frozen=True)
class MappingSpec:
    """A parsed mapping file."""

    name: str
    version: int
    settings: dict[str, Any]
    mappings: dict[str, Any]
    path: Path

    def create_body(self) -> dict[str, Any]:
        """The ``PUT /<index>`` body, with the version recorded in the mapping's ``_meta``."""
        mappings = dict(self.mappings)
        meta = dict(mappings.get("_meta", {}))
        meta.update({"mapping_name": self.name, "mapping_version": self.version})
        mappings["_meta"] = meta
        return {"settings": self.settings, "mappings": mappings}

    @property
    def fields(self) -> set[str]:
        """Top-level field names of the mapping (what documents may contain)."""
        return set(self.mappings.get("properties", {}))


def mapping_path(mappings_dir: Path, name: str) -> Path:
    return mappings_dir / f"{name}.json"


def load_mapping(path: Path, name: str | None = None) -> MappingSpec:
    """Read and validate a mapping file; MappingError names the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(
            f"{path}: mapping file not found. Expected mappings/<name>.json (set FUSEREC_MAPPINGS_DIR to "
            "another folder)."
        ) from None
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping file: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MappingError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise MappingError(f"{path}: expected a JSON object with version, settings and mappings.")
    unknown = sorted(set(raw) - _ALLOWED_KEYS)
    if unknown:
        raise MappingError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_ALLOWED_KEYS))})."
        )
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MappingError(f"{path}: 'version' must be a whole number >= 1 (got {version!r}).")
    settings = raw.get("settings", {})
    mappings = raw.get("mappings")
    if not isinstance(settings, dict):
        raise MappingError(f"{path}: 'settings' must be a JSON object.")
    if not isinstance(mappings, dict) or not isinstance(mappings.get("properties"), dict):
        raise MappingError(f"{path}: 'mappings' must be a JSON object with a 'properties' object.")
    return MappingSpec(name=name or path.stem, version=version, settings=settings, mappings=mappings, path=path)


def load_named_mapping(name: str, mappings_dir: Path | None = None) -> MappingSpec:
    """``mappings/<name>.json`` from ``mappings_dir`` (default: the settings' resolution of the folder).

    For the stores that create their own index on first use (profiles, vectors, query stats, models), where
    no command state is at hand to say which folder holds the mappings.
    """
    folder = mappings_dir if mappings_dir is not None else Settings().resolved_mappings_dir()
    return load_mapping(mapping_path(folder, name), name)
