"""Group-committed billing of synchronous requests (``shared.ledger.request_holds``): concurrent holds and
settlements of one process go to PostgreSQL in batches, with the same outcomes as one by one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from shared.accounts.keys import Principal
from shared.infra.db import Database
from shared.infra.db.batching import BATCH_RETRIES
from shared.infra.errors import InsufficientCredits, PermissionDenied
from shared.infra.ids import uuid7
from shared.ledger import NewHold, place_holds
from shared.ledger import request_holds as billing
from shared.ledger.request_holds import place_request_hold, request_billing, request_settlement, settle_request
from shared.services import Services
from tests.conftest import AccountFactory


async def principal_of(db: Database, account_id: uuid.UUID, *, spend_cap: int | None = None) -> Principal:
    key_id = await db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account_id)
    if spend_cap is not None:
        await db.execute("UPDATE api_keys SET spend_cap = $2 WHERE id = $1", key_id, spend_cap)
    return Principal(account_id=account_id, api_key_id=key_id, role="user", spend_cap=spend_cap)


async def account_money(db: Database, account_id: uuid.UUID) -> tuple[int, int]:
    row = await db.fetchrow("SELECT credits_total, credits_held FROM accounts WHERE id = $1", account_id)
    assert row is not None
    return row["credits_total"], row["credits_held"]


async def attempt_holds(db: Database, principals: list[Principal], amount: int) -> list[uuid.UUID | BaseException]:
    return await asyncio.gather(
        *(place_request_hold(db, p, amount, "batch test") for p in principals), return_exceptions=True
    )


async def settle(db: Database, principal: Principal, hold_id: uuid.UUID, request_id: uuid.UUID, charge: int) -> Any:
    return await settle_request(db, request_settlement(
        hold_id=hold_id, request_id=request_id, principal=principal, charge=charge, status="succeeded",
        source="chat.completion", model="batch-test", kind="text", provider=None, units={"tokens": 3},
        latency_ms=5,
    ))  # fmt: skip


async def test_concurrent_holds_on_one_account_place_exactly_the_affordable_ones(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    account = await make_account(credits="1")
    principal = await principal_of(db, account.id)
    batches_before = request_billing(db).counts["holds"]

    results = await attempt_holds(db, [principal] * 40, 300_000)  # 3 fit, 0.1 credit is left

    placed = [r for r in results if isinstance(r, uuid.UUID)]
    refused = [r for r in results if not isinstance(r, uuid.UUID)]
    assert len(placed) == 3
    assert len(refused) == 37
    assert request_billing(db).counts["holds"] > batches_before  # they did go in batches
    # Refused exactly as one hold alone is (the single-item statement, at low load).
    batches = dict(request_billing(db).counts)
    with pytest.raises(InsufficientCredits) as alone:
        await place_request_hold(db, principal, 300_000, "alone")
    assert request_billing(db).counts == batches
    assert all(type(r) is InsufficientCredits and str(r) == str(alone.value) for r in refused)
    assert "needs up to 0.3 credits and 0.1 are available" in str(alone.value)
    assert await account_money(db, account.id) == (1_000_000, 900_000)
    holds = await db.fetchval("SELECT count(*) FROM holds WHERE account_id = $1 AND status = 'pending'", account.id)
    assert holds == 3
    assert set(placed) == set(await db.fetchval("SELECT array_agg(id) FROM holds WHERE account_id = $1", account.id))


async def test_concurrent_holds_across_accounts_in_batches_larger_than_one_statement(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    credits = {"0.5": 5, "1.2": 12, "0": 0, "2": 20}  # credits -> how many holds of 0.1 fit
    accounts = [await make_account(credits=c) for c in credits]
    principals = [await principal_of(db, a.id) for a in accounts]
    interleaved = [principals[n % len(principals)] for n in range(4 * 25)]  # 100 attempts: > 3 statements

    results = await attempt_holds(db, interleaved, 100_000)

    for principal, fit in zip(principals, credits.values(), strict=True):
        mine = [r for p, r in zip(interleaved, results, strict=True) if p is principal]
        assert sum(isinstance(r, uuid.UUID) for r in mine) == fit
        assert all(isinstance(r, InsufficientCredits | uuid.UUID) for r in mine)
        total, held = await account_money(db, principal.account_id)
        assert held == fit * 100_000
        assert total - held >= 0


async def test_a_suspended_account_in_a_batch_with_others(services: Services, make_account: AccountFactory) -> None:
    db = services.db
    good, suspended, gone = [await make_account(credits="1") for _ in range(3)]
    await db.execute("UPDATE accounts SET status = 'suspended' WHERE id = $1", suspended.id)
    await db.execute("UPDATE accounts SET status = 'deleted' WHERE id = $1", gone.id)
    principals = [await principal_of(db, a.id) for a in (good, suspended, gone)]

    results = await attempt_holds(db, principals * 4, 100_000)

    assert all(isinstance(r, uuid.UUID) for r in results[0::3])
    for r in results[1::3]:
        assert isinstance(r, PermissionDenied) and r.code == "account_suspended"
    for r in results[2::3]:
        assert isinstance(r, PermissionDenied) and r.code == "account_deleted"
    assert await account_money(db, good.id) == (1_000_000, 400_000)
    assert await account_money(db, suspended.id) == (1_000_000, 0)


async def test_concurrent_settlements_with_duplicates_charge_each_request_once(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    accounts = [await make_account(credits="10") for _ in range(3)]
    principals = [await principal_of(db, a.id) for a in accounts]
    requests = []  # (principal, hold, request id, charge)
    for n in range(30):
        principal = principals[n % 3]
        hold_id = await place_request_hold(db, principal, 500_000, "batch test")
        requests.append((principal, hold_id, uuid7(), 0 if n % 5 == 0 else 100_000 + n))
    batches_before = request_billing(db).counts["settlements"]

    # Each request settled three times at once (the same request's settlements racing: success vs client gone).
    results = await asyncio.gather(*(settle(db, p, h, r, c) for p, h, r, c in requests * 3))
    again = await asyncio.gather(*(settle(db, p, h, r, c) for p, h, r, c in requests))

    assert request_billing(db).counts["settlements"] > batches_before
    assert again == [None] * 30
    for n, (_, _, _, charge) in enumerate(requests):
        outcomes = [results[n], results[n + 30], results[n + 60]]
        assert sorted(outcomes, key=lambda x: x is None) == [charge, None, None]
    for principal in principals:
        mine = [c for p, _, _, c in requests if p is principal]
        assert await account_money(db, principal.account_id) == (10_000_000 - sum(mine), 0)
        charges = await db.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'", principal.account_id
        )
        assert charges == sum(1 for c in mine if c)
        usage = await db.fetch(
            "SELECT credits, units FROM usage_records WHERE account_id = $1 AND model = 'batch-test'",
            principal.account_id,
        )
        assert sorted(r["credits"] for r in usage) == sorted(mine)
        key = await db.fetchrow("SELECT spent, cap_held FROM api_keys WHERE id = $1", principal.api_key_id)
        assert key is not None and (key["spent"], key["cap_held"]) == (sum(mine), 0)


async def test_settlements_of_a_capped_key_in_one_batch(services: Services, make_account: AccountFactory) -> None:
    db = services.db
    account = await make_account(credits="10")
    principal = await principal_of(db, account.id, spend_cap=3_000_000)
    holds = await asyncio.gather(*(place_request_hold(db, principal, 400_000, "capped") for _ in range(7)))
    key = await db.fetchrow("SELECT spent, cap_held FROM api_keys WHERE id = $1", principal.api_key_id)
    assert key is not None and (key["spent"], key["cap_held"]) == (0, 2_800_000)

    charged = await asyncio.gather(*(settle(db, principal, h, uuid7(), 50_000 * n) for n, h in enumerate(holds)))

    assert charged == [50_000 * n for n in range(7)]
    key = await db.fetchrow("SELECT spent, cap_held FROM api_keys WHERE id = $1", principal.api_key_id)
    assert key is not None and (key["spent"], key["cap_held"]) == (1_050_000, 0)
    left = await db.fetchval("SELECT count(*) FROM api_key_holds WHERE api_key_id = $1", principal.api_key_id)
    assert left == 0
    assert await account_money(db, account.id) == (10_000_000 - 1_050_000, 0)


async def test_a_failing_item_fails_only_itself(services: Services, make_account: AccountFactory) -> None:
    """A batch PostgreSQL refuses as a whole (here: an invalid item) is billed one by one instead."""
    db = services.db
    account = await make_account(credits="2")
    principal = await principal_of(db, account.id)
    fallbacks = request_billing(db).counts["fallbacks"]

    # The first call of a burst goes alone; the others are batched, the invalid one with them.
    ok = [place_request_hold(db, principal, 100_000, "ok") for _ in range(8)]
    placed = await asyncio.gather(*ok[:2], place_request_hold(db, principal, -5, "negative"), *ok[2:],
                                  return_exceptions=True)  # fmt: skip
    assert isinstance(placed[2], asyncpg.CheckViolationError)
    holds = [h for h in placed if isinstance(h, uuid.UUID)]
    assert len(holds) == 8
    assert request_billing(db).counts["fallbacks"] == fallbacks + 1
    assert await account_money(db, account.id) == (2_000_000, 800_000)

    settled = await asyncio.gather(
        settle(db, principal, holds[1], uuid7(), 50_000),
        settle(db, principal, holds[0], uuid7(), -1),  # ledger_resolve_hold refuses a negative charge
        *(settle(db, principal, h, uuid7(), 50_000) for h in holds[2:]),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(settled[1], asyncpg.CheckViolationError)
    assert [settled[0], *settled[2:]] == [50_000] * 7
    assert request_billing(db).counts["fallbacks"] == fallbacks + 2
    assert await account_money(db, account.id) == (2_000_000 - 350_000, 100_000)
    assert await settle(db, principal, holds[0], uuid7(), 0) == 0
    assert await account_money(db, account.id) == (2_000_000 - 350_000, 0)


class FlakyPool:
    """The pool, but its first ``failures`` batch statements fail with a deadlock."""

    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        self.pool = pool
        self.failures = failures

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if self.failures > 0:
            self.failures -= 1
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await self.pool.fetch(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


@pytest.mark.parametrize("failures", [1, 3])
async def test_a_deadlocked_batch_is_retried_then_billed_one_by_one(
    services: Services, make_account: AccountFactory, failures: int
) -> None:
    db = services.db
    account = await make_account(credits="1")
    principal = await principal_of(db, account.id)
    batcher = billing.RequestBilling(db)
    batcher.pool = FlakyPool(db.pool, failures)
    items = [NewHold(account_id=account.id, amount=300_000, description="flaky") for _ in range(5)]

    results = await asyncio.gather(*(batcher.holds.submit(item) for item in items), return_exceptions=True)

    assert sum(isinstance(r, uuid.UUID) for r in results) == 3
    assert sum(isinstance(r, InsufficientCredits) for r in results) == 2
    assert batcher.counts["retries"] == min(failures, BATCH_RETRIES)
    assert batcher.counts["fallbacks"] == (1 if failures > BATCH_RETRIES else 0)
    assert await account_money(db, account.id) == (1_000_000, 900_000)
    for hold_id in [r for r in results if isinstance(r, uuid.UUID)]:
        assert await settle(db, principal, hold_id, uuid7(), 0) == 0
    assert await account_money(db, account.id) == (1_000_000, 0)


async def test_one_accounts_holds_in_a_batch_update_its_row_once(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    account, other = await make_account(credits="1"), await make_account(credits="1")
    holds = [NewHold(account_id=a.id, amount=100_000, description="row") for a in (account, other) * 5]
    # Row updates of accounts counted by this backend (pending statistics: earlier transactions' too, so a delta).
    updates = "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'accounts'"

    async with db.transaction() as conn:
        before = await conn.fetchval(updates)
        placed = await place_holds(conn, holds)
        after = await conn.fetchval(updates)

    assert placed == [hold.id for hold in holds]
    assert after - before == 2  # one per account, not one per hold
    assert await account_money(db, account.id) == (1_000_000, 500_000)
    assert await account_money(db, other.id) == (1_000_000, 500_000)
