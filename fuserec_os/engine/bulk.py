"""One bulk-write policy for every store: opensearch-py's streaming_bulk with 429 retries and our errors.

Why one place: catalog ingest, events, profiles, product vectors, query statistics and the registry all write
in bulk, and they must agree on what a refusal is. A 429 (the cluster is overloaded) is retried with
exponential back-off, per document and for whole requests; a document the engine refuses is reported per
document; an engine that cannot be reached raises EngineUnavailableError instead of turning every document
into a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opensearchpy import OpenSearch, helpers

from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineError

MAX_RETRIES = 5
INITIAL_BACKOFF = 1.0


def stream_bulk(
    client: OpenSearch,
    actions: Iterable[Mapping[str, Any]],
    *,
    what: str,
    chunk_size: int = 1000,
    max_retries: int = MAX_RETRIES,
    initial_backoff: float = INITIAL_BACKOFF,
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """Yield ``(ok, result)`` per document (``result`` is the bulk item's inner dict: _id, status, error)."""
    with engine_errors(what):
        for ok, item in helpers.streaming_bulk(
            client,
            actions,
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,  # type: ignore[arg-type]  # a float works; the stub says int
            raise_on_error=False,
            raise_on_exception=True,
            request_timeout=120,
        ):
            yield ok, next(iter(item.values()))


def refusal_reason(result: Mapping[str, Any]) -> str:
    """``type: reason`` of a refused bulk item (what a user needs to fix the document)."""
    err = result.get("error")
    if isinstance(err, Mapping):
        return f"{err.get('type')}: {err.get('reason')}"
    return str(err)


def bulk_or_raise(
    client: OpenSearch, actions: Iterable[Mapping[str, Any]], *, target: str, what: str, chunk_size: int = 500
) -> int:
    """Write every action; if the engine refuses any, raise EngineError with the count and the first reason."""
    written = 0
    failures: list[dict[str, Any]] = []
    for ok, result in stream_bulk(client, actions, what=f"writing {what} into {target}", chunk_size=chunk_size):
        if ok:
            written += 1
        else:
            failures.append(result)
    if failures:
        first = failures[0]
        raise EngineError(
            f"the engine refused {len(failures)} {what} document(s) in {target}; first: id {first.get('_id')} "
            f"({first.get('status')}): {refusal_reason(first)}"
        )
    return written
