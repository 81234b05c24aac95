"""Catalog ingest: read a file, validate every row, bulk-index the good ones, report the rest.

Nothing is dropped silently: a row that fails validation, and a document the engine refuses, both go to
the rejects file (JSON Lines: row number, product id, every reason, the row as read) and are counted. The
rest proceed. Documents are keyed by ``product_id``, so re-running a file is idempotent.

``replace=True`` loads into a fresh concrete index and swaps the alias only when the load succeeded
(something indexed, no engine failures, no rejects unless allowed), so a bad file never empties the live index.
The CLI (``fuserec ingest products``) is a thin shell over :func:`ingest_products`.

A failure part way never leaves the user guessing. A file that stops parsing (a ragged CSV line) raises an
InputFileError that says how many rows were read before it, how many of them are indexed and where, and how to
go on (fix the line and re-run: the ingest is idempotent; or ``--replace``). Everything read before the failure
is written first, so "rows 1 to N were processed, nothing after" is exact. With ``replace`` the unfinished index
is deleted and the alias untouched; if that cleanup fails too (the engine died), the original failure is
reported first and the cleanup's after it.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opensearchpy import OpenSearch

from fuserec_os.engine.bulk import bulk_or_raise, stream_bulk
from fuserec_os.engine.client import engine_errors
from fuserec_os.errors import EngineUnavailableError, FuserecError, InputFileError, extended
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import check_constants, fix_the_input, progress_bar, read_rows
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, default_rejects_path
from fuserec_os.index.validate import MAX_POPULARITY, MAX_PRICE, PRODUCT_FIELDS, PRODUCT_JOINERS, normalize_product


@dataclass
class IngestReport:
    """What an ingest did; ``ok`` says whether the CLI should exit 0."""

    source: str
    index: str
    alias: str
    read: int = 0
    indexed: int = 0
    rejected: int = 0
    engine_rejected: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    rejects_path: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    created_index: bool = False
    replace: bool = False
    swapped: bool = False
    allow_rejects: bool = False
    message: str = ""
    error: str | None = None
    """Set when the ingest failed part way (the report then says what was done before the failure)."""

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        if self.error is not None or (self.replace and not self.swapped):
            return False
        return self.rejected == 0 or self.allow_rejects

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["docs_per_second"] = round(self.docs_per_second, 1)
        d["seconds"] = round(self.seconds, 3)
        d["ok"] = self.ok
        return d


def ingest_products(
    client: OpenSearch,
    source: str | Path,
    spec: MappingSpec,
    alias: str,
    *,
    column_map: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    replace: bool = False,
    allow_rejects: bool = False,
    rejects_path: str | Path | None = None,
    chunk_size: int = 1000,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    progress: bool = True,
    progress_file: IO[str] | None = None,
    max_price: float = MAX_PRICE,
    max_popularity: float = MAX_POPULARITY,
) -> IngestReport:
    """Validate and index a catalog file into ``alias`` (see the module docstring for the guarantees).

    ``max_price`` and ``max_popularity`` bound those fields (defaults :data:`~fuserec_os.index.validate.MAX_PRICE`,
    10,000,000, and :data:`~fuserec_os.index.validate.MAX_POPULARITY`, 1e12): a row above is rejected with the
    reason, as a unit or export mistake that would otherwise sort first.

    ``column_map`` is ``{our_field: their_column}``; ``title``, ``description``, ``category`` and ``tags`` may
    take several columns joined with ``+`` (:data:`~fuserec_os.index.validate.PRODUCT_JOINERS`).
    ``constants`` (``{field: value}``, the CLI's ``--set``) fills a field the file has no column for, checked
    like a cell before anything is read.
    """
    started = time.monotonic()
    source = Path(source)
    consts = dict(constants or {})
    check_constants(consts, lambda row: normalize_product(row, max_price=max_price, max_popularity=max_popularity))
    reader = read_rows(source, column_map, joiners=PRODUCT_JOINERS, constants=consts)
    rejects = RejectsWriter(Path(rejects_path) if rejects_path else default_rejects_path(source))
    rejects.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    if replace:
        target, created = manager.create_index(client, spec, alias, attach=False), True
    else:
        target, created = manager.ensure_index(client, spec, alias)
    report = IngestReport(
        source=str(source),
        index=target,
        alias=alias,
        created_index=created,
        replace=replace,
        allow_rejects=allow_rejects,
        ignored_columns=reader.unknown_columns(PRODUCT_FIELDS),
    )
    bar = progress_bar(reader, source, progress, progress_file)
    seen_ids: set[str] = set()
    # Documents sent but not yet acknowledged, per id in send order: a refused one is reported with its own
    # row even when the id repeats in the file or the bulk helper retried it out of order after a 429.
    in_flight: dict[str, deque[tuple[int, dict[str, Any]]]] = defaultdict(deque)

    def actions() -> Iterator[dict[str, Any]]:
        for row_number, row in reader:
            report.read += 1
            bar.update(1)
            # also rejects rows the reader could not parse
            doc, reasons = normalize_product(row, max_price=max_price, max_popularity=max_popularity)
            if doc is None:
                rejects.add(row_number, row, reasons)
                continue
            pid = doc["product_id"]
            if pid in seen_ids:
                report.duplicates += 1
            seen_ids.add(pid)
            in_flight[pid].append((row_number, doc))
            yield {"_index": target, "_id": pid, "_source": doc}

    try:
        for ok, result in stream_bulk(
            client,
            actions(),
            what=f"bulk indexing into {target}",
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
        ):
            pid = str(result.get("_id"))
            pending = in_flight.get(pid)
            row_number, doc = pending.popleft() if pending else (0, {})
            if pending is not None and not pending:
                del in_flight[pid]
            if ok:
                report.indexed += 1
            else:
                report.engine_rejected += 1
                rejects.add(row_number or None, doc, [bulk_error_reason(result)])
        with engine_errors(f"refreshing {target}"):
            client.indices.refresh(index=target)
    except FuserecError as exc:
        bar.close()
        rejects.close()
        failure = _failed(client, report, rejects, exc)
        if failure is exc:
            raise
        raise failure from exc
    except Exception:
        bar.close()
        rejects.close()
        if replace:
            _delete_quietly(client, target)
        raise
    bar.close()
    rejects.close()
    report.rejected = rejects.count
    report.rejects_path = str(rejects.path) if rejects.count else None
    if replace:
        _finish_replace(client, report)
    elif created and report.indexed == 0:
        _discard_empty_first_index(client, report)
    report.seconds = time.monotonic() - started
    return report


def _failed(client: OpenSearch, report: IngestReport, rejects: RejectsWriter, exc: FuserecError) -> FuserecError:
    """The error to raise for a failure part way: ``exc`` first, then what had been done and how to go on.

    With ``replace`` the unfinished index is deleted (the alias never pointed at it); a failing cleanup is
    reported after the original failure, never instead of it.
    """
    report.rejected = rejects.count
    report.rejects_path = str(rejects.path) if rejects.count else None
    report.error = str(exc)
    cleanup: FuserecError | None = None
    if report.replace:
        try:
            manager.delete_index(client, report.index)
        except FuserecError as err:
            cleanup = err
    elif report.created_index and report.indexed == 0:
        with contextlib.suppress(FuserecError):  # the original failure matters more
            _discard_empty_first_index(client, report)
    notes: list[str] = []
    rejected = f", {report.rejected} rejected (reasons in {report.rejects_path})" if report.rejected else ", 0 rejected"
    if isinstance(exc, InputFileError):
        if report.replace:
            notes.append(
                f"{report.read} row(s) were read before it ({report.indexed} indexed{rejected}) into the new "
                f"index {report.index}."
            )
        elif not report.created_index and report.message.startswith("nothing was indexed"):
            notes.append(f"{report.read} row(s) were read before it{rejected}; {report.message}.")
            notes.append(f"{fix_the_input(exc)} and run the same command again.")
        else:
            notes.append(
                f"{report.read} row(s) were read before it: {report.indexed} indexed into {report.index} (alias "
                f"{report.alias}){rejected}; nothing after row {report.read} was indexed."
            )
            notes.append(
                f"{fix_the_input(exc)} and run the same command again: the ingest is idempotent by product_id, so "
                "rows already indexed are overwritten, not duplicated. Or add --replace to load the file into a "
                "fresh index that goes live only if the whole load succeeds."
            )
    if report.replace:
        if cleanup is None:
            notes.append(
                f"The unfinished index {report.index} was deleted: alias {report.alias} was NOT swapped, the live "
                "index is unchanged."
            )
        else:
            notes.append(f"Then removing the unfinished index {report.index} failed too: {cleanup}")
            notes.append(
                f"The alias {report.alias} was NOT swapped, the live index is unchanged; 'fuserec index prune "
                f"--keep 1' deletes {report.index} once a newer index is live."
            )
        if isinstance(exc, InputFileError):
            notes.append(f"{fix_the_input(exc)} and run the same command again.")
    if not notes:
        return exc
    failure = extended(exc, *notes)
    if isinstance(failure, EngineUnavailableError) and isinstance(cleanup, EngineUnavailableError):
        failure.unreachable = failure.unreachable or cleanup.unreachable
    if isinstance(failure, InputFileError):
        failure.report = report.as_dict()
    return failure


def _discard_empty_first_index(client: OpenSearch, report: IngestReport) -> None:
    """A first load that indexed nothing removes the index it created (and the alias with it), so the next
    load starts fresh instead of finding an empty live index. Kept if someone else wrote to it meanwhile."""
    if manager.count(client, report.index) > 0:
        return
    manager.delete_index(client, report.index)
    report.created_index = False
    report.message = (
        f"nothing was indexed: the new index {report.index} was removed again, so alias {report.alias} still "
        "does not exist; fix the rows (reasons in the rejects file) and run the same command again"
    )


def _delete_quietly(client: OpenSearch, name: str) -> None:
    try:
        manager.delete_index(client, name)
    except Exception:  # cleanup after an unexpected error: that error matters more
        return


def _finish_replace(client: OpenSearch, report: IngestReport) -> None:
    """Swap the alias to the freshly loaded index, or delete it and say why the live one was kept."""
    why = None
    if report.indexed == 0:
        why = "no document was indexed"
    elif report.engine_rejected:
        why = f"the engine refused {report.engine_rejected} document(s)"
    elif report.rejected and not report.allow_rejects:
        why = f"{report.rejected} row(s) were rejected (pass --allow-rejects to swap anyway)"
    if why is None:
        old = manager.swap_alias(client, report.alias, report.index)
        report.swapped = True
        report.message = f"alias {report.alias} now points at {report.index}" + (
            f" (was {', '.join(old)}; remove it with 'fuserec index prune')" if old else ""
        )
        return
    manager.delete_index(client, report.index)
    report.message = f"{why}: alias {report.alias} was NOT swapped, the live index is unchanged"


def index_documents(client: OpenSearch, index: str, docs: Iterable[Mapping[str, Any]], chunk_size: int = 1000) -> int:
    """Bulk-index already-valid product docs (benchmarks and tests); raises on any refusal."""
    actions = ({"_index": index, "_id": d["product_id"], "_source": d} for d in docs)
    return bulk_or_raise(client, actions, target=index, what="product", chunk_size=chunk_size)
