"""A key's budget per period: at most so many credits a day, a week or a month.

Periods are UTC calendar days, ISO weeks (from Monday) and months, or, for a ``rolling`` budget, periods of a
day, a week or a month counted from when the budget was set (``anchor``). The money side is enforced with the
key's spend cap (``shared.ledger.spend_caps``), in the same conditional UPDATE of the key row: a hold reserves
its amount against the period (``budget_held``), its settlement adds the charge to the period (``budget_spent``)
and releases the reservation, so concurrent holds can never take a key past its budget. The first reservation
of a new period starts it (``budget_spent`` back to 0; holds still pending keep counting).

``now()`` is the clock every budget reads: tests move it to a period's boundary.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

PERIODS = ("day", "week", "month")
ADJECTIVES = {"day": "daily", "week": "weekly", "month": "monthly"}


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


clock: Callable[[], dt.datetime] = _system_now


def now() -> dt.datetime:
    return clock()


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` plus whole months, the day clamped to the target month's length (Jan 31 + 1 month: Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class PeriodBudget:
    amount: int  # micro-credits per period
    period: str  # day, week, month
    rolling: bool  # periods counted from ``anchor`` instead of the UTC calendar
    anchor: dt.datetime  # when the budget was set

    def bounds(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The period that contains ``at``: its start (inclusive) and end (exclusive)."""
        at = at.astimezone(dt.UTC)
        if self.rolling:
            return self._rolling_bounds(at)
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "day":
            return midnight, midnight + dt.timedelta(days=1)
        if self.period == "week":
            start = midnight - dt.timedelta(days=midnight.weekday())
            return start, start + dt.timedelta(days=7)
        start = midnight.replace(day=1)
        return start, add_months(start, 1)

    def _rolling_bounds(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        anchor = self.anchor.astimezone(dt.UTC)
        if self.period == "month":
            months = (at.year - anchor.year) * 12 + at.month - anchor.month
            while months > 0 and add_months(anchor, months) > at:
                months -= 1
            while add_months(anchor, months + 1) <= at:
                months += 1
            months = max(months, 0)
            return add_months(anchor, months), add_months(anchor, months + 1)
        length = dt.timedelta(days=1 if self.period == "day" else 7)
        count = max(0, (at - anchor) // length)
        start = anchor + count * length
        return start, start + length

    def describe(self) -> str:
        return ("rolling " if self.rolling else "") + ADJECTIVES[self.period]


@dataclass(frozen=True, slots=True)
class BudgetState:
    """What a key's budget leaves in the current period."""

    budget: PeriodBudget
    spent: int  # charged in the current period
    reserved: int  # held by pending requests and tasks
    resets_at: dt.datetime

    @property
    def remaining(self) -> int:
        return max(0, self.budget.amount - self.spent - self.reserved)


def budget_state(
    budget: PeriodBudget, period_start: dt.datetime | None, spent: int, held: int, at: dt.datetime | None = None
) -> BudgetState:
    """The current period's state from the key's counters: what was charged in an earlier period does not
    count (the period is started anew by the next reservation)."""
    start, end = budget.bounds(at or now())
    current = period_start is not None and period_start >= start
    return BudgetState(budget, spent if current else 0, held, end)
