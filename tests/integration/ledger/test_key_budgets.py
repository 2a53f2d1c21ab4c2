"""A key's budget per period under concurrency: holds count against it, nothing is ever overspent, and a new
period starts at its boundary (moved there with the budgets' clock)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from shared.accounts import key_management
from shared.accounts.keys import Principal
from shared.infra.db import Database
from shared.infra.errors import BudgetExceeded
from shared.infra.ids import uuid7
from shared.ledger import budgets
from shared.ledger.budgets import PeriodBudget
from shared.ledger.request_holds import place_request_hold, request_settlement, settle_request
from shared.services import Services
from tests.conftest import AccountFactory

BUDGET = 3_000_000  # 3 credits a day
PRICE = 300_000  # 0.3 credits a request: ten fit


async def budgeted_principal(db: Database, account_id: uuid.UUID, anchor: dt.datetime) -> Principal:
    key_id = await db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account_id)
    await db.execute(
        "UPDATE api_keys SET budget = $2, budget_period = 'day', budget_anchor = $3 WHERE id = $1",
        key_id, BUDGET, anchor,
    )  # fmt: skip
    budget = PeriodBudget(BUDGET, "day", False, anchor)
    return Principal(account_id=account_id, api_key_id=key_id, role="user", budget=budget)


async def attempt(db: Database, principal: Principal, count: int) -> tuple[list[uuid.UUID], list[BaseException]]:
    outcomes = await asyncio.gather(
        *(place_request_hold(db, principal, PRICE, "budget test") for _ in range(count)), return_exceptions=True
    )
    placed = [o for o in outcomes if isinstance(o, uuid.UUID)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(r, BudgetExceeded) for r in refused), refused
    return placed, refused


async def settle(db: Database, principal: Principal, hold_id: uuid.UUID, charge: int) -> None:
    await settle_request(db, request_settlement(
        hold_id=hold_id, request_id=uuid7(), principal=principal, charge=charge, status="succeeded",
        source="chat.completion", model="budget-test", kind="text", provider=None, units={}, latency_ms=1,
    ))  # fmt: skip


async def key_counters(db: Database, key_id: uuid.UUID | None) -> tuple[int, int]:
    row = await db.fetchrow("SELECT budget_spent, budget_held FROM api_keys WHERE id = $1", key_id)
    assert row is not None
    return row["budget_spent"], row["budget_held"]


async def test_100_concurrent_requests_never_overspend_a_daily_budget(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    account = await make_account(credits="100")
    principal = await budgeted_principal(db, account.id, dt.datetime.now(dt.UTC))
    placed, refused = await attempt(db, principal, 100)
    assert (len(placed), len(refused)) == (10, 90)  # the pending holds count against the budget
    assert await key_counters(db, principal.api_key_id) == (0, BUDGET)
    assert refused[0].code == "budget_exceeded"  # type: ignore[attr-defined]
    assert "daily budget leaves 0 of 3" in str(refused[0]) and "resets at" in str(refused[0])

    await asyncio.gather(*(settle(db, principal, hold, 200_000) for hold in placed))
    assert await key_counters(db, principal.api_key_id) == (2_000_000, 0)
    placed, refused = await attempt(db, principal, 100)
    assert (len(placed), len(refused)) == (3, 97)  # 1 credit left: three holds of 0.3
    spent, held = await key_counters(db, principal.api_key_id)
    assert spent + held <= BUDGET
    await asyncio.gather(*(settle(db, principal, hold, PRICE) for hold in placed))
    assert await key_counters(db, principal.api_key_id) == (2_900_000, 0)
    view = await key_management.get_key(db, account.id, str(principal.api_key_id))
    state = view.budget_state()
    assert state is not None and state.remaining == 100_000


async def test_the_budget_resets_at_the_period_boundary(
    services: Services, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = services.db
    account = await make_account(credits="100")
    before = dt.datetime(2026, 12, 4, 23, 59, 59, tzinfo=dt.UTC)
    boundary = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    principal = await budgeted_principal(db, account.id, before - dt.timedelta(days=3))
    monkeypatch.setattr(budgets, "clock", lambda: before)
    placed, _ = await attempt(db, principal, 12)
    assert len(placed) == 10
    await asyncio.gather(*(settle(db, principal, hold, PRICE) for hold in placed[:6]))  # 6 charged, 4 pending
    assert await key_counters(db, principal.api_key_id) == (1_800_000, 1_200_000)

    monkeypatch.setattr(budgets, "clock", lambda: boundary)
    # The day's charges no longer count; the 4 holds still pending do: six more fit.
    placed_after, refused = await attempt(db, principal, 20)
    assert (len(placed_after), len(refused)) == (6, 14)
    assert await key_counters(db, principal.api_key_id) == (0, BUDGET)
    assert "resets at 2026-12-06T00:00:00Z" in str(refused[0])
    await asyncio.gather(*(settle(db, principal, hold, 100_000) for hold in placed[6:] + placed_after))
    assert await key_counters(db, principal.api_key_id) == (1_000_000, 0)


async def test_100_concurrent_requests_never_overspend_a_member_budget(
    services: Services, make_account: AccountFactory
) -> None:
    """A member's budget counts what they spend through any key they created (or their session), together."""
    db = services.db
    account = await make_account(credits="100")
    await db.execute(
        "UPDATE account_members SET budget = $2, budget_period = 'week', budget_anchor = now() "
        "WHERE account_id = $1 AND person_id = $1",
        account.id, BUDGET,
    )  # fmt: skip
    budget = PeriodBudget(BUDGET, "week", False, dt.datetime.now(dt.UTC))
    key_id = await db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account.id)
    via_key = Principal(account.id, key_id, "user", member_budget=budget, budget_member_id=account.id)
    via_session = Principal(account.id, None, "user", person_id=account.id, member_budget=budget,
                            budget_member_id=account.id)  # fmt: skip
    outcomes = await asyncio.gather(
        *(place_request_hold(db, p, PRICE, "member budget") for p in [via_key, via_session] * 50),
        return_exceptions=True,
    )
    placed = [o for o in outcomes if isinstance(o, uuid.UUID)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert (len(placed), len(refused)) == (10, 90)
    assert all(isinstance(r, BudgetExceeded) and "member budget (weekly)" in str(r) for r in refused)
    held = await db.fetchval("SELECT budget_held FROM account_members WHERE account_id = $1", account.id)
    assert held == BUDGET
    await asyncio.gather(*(settle(db, via_key, hold, 100_000) for hold in placed))
    row = await db.fetchrow("SELECT budget_spent, budget_held FROM account_members WHERE account_id = $1", account.id)
    assert row is not None and (row["budget_spent"], row["budget_held"]) == (1_000_000, 0)
