"""Catalog ingest: read a file, validate every row, bulk-index the good ones, report the rest.

Nothing is dropped silently: a row that fails validation, and a document the engine refuses, both go to
the rejects file (JSON Lines: row number, product id, every reason, the row as read) and are counted. The
rest proceed. Documents are keyed by ``product_id``, so re-running a file is idempotent.

``replace=True`` loads into a fresh concrete index and swaps the alias only when the load succeeded
(something indexed, no engine failures, no rejects unless allowed), so a bad file never empties the live index.
The CLI (``fuserec ingest products``) is a thin shell over :func:`ingest_products`.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opensearchpy import OpenSearch

from fuserec_os.engine.bulk import bulk_or_raise, stream_bulk
from fuserec_os.engine.client import engine_errors
from fuserec_os.index import manager
from fuserec_os.index.mappings import MappingSpec
from fuserec_os.index.readers import progress_bar, read_rows
from fuserec_os.index.rejects import RejectsWriter, bulk_error_reason, default_rejects_path
from fuserec_os.index.validate import PRODUCT_FIELDS, normalize_product


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

    @property
    def docs_per_second(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        if self.replace and not self.swapped:
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
    replace: bool = False,
    allow_rejects: bool = False,
    rejects_path: str | Path | None = None,
    chunk_size: int = 1000,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    progress: bool = True,
    progress_file: IO[str] | None = None,
) -> IngestReport:
    """Validate and index a catalog file into ``alias`` (see the module docstring for the guarantees)."""
    started = time.monotonic()
    source = Path(source)
    reader = read_rows(source, column_map)
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
        ignored_columns=sorted(set(reader.columns) - set(PRODUCT_FIELDS)),
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
            doc, reasons = normalize_product(row)  # also rejects rows the reader could not parse
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
    except Exception:
        bar.close()
        rejects.close()
        if replace:
            manager.delete_index(client, target)
        raise
    bar.close()
    rejects.close()
    report.rejected = rejects.count
    report.rejects_path = str(rejects.path) if rejects.count else None
    if replace:
        _finish_replace(client, report)
    report.seconds = time.monotonic() - started
    return report


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
