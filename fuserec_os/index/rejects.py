"""The rejects file shared by every ingest (products, events): one JSON line per refused row.

Why a file and not a log line: a user fixes the data, not the log, so each record carries the row number (as a
person counts data rows), the record's id, every reason, and the row exactly as read, ready to be edited and
re-ingested. The file is opened on the first reject only, so a clean run leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from fuserec_os.engine.bulk import refusal_reason

__all__ = ["RejectsWriter", "bulk_error_reason", "default_rejects_path"]


def default_rejects_path(source: Path) -> Path:
    """``FILE.rejects.jsonl`` next to the input, so the two are found together."""
    return source.with_name(source.name + ".rejects.jsonl")


class RejectsWriter:
    """Streams rejected rows to a JSON Lines file, opened on the first reject only.

    ``id_field`` names the record's id key (``product_id``, ``event_id``); by default its value is read from
    the row, or given explicitly when the id was derived (e.g. a generated event id).
    """

    def __init__(self, path: Path, id_field: str = "product_id") -> None:
        self.path = path
        self.id_field = id_field
        self.count = 0
        self._out: IO[str] | None = None

    def add(
        self,
        row_number: int | None,
        row: Mapping[str, Any],
        reasons: list[str],
        record_id: str | None = None,
    ) -> None:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        record = {
            "row": row_number,
            self.id_field: record_id if record_id is not None else row.get(self.id_field),
            "reasons": reasons,
            "record": dict(row),
        }
        self._out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def bulk_error_reason(result: Mapping[str, Any]) -> str:
    """One bulk item's failure as a reason: the status, the engine's error type and its message."""
    return f"engine rejected the document ({result.get('status')}): {refusal_reason(result)}"
