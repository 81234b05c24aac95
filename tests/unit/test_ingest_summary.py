"""The ingest summary lines: monthly indices stay one short line however many months a log spans."""

from __future__ import annotations

from fuserec_os.commands.ingest import month_range


def test_a_few_monthly_indices_are_listed() -> None:
    assert month_range(["ev-2024.05"]) == "ev-2024.05"
    assert month_range(["ev-2024.06", "ev-2024.05"]) == "ev-2024.06, ev-2024.05"


def test_many_monthly_indices_are_one_range_with_their_count() -> None:
    names = [f"fuserec-events-{y}.{m:02d}" for y in (2019, 2020) for m in range(1, 13)]
    names = [n for n in names if "fuserec-events-2019.10" <= n <= "fuserec-events-2020.06"]
    assert month_range(list(reversed(names))) == "fuserec-events-2019.10 … 2020.06 (9 monthly indices)"
    many = [f"shop-events-{2000 + i // 12}.{i % 12 + 1:02d}" for i in range(270)]
    assert month_range(many) == "shop-events-2000.01 … 2022.06 (270 monthly indices)"
