"""One bulk-write policy for every store: opensearch-py's streaming_bulk with 429 retries and our errors.

Why one place: catalog ingest, events, profiles, product vectors, query statistics and the registry all write
in bulk, and they must agree on what a refusal is. A 429 (the cluster is overloaded) is retried with
exponential back-off, per document and for whole requests; a document the engine refuses is reported per
document; an engine that cannot be reached raises EngineUnavailableError instead of turning every document
into a refusal.

A request the engine refuses as a whole (400: one document fails the request's validation, e.g. an id over
512 bytes; 413: the request is too large) would otherwise fail every document of the chunk with one long
error: its documents are sent again one at a time, so only the bad ones are refused, each with its reason.
When the actions themselves fail part way (an input file that stops parsing), the actions already taken are
written first, so everything before the failure point is done and can be reported exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from opensearchpy import OpenSearch, helpers
from opensearchpy import exceptions as osx

from fuserec_os.engine.client import engine_errors, shorten
from fuserec_os.errors import EngineError

T = TypeVar("T")

MAX_RETRIES = 5
INITIAL_BACKOFF = 1.0

#: Statuses of a whole bulk request that say "something in this request", not "the engine": split and retry.
SPLIT_STATUSES = frozenset({400, 413})


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
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    with engine_errors(what):
        for chunk, failure in _chunks(actions, chunk_size):
            if chunk:
                yield from send_chunk(client, chunk, max_retries, initial_backoff)
            if failure is not None:
                raise failure


def _chunks(
    actions: Iterable[Mapping[str, Any]], size: int
) -> Iterator[tuple[list[Mapping[str, Any]], BaseException | None]]:
    """Chunks of ``size`` actions; when the actions fail part way, the partial chunk comes with the failure."""
    source = iter(actions)
    while True:
        chunk: list[Mapping[str, Any]] = []
        try:
            for action in source:
                chunk.append(action)
                if len(chunk) >= size:
                    break
        except Exception as exc:  # e.g. an input file that stops parsing: write what came before it first
            yield chunk, exc
            return
        if not chunk:
            return
        yield chunk, None
        if len(chunk) < size:
            return


def send_chunk(
    client: OpenSearch,
    chunk: list[Mapping[str, Any]],
    max_retries: int = MAX_RETRIES,
    initial_backoff: float = INITIAL_BACKOFF,
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """One chunk in one request (429s retried by the helper); refused as a whole, one request per document."""
    # Documents already answered, by id (None: without an id of their own), when a retry after a 429 is what
    # the engine refused: those are not sent again.
    ids = {action.get("_id") for action in chunk}
    answered: Counter[Any] = Counter()
    try:
        for ok, item in _bulk(client, chunk, max_retries, initial_backoff):
            answered[item.get("_id") if item.get("_id") in ids else None] += 1
            yield ok, item
        return
    except osx.TransportError as exc:
        if exc.status_code not in SPLIT_STATUSES:
            raise
        if len(chunk) == 1:
            yield False, _refusal(chunk[0], exc)
            return
    for action in chunk:
        key = action.get("_id")
        if answered[key]:
            answered[key] -= 1
            continue
        try:
            yield from _bulk(client, [action], max_retries, initial_backoff)
        except osx.TransportError as exc:
            if exc.status_code not in SPLIT_STATUSES:
                raise
            yield False, _refusal(action, exc)


def _bulk(
    client: OpenSearch, actions: list[Mapping[str, Any]], max_retries: int, initial_backoff: float
) -> Iterator[tuple[bool, dict[str, Any]]]:
    for ok, item in helpers.streaming_bulk(
        client,
        actions,
        chunk_size=len(actions),
        max_retries=max_retries,
        initial_backoff=initial_backoff,  # type: ignore[arg-type]  # a float works; the stub says int
        raise_on_error=False,
        raise_on_exception=True,
        request_timeout=120,
    ):
        yield ok, next(iter(item.values()))


def _refusal(action: Mapping[str, Any], exc: osx.TransportError) -> dict[str, Any]:
    """A bulk item result for a document whose own request the engine refused as a whole."""
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error")
    if isinstance(err, Mapping):
        root = err.get("root_cause") or [{}]
        reason = err.get("reason") or (root[0].get("reason") if root else None)
        error = {"type": err.get("type", "error"), "reason": reason}
    elif exc.status_code == 413:
        error = {"type": "request_entity_too_large", "reason": "the document alone is larger than the engine accepts"}
    else:
        error = {"type": str(exc.error), "reason": shorten(str(exc.info))}
    return {"_index": action.get("_index"), "_id": action.get("_id"), "status": exc.status_code, "error": error}


def refusal_reason(result: Mapping[str, Any]) -> str:
    """``type: reason`` of a refused bulk item (what a user needs to fix the document), kept to one short line."""
    err = result.get("error")
    if isinstance(err, Mapping):
        return shorten(f"{err.get('type')}: {err.get('reason')}")
    return shorten(str(err))


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


def byte_chunks(
    actions: Iterable[Mapping[str, Any]], max_docs: int, max_bytes: int
) -> Iterator[list[Mapping[str, Any]]]:
    """Chunks of at most ``max_docs`` actions and about ``max_bytes`` of pre-serialised ``_source`` (a chunk
    holds at least one action, however large)."""
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for action in actions:
        source = action.get("_source")
        n = len(source) if isinstance(source, (str, bytes)) else 1024
        if chunk and (len(chunk) >= max_docs or size + n > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(action)
        size += n
    if chunk:
        yield chunk


def send_pipelined(
    chunks: Iterable[list[Mapping[str, Any]]],
    send: Callable[[list[Mapping[str, Any]]], T],
    collect: Callable[[T], None],
    threads: int,
) -> None:
    """Send ``chunks`` with up to ``threads`` requests in flight while the caller's generator encodes the next;
    results are collected in chunk order. At most ``threads`` chunks wait at a time, so memory stays bounded."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: list[Future[T]] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fuserec-bulk") as pool:
        try:
            for chunk in chunks:
                if len(pending) >= threads:
                    collect(pending.pop(0).result())
                pending.append(pool.submit(send, chunk))
            while pending:
                collect(pending.pop(0).result())
        finally:
            for future in pending:
                future.cancel()


def bulk_parallel_or_raise(
    client: OpenSearch,
    actions: Iterable[Mapping[str, Any]],
    *,
    target: str,
    what: str,
    chunk_size: int = 2000,
    max_chunk_bytes: int = 4 * 2**20,
    threads: int = 2,
) -> int:
    """:func:`bulk_or_raise` for large writes: chunks cut by count and by bytes, ``threads`` requests in flight
    (each with the same 429 retries and per-document splitting) while the caller's generator encodes the next.

    ``_source`` may be a pre-serialised JSON string (sent as is). At most ``threads`` chunks wait at a time, so
    memory stays bounded. A slow engine is waited for (each request has the bulk timeout), never given up on.
    """
    if chunk_size < 1 or max_chunk_bytes < 1 or threads < 1:
        raise ValueError("chunk_size, max_chunk_bytes and threads must be >= 1")
    label = f"writing {what} into {target}"

    def send(chunk: list[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        ok_count, failed = 0, []
        with engine_errors(label):
            for ok, result in send_chunk(client, chunk, MAX_RETRIES, INITIAL_BACKOFF):
                if ok:
                    ok_count += 1
                else:
                    failed.append(result)
        return ok_count, failed

    written = 0
    failures: list[dict[str, Any]] = []

    def collect(result: tuple[int, list[dict[str, Any]]]) -> None:
        nonlocal written
        ok_count, failed = result
        written += ok_count
        failures.extend(failed)

    send_pipelined(byte_chunks(actions, chunk_size, max_chunk_bytes), send, collect, threads)
    if failures:
        first = failures[0]
        raise EngineError(
            f"the engine refused {len(failures)} {what} document(s) in {target}; first: id {first.get('_id')} "
            f"({first.get('status')}): {refusal_reason(first)}"
        )
    return written
