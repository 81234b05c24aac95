"""The rejects file shared by every ingest (products, events, impressions): one JSON line per refused row.

Why a file and not a log line: a user fixes the data, not the log, so each record carries the row number (as a
person counts data rows), the record's id, every reason, and the row exactly as read (``record``), ready to be
edited and re-ingested; a line that could not be parsed at all keeps its text instead (``raw``). The file is
opened on the first reject only, so a clean run leaves nothing behind.

Every line is strict JSON that any parser reads: a non-finite number in a row (a JSON ``NaN`` or ``Infinity``,
often the very reason of the reject) is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from fuserec_os.engine.bulk import refusal_reason
from fuserec_os.index.validate import PARSE_ERROR_KEY, RAW_LINE_KEY

__all__ = ["RejectsWriter", "bulk_error_reason", "default_rejects_path", "jsonable"]


def default_rejects_path(source: Path) -> Path:
    """``FILE.rejects.jsonl`` next to the input, so the two are found together."""
    return source.with_name(source.name + ".rejects.jsonl")


def _non_finite(value: float) -> str:
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float (also numpy's) replaced by its name, for strict JSON."""
    if isinstance(value, float):  # numpy's float64 too
        return value if math.isfinite(value) else _non_finite(value)
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return jsonable(value.tolist())  # numpy scalars and arrays: as Python values, NaN named as above
    return value


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
        record: dict[str, Any] = {
            "row": row_number,
            self.id_field: record_id if record_id is not None else row.get(self.id_field),
            "reasons": reasons,
        }
        if PARSE_ERROR_KEY in row:
            record["raw"] = row.get(RAW_LINE_KEY)
        else:
            record["record"] = dict(row)
        self._out.write(_dumps(record) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _dumps(record: dict[str, Any]) -> str:
    try:
        return json.dumps(jsonable(record), ensure_ascii=False, default=str, allow_nan=False)
    except RecursionError:  # a row nested too deeply to be written back: keep its number, id and reasons
        record["record"] = None
        record["raw"] = "(the row is nested too deeply to be written back)"
        return json.dumps(jsonable(record), ensure_ascii=False, default=str, allow_nan=False)


def bulk_error_reason(result: Mapping[str, Any]) -> str:
    """One bulk item's failure as a reason: the status, the engine's error type and its message."""
    return f"engine rejected the document ({result.get('status')}): {refusal_reason(result)}"
