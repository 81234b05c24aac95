"""How a time is printed for a person: ISO 8601 UTC to the second with ``Z``, e.g. ``2026-03-01T12:00:00Z``.

Only what commands print goes through here; stored values keep their own format (the registry's microseconds,
the profiles' nanoseconds, the engine's epoch millis). Standard library only, so command modules can import it
at the top.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["utc_iso"]

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FRACTION = re.compile(r"\.(\d+)")  # Python 3.10 parses exactly 3 or 6 digits, at most microseconds
_OFFSET = re.compile(r"([+-]\d\d)(\d\d)$")  # +0100 -> +01:00
_EPOCH_TEXT = re.compile(r"-?\d{9,}(?:\.\d+)?")


def utc_iso(value: object, missing: str = "-") -> str:
    """``value`` (a datetime or pandas Timestamp, ISO 8601 text with any offset, or epoch seconds/milliseconds)
    as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC, fractions dropped; a naive time is taken as UTC.

    None, empty text and NaT print as ``missing``; text that is not a time is returned as it is (never hidden).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return missing
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = _from_epoch(float(value))
    elif isinstance(value, str):
        when = _parse(value.strip())
        if when is None:
            return value
    else:
        return str(value)
    if when is None:
        return missing
    try:
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc).strftime(_FORMAT)
    except (ValueError, OverflowError, OSError):  # pandas NaT is a datetime that formats to nothing
        return missing


def _from_epoch(number: float) -> datetime | None:
    """Epoch seconds, or milliseconds above 1e11 (1e11 s is the year 5138)."""
    if number != number:  # NaN
        return None
    seconds = number / 1000 if abs(number) > 1e11 else number
    try:
        return datetime.fromtimestamp(int(seconds // 1), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def _parse(text: str) -> datetime | None:
    if _EPOCH_TEXT.fullmatch(text):
        return _from_epoch(float(text))
    cleaned = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    cleaned = _OFFSET.sub(r"\1:\2", cleaned)
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError:
        return None
