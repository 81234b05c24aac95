"""The errors fuserec raises, one class per thing a user can fix.

Every message says what was wrong and what would be valid, so the CLI can print it as is
(exit code ``exit_code``) instead of a traceback. Engine errors are mapped onto these classes
in :mod:`fuserec_os.engine.client`, never re-raised raw.
"""

from __future__ import annotations

from typing import Any


class FuserecError(Exception):
    """Base class: a problem the user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(FuserecError):
    """A setting (env var, .env entry or YAML key) is missing or invalid."""

    exit_code = 2


class EngineUnavailableError(FuserecError):
    """The OpenSearch cluster (or the embedded engine) cannot be reached or refused us.

    ``unreachable`` is True when nothing answered at all (connection refused or reset): only the caller knows
    which engine that was, so the CLI adds where to look (a configured cluster: is it running?) once, at the end.
    """

    exit_code = 3
    unreachable = False


class EngineError(FuserecError):
    """The engine answered with an error we did not expect (its type and reason are in the message)."""

    exit_code = 4


class MappingError(FuserecError):
    """A mapping file is unreadable, not valid JSON, or was rejected by the engine."""

    exit_code = 5


class IndexStateError(FuserecError):
    """The alias or concrete indices are not in the state an operation needs (e.g. no alias yet)."""

    exit_code = 6


class QueryError(FuserecError):
    """A search request is invalid (the 4xx of search): bad parameter, too long, paging too deep."""

    exit_code = 7


class InputFileError(FuserecError):
    """An input file cannot be read: missing, unknown format, bad column map, no rows, or it stops parsing
    part way. In the last case ``report`` is what the ingest did before the failure (its ``as_dict()``), and
    the message says it too."""

    exit_code = 8
    report: dict[str, Any] | None = None


def extended(exc: FuserecError, *notes: str) -> FuserecError:
    """A copy of ``exc`` (same class and attributes) with ``notes`` after its message: for adding what happened
    after it (a cleanup that failed too), what had been done, or where to look, while the original failure
    stays first. One note continues the message's line; several go on lines of their own, indented."""
    base = str(exc).rstrip()
    if base and base[-1] not in ".!?":
        base += "."
    one_line = len(notes) == 1 and "\n" not in base
    message = f"{base} {notes[0]}" if one_line else "\n  ".join([base, *notes])
    copy = type(exc).__new__(type(exc))
    copy.__dict__.update(exc.__dict__)
    copy.args = (message,)
    return copy
