"""Events read from a file into memory, validated exactly as ``fuserec ingest events`` validates them, never stored.

Why: ``fuserec model evaluate --test-file FILE`` tests a model on held-out events that were never ingested (a
later export of the shop's log, or a slice kept aside), so nothing of them can have reached the stored profiles,
statistics or product vectors. The rows go through the ingest's reader (every format, ``--map`` and ``--set``)
and its row validator (:func:`~fuserec_os.behaviour.events.normalize_event`), so a file that ingests cleanly
reads cleanly here and the other way round.

A file with any invalid row is refused as a whole (an evaluation on the rows that happened to parse would measure
something else than asked): every rejected row goes to the rejects file with all its reasons, and the error names
the first few rows. Identical repeats of an event are counted and kept once, as the ingest stores them once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fuserec_os.behaviour.config import EventsConfig
from fuserec_os.behaviour.events import DEFAULT_EVENTS_CONFIG, EVENT_JOINERS, events_frame, normalize_event
from fuserec_os.behaviour.timeseries import REPEAT, RepeatedIds
from fuserec_os.errors import InputFileError
from fuserec_os.index.readers import check_constants, read_rows
from fuserec_os.index.rejects import RejectsWriter, default_rejects_path
from fuserec_os.index.validate import MAX_PRICE

__all__ = ["EventFile", "read_event_file"]

#: Rejected rows quoted in the error (all of them are in the rejects file).
QUOTED_REJECTS = 3


@dataclass(frozen=True)
class EventFile:
    """The events of one file (an :func:`~fuserec_os.behaviour.events.events_frame`) and what reading it found."""

    events: pd.DataFrame
    read: int
    repeats: int
    path: Path


def read_event_file(
    path: str | Path,
    *,
    cfg: EventsConfig = DEFAULT_EVENTS_CONFIG,
    column_map: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    rejects_path: str | Path | None = None,
    max_price: float = MAX_PRICE,
    option: str = "--test-file",
) -> EventFile:
    """Read and validate an events file without storing anything (see the module docstring).

    Raises InputFileError naming ``option``, the file and the first rejected rows (with their reasons) when any
    row is invalid; the reasons of every rejected row are in ``rejects_path`` (default ``FILE.rejects.jsonl``).
    """
    source = Path(path)
    consts = dict(constants or {})
    check_constants(consts, lambda row: normalize_event(row, cfg, max_price=max_price))
    reader = read_rows(source, column_map, joiners=EVENT_JOINERS, constants=consts)
    rejects = RejectsWriter(Path(rejects_path) if rejects_path else default_rejects_path(source), "event_id")
    rejects.path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
    repeats = RepeatedIds(
        "event_id", "row", "give each event its own event_id, or leave the column empty to derive one from the content"
    )
    docs: list[dict[str, object]] = []
    quoted: list[str] = []
    read = repeated = 0
    try:
        for row_number, row in reader:
            read += 1
            doc, reasons = normalize_event(row, cfg, max_price=max_price)
            if doc is None:
                rejects.add(row_number, row, reasons)
                if len(quoted) < QUOTED_REJECTS:
                    quoted.append(f"row {row_number}: {'; '.join(reasons)}")
                continue
            seen = repeats.see(str(doc["event_id"]), doc, row_number)
            if seen == REPEAT:
                repeated += 1
                continue
            if seen is not None:
                rejects.add(row_number, row, [seen], record_id=str(doc["event_id"]))
                if len(quoted) < QUOTED_REJECTS:
                    quoted.append(f"row {row_number}: {seen}")
                continue
            docs.append(doc)
    finally:
        rejects.close()
    if rejects.count:
        more = f" (and {rejects.count - len(quoted)} more)" if rejects.count > len(quoted) else ""
        raise InputFileError(
            f"{option} {source}: {rejects.count} of {read} row(s) invalid, e.g. {' | '.join(quoted)}{more}; every "
            f"reason is in {rejects.path}. Fix the rows (the same checks as 'fuserec ingest events') and run again."
        )
    return EventFile(events=events_frame(docs), read=read, repeats=repeated, path=source)
