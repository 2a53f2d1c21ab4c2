"""The periods of a key's budget: UTC calendar days, ISO weeks and months, or rolling ones from the anchor."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.ledger.budgets import PeriodBudget, add_months, budget_state

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


ANCHOR = at("2026-01-31T15:30:00")


@pytest.mark.parametrize(
    ("period", "rolling", "moment", "start", "end"),
    [
        ("day", False, "2026-12-04T23:59:59", "2026-12-04T00:00:00", "2026-12-05T00:00:00"),
        ("day", False, "2026-12-05T00:00:00", "2026-12-05T00:00:00", "2026-12-06T00:00:00"),
        ("week", False, "2026-12-06T12:00:00", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),  # Sunday -> Monday
        ("month", False, "2026-12-31T23:00:00", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("day", True, "2026-02-01T15:29:59", "2026-01-31T15:30:00", "2026-02-01T15:30:00"),
        ("day", True, "2026-02-01T15:30:00", "2026-02-01T15:30:00", "2026-02-02T15:30:00"),
        ("week", True, "2026-02-14T15:30:00", "2026-02-14T15:30:00", "2026-02-21T15:30:00"),
        ("month", True, "2026-02-28T15:29:00", "2026-01-31T15:30:00", "2026-02-28T15:30:00"),  # clamped to Feb 28
        ("month", True, "2026-03-30T00:00:00", "2026-02-28T15:30:00", "2026-03-31T15:30:00"),
    ],
)
def test_period_bounds(period: str, rolling: bool, moment: str, start: str, end: str) -> None:
    budget = PeriodBudget(10, period, rolling, ANCHOR)
    assert budget.bounds(at(moment)) == (at(start), at(end))


def test_add_months_clamps_the_day() -> None:
    assert add_months(at("2024-01-31T00:00:00"), 1) == at("2024-02-29T00:00:00")
    assert add_months(at("2026-11-30T00:00:00"), 3) == at("2027-02-28T00:00:00")


def test_what_an_earlier_period_spent_does_not_count() -> None:
    budget = PeriodBudget(100, "day", False, ANCHOR)
    yesterday = at("2026-12-03T00:00:00")
    now = at("2026-12-04T10:00:00")
    state = budget_state(budget, yesterday, spent=90, held=5, at=now)
    assert (state.spent, state.reserved, state.remaining) == (0, 5, 95)
    assert state.resets_at == at("2026-12-05T00:00:00")
    today = budget_state(budget, at("2026-12-04T00:00:00"), spent=90, held=5, at=now)
    assert today.remaining == 5
