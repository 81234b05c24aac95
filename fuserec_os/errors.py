"""The errors fuserec raises, one class per thing a user can fix.

Every message says what was wrong and what would be valid, so the CLI can print it as is
(exit code ``exit_code``) instead of a traceback. Engine errors are mapped onto these classes
in :mod:`fuserec_os.engine.client`, never re-raised raw.
"""

from __future__ import annotations


class FuserecError(Exception):
    """Base class: a problem the user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(FuserecError):
    """A setting (env var, .env entry or YAML key) is missing or invalid."""

    exit_code = 2


class EngineUnavailableError(FuserecError):
    """The OpenSearch cluster (or the embedded engine) cannot be reached or refused us."""

    exit_code = 3


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
    """An input file cannot be read: missing, unknown format, bad column map."""

    exit_code = 8
