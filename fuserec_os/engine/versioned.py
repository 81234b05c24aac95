"""Read-modify-write of documents by id without lost updates: optimistic concurrency (``if_seq_no``).

Why: a live update reads a user's profile (or a query's statistics, a product's signals), adds new events and
writes the document back. Two processes (two proxy replicas, each with its own lock) doing that for the same
document at the same instant would each write their own sum, and one update would be lost. So a document is
read with its concurrency token (``_seq_no`` / ``_primary_term``, which ``_mget`` returns with every document)
and written back only if it is still that version (``if_seq_no`` / ``if_primary_term``); a document that did not
exist is written with ``op_type: create``, so a concurrent creator conflicts too. The engine answers 409 for a
document someone else changed meanwhile: only those are read again, the same change is applied to what is
stored now, and written again, a bounded number of times (:data:`MAX_ATTEMPTS`), then
:class:`ConcurrentUpdateError` names the store and how many documents kept conflicting.

The change must be a function of the stored document and the caller's fixed input (the events), so applying
it again to a newer document is the right result: both updates end up in the document, as if run one after
the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch

from fuserec_os.engine.bulk import byte_chunks, refusal_reason, send_chunk, send_pipelined
from fuserec_os.engine.client import engine_errors
from fuserec_os.engine.reads import mget_found
from fuserec_os.errors import EngineError

__all__ = [
    "MAX_ATTEMPTS",
    "ConcurrentUpdateError",
    "Stored",
    "read_versioned",
    "update_documents",
    "write_versioned",
]

MAX_ATTEMPTS = 5
"""Writes of one document before giving up when every one of them met a concurrent change (409)."""

_CONFLICT = 409


class ConcurrentUpdateError(EngineError):
    """Documents kept changing under us: every attempt to write them met another writer's change (409)."""

    def __init__(self, what: str, target: str, ids: Sequence[str], attempts: int) -> None:
        super().__init__(
            f"{len(ids)} {what} document(s) in {target} were changed by another writer on each of {attempts} "
            f"attempts (first: {ids[0]!r}), so they were left as they are (the other documents were written). Another "
            "process keeps updating the same documents: retry, or rebuild with 'fuserec profiles build'."
        )
        self.what = what
        self.target = target
        self.ids = list(ids)


@dataclass(frozen=True)
class Stored:
    """A document as read, with the token a conditional write needs."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int


def read_versioned(client: OpenSearch, alias: str, ids: Sequence[str], what: str) -> dict[str, Stored]:
    """The found documents of ``ids`` by id, each with its concurrency token ({} when there is no index)."""
    out: dict[str, Stored] = {}
    for doc in mget_found(client, alias, ids, what):
        if doc.get("_seq_no") is None or doc.get("_primary_term") is None:
            raise EngineError(
                f"the engine returned {what} {doc.get('_id')} from {alias} without _seq_no/_primary_term: it does "
                "not support optimistic concurrency, which live updates need to never lose one"
            )
        out[str(doc["_id"])] = Stored(doc["_source"], int(doc["_seq_no"]), int(doc["_primary_term"]))
    return out


def write_versioned(
    client: OpenSearch,
    index: str,
    docs: Mapping[str, tuple[Stored | None, Any]],
    what: str,
    *,
    chunk_size: int = 500,
    max_chunk_bytes: int = 4 * 2**20,
    threads: int = 1,
) -> tuple[list[str], list[str]]:
    """Write each ``id -> (as read, new source)`` only if it is still as read (None: only if it does not exist).

    ``new source``: a dict, or a pre-serialised JSON string. Requests hold at most ``chunk_size`` documents and
    about ``max_chunk_bytes``; ``threads`` of them in flight (large writes: the profile job), each with the bulk
    policy of :mod:`~fuserec_os.engine.bulk` (429 retries, per-document splitting). Returns (written ids, ids
    changed meanwhile: 409). Any other refusal raises EngineError with the count and the first reason.
    """

    def actions() -> Iterator[dict[str, Any]]:
        for doc_id, (stored, source) in docs.items():
            action: dict[str, Any] = {"_index": index, "_id": doc_id, "_source": source}
            if stored is None:
                action["_op_type"] = "create"
            else:
                action.update(_op_type="index", if_seq_no=stored.seq_no, if_primary_term=stored.primary_term)
            yield action

    label = f"writing {what} into {index}"

    def send(chunk: list[Mapping[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
        with engine_errors(label):
            return list(send_chunk(client, chunk))

    written: list[str] = []
    conflicted: list[str] = []
    failures: list[dict[str, Any]] = []

    def collect(results: list[tuple[bool, dict[str, Any]]]) -> None:
        for ok, result in results:
            if ok:
                written.append(str(result.get("_id")))
            elif result.get("status") == _CONFLICT:
                conflicted.append(str(result.get("_id")))
            else:
                failures.append(result)

    chunks = byte_chunks(actions(), chunk_size, max_chunk_bytes)
    if threads <= 1:
        for chunk in chunks:
            collect(send(chunk))
    else:
        send_pipelined(chunks, send, collect, threads)
    if failures:
        first = failures[0]
        raise EngineError(
            f"the engine refused {len(failures)} {what} document(s) in {index}; first: id {first.get('_id')} "
            f"({first.get('status')}): {refusal_reason(first)}"
        )
    return written, conflicted


def update_documents(
    client: OpenSearch,
    *,
    alias: str,
    index: str,
    ids: Sequence[str],
    change: Callable[[Sequence[str], Mapping[str, Stored]], Mapping[str, Any]],
    what: str,
    read: Mapping[str, Stored] | None = None,
    first: Mapping[str, Any] | None = None,
    attempts: int = MAX_ATTEMPTS,
    chunk_size: int = 500,
    max_chunk_bytes: int = 4 * 2**20,
    threads: int = 1,
) -> dict[str, tuple[Stored | None, Any]]:
    """Apply ``change`` to the documents ``ids`` behind ``alias`` and write them into ``index`` conditionally,
    again for those changed meanwhile, until all are written or ``attempts`` writes of one failed
    (:class:`ConcurrentUpdateError`).

    ``change(pending ids, their stored documents)`` returns the new source of each id to write (ids left out are
    not written; a missing stored document is a new one). ``read``: the documents already read for the first
    attempt (else they are read); ``first``: the new sources already computed from them. Returns, for every id
    written, (the document it was computed from, what was written), so a caller can account for the difference.
    """
    pending = list(dict.fromkeys(str(i) for i in ids))
    stored = dict(read) if read is not None else read_versioned(client, alias, pending, what)
    new = dict(first) if first is not None else None
    done: dict[str, tuple[Stored | None, Any]] = {}
    for attempt in range(attempts):
        if attempt:  # only the documents changed meanwhile, as they are now
            stored, new = read_versioned(client, alias, pending, what), None
        if new is None:
            new = dict(change(pending, {i: stored[i] for i in pending if i in stored}))
        batch = {i: (stored.get(i), new[i]) for i in pending if i in new}
        written, conflicted = (
            write_versioned(
                client, index, batch, what, chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes, threads=threads
            )
            if batch
            else ([], [])
        )
        for i in written:
            done[i] = batch[i]
        if not conflicted:
            return done
        pending = conflicted
    raise ConcurrentUpdateError(what, alias, pending, attempts)
