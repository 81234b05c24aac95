"""One way to print a time: ISO 8601 UTC to the second with ``Z``, whatever the input looks like."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from fuserec_os.timefmt import utc_iso


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (datetime(2026, 3, 1, 12, 0, 0, 987654, tzinfo=timezone.utc), "2026-03-01T12:00:00Z"),
        (datetime(2026, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))), "2026-03-01T12:00:00Z"),
        (datetime(2026, 3, 1, 12, 0, 0), "2026-03-01T12:00:00Z"),  # naive: taken as UTC
        (pd.Timestamp("2026-03-01T12:00:00.123456789Z"), "2026-03-01T12:00:00Z"),
        (pd.Timestamp("2026-03-01 14:00:00+02:00"), "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00.123456789Z", "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00Z"),
        ("2026-03-01 13:00:00+01:00", "2026-03-01T12:00:00Z"),
        ("2026-03-01T13:00:00.25+0100", "2026-03-01T12:00:00Z"),
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
        (1772366400, "2026-03-01T12:00:00Z"),  # epoch seconds
        (1772366400123, "2026-03-01T12:00:00Z"),  # epoch milliseconds (what the engine's creation_date holds)
        ("1772366400123", "2026-03-01T12:00:00Z"),
        (1772366400.5, "2026-03-01T12:00:00Z"),
    ],
)
def test_every_input_prints_the_same_way(value: object, shown: str) -> None:
    assert utc_iso(value) == shown


@pytest.mark.parametrize("value", [None, "", pd.NaT])
def test_missing_is_a_dash(value: object) -> None:
    assert utc_iso(value) == "-"
    assert utc_iso(value, missing="never") == "never"


def test_text_that_is_not_a_time_is_kept_as_it_is() -> None:
    assert utc_iso("yesterday") == "yesterday"  # never hide what was stored
