"""What a person reads: no Python reprs, and every time in one format (ISO 8601 UTC to the second, ``Z``)."""

from __future__ import annotations

import re

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
"""The one format times are printed in, e.g. ``2026-03-01T12:00:00Z``."""

# anything that looks like a date or a time, in any format (fractions, offsets, a space for the T, no time)
_TIME_LIKE = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?(?:Z|[+-]\d\d:?\d\d)?")
REPRS = ("{'", "['", "None", "True", "False", "Timestamp(", "datetime.", "np.float", "dtype")


def reprs_in(text: str) -> list[str]:
    """Python reprs left in ``text`` (dicts, lists, None, booleans, pandas/numpy objects)."""
    return [r for r in REPRS if r in text]


def odd_times(text: str) -> list[str]:
    """Dates and times in ``text`` that are not ISO 8601 UTC to the second."""
    return [m.group(0) for m in _TIME_LIKE.finditer(text) if not ISO_UTC.fullmatch(m.group(0))]


def assert_readable(text: str) -> None:
    assert not reprs_in(text), f"Python reprs {reprs_in(text)} in:\n{text}"
    assert not odd_times(text), f"times not in ISO 8601 UTC (YYYY-MM-DDTHH:MM:SSZ) {odd_times(text)} in:\n{text}"
