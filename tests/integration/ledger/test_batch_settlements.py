"""Settling a batch of holds in one statement (``ledger_resolve_holds``, used by the group commits of request
settlements and task completions) ends every hold exactly as settling them one by one does
(``ledger_resolve_hold``), while updating each account's row and each lot once."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from shared.accounts.keys import Principal
from shared.infra.db import Connection, Database
from shared.ledger import NewHold, expire_lots, grant, place_hold, place_holds
from shared.ledger.invariants import check_ledger
from shared.ledger.request_holds import request_settlement
from shared.ledger.settlement import HoldResolution, Settlement, settle_hold, settle_holds
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.ledger.planner import indexes_only

C = 1_000_000  # one credit in micro-credits
# (amount held, charge asked): partial charges across lots, a whole hold, a void, a charge above its hold (capped
# at it), a hold of nothing.
HOLDS = [(2 * C, C), (3 * C, 3 * C), (C, 0), (C // 2, 2 * C), (4 * C, C + 7), (0, 0), (C, C // 3)]


async def funded_account(db: Database, make_account: AccountFactory) -> tuple[Principal, list[uuid.UUID]]:
    """An account with three lots (one that will lapse while its holds are pending) and HOLDS placed on it."""
    account = await make_account(credits="0")
    key_id = await db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account.id)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as conn:
        for reference, amount, expires in (("lapsing", 3 * C, now + dt.timedelta(hours=1)),
                                           ("next-week", 4 * C, now + dt.timedelta(days=7)),
                                           ("forever", 6 * C, None)):  # fmt: skip
            await grant(conn, account_id=account.id, amount=amount, source="promo", reference=reference,
                        expires_at=expires, idempotency_key=f"t:{account.id}:{reference}")  # fmt: skip
    hold_ids = []
    for amount, _ in HOLDS:
        async with db.transaction() as conn:
            hold_ids.append(await place_hold(conn, NewHold(account_id=account.id, amount=amount, description="b")))
    return Principal(account_id=account.id, api_key_id=key_id, role="user"), hold_ids


def settlements(principal: Principal, hold_ids: list[uuid.UUID]) -> list[Settlement]:
    return [
        request_settlement(
            hold_id=hold_id,
            request_id=uuid.uuid4(),
            principal=principal,
            charge=charge,
            status="succeeded" if charge else "failed",
            source="chat.completion",
            model="batch-test",
            kind="text",
            provider="sim",
            units={"n": n},
            latency_ms=n,
        )
        for n, (hold_id, (_, charge)) in enumerate(zip(hold_ids, HOLDS, strict=True))
    ]


async def state(db: Database, account_id: uuid.UUID, hold_ids: list[uuid.UUID]) -> dict[str, Any]:
    """Everything the settlements wrote for the account, with ids replaced by the hold's position and the lot's
    reference, so that two accounts settled alike compare equal."""
    position = {hold_id: n for n, hold_id in enumerate(hold_ids)}
    lots = {row["id"]: row for row in await db.fetch("SELECT * FROM credit_lots WHERE account_id = $1", account_id)}
    account = await db.fetchrow("SELECT credits_total, credits_held FROM accounts WHERE id = $1", account_id)
    holds = await db.fetch("SELECT id, status, amount, charged FROM holds WHERE account_id = $1", account_id)
    allocations = await db.fetch("SELECT * FROM hold_allocations WHERE hold_id = ANY($1::uuid[])", hold_ids)
    entries = await db.fetch("SELECT * FROM ledger_entries WHERE account_id = $1 ORDER BY id", account_id)
    usage = await db.fetch("SELECT status, credits, units FROM usage_records WHERE account_id = $1", account_id)
    assert account is not None
    return {
        "account": tuple(account),
        "lots": {
            lot["reference"]: (lot["remaining"], lot["reserved"], lot["closed_at"] is None) for lot in lots.values()
        },
        "holds": sorted((position[h["id"]], h["status"], h["amount"], h["charged"]) for h in holds),
        "allocations": sorted(
            (position[a["hold_id"]], lots[a["lot_id"]]["reference"], a["amount"], a["charged"]) for a in allocations
        ),
        "entries": sorted(
            (
                position.get(e["hold_id"], -1),
                e["kind"],
                e["amount"],
                e["delta_total"],
                e["delta_held"],
                lots[e["lot_id"]]["reference"] if e["lot_id"] else None,
                e["description"],
            )
            for e in entries
        ),
        "usage": sorted((u["status"], u["credits"], u["units"]) for u in usage),
    }


def outcomes(resolutions: list[HoldResolution | None]) -> list[tuple[int, int, int] | None]:
    return [(r.amount, r.charged, r.expired_on_release) if r else None for r in resolutions]


async def counted_updates(conn: Connection) -> dict[str, int]:
    """Row updates this backend made so far (pending statistics: use a delta)."""
    rows = await conn.fetch(
        "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname IN ('accounts', 'credit_lots')"
    )
    return {row["relname"]: row["n_tup_upd"] for row in rows}


async def test_a_batch_settles_like_one_by_one_with_one_update_per_account_and_lot(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    alone, alone_holds = await funded_account(db, make_account)
    batched, batched_holds = await funded_account(db, make_account)
    # The earliest lot lapses while the holds are pending: the sweep takes its unreserved part, and what the
    # settlements release back to it expires then.
    await db.execute("UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE reference = 'lapsing'"
                     " AND account_id = ANY($1::uuid[])", [alone.account_id, batched.account_id])  # fmt: skip
    async with db.transaction() as conn:
        await expire_lots(conn)

    one_by_one = []
    for item in settlements(alone, alone_holds):
        async with db.transaction() as conn:
            one_by_one.append(await settle_hold(conn, item))
    async with db.transaction() as conn:
        before = await counted_updates(conn)
        together = await settle_holds(conn, settlements(batched, batched_holds))
        after = await counted_updates(conn)

    assert outcomes(together) == outcomes(one_by_one)
    assert [r.charged for r in together if r] == [min(amount, charge) for amount, charge in HOLDS]
    assert sum(r.expired_on_release for r in together if r) > 0  # the lapsed lot's release did expire
    assert await state(db, batched.account_id, batched_holds) == await state(db, alone.account_id, alone_holds)
    lots_touched = await db.fetchval(
        "SELECT count(DISTINCT lot_id) FROM hold_allocations WHERE hold_id = ANY($1::uuid[])", batched_holds
    )
    assert after["accounts"] - before["accounts"] == 1  # one update of the account row for the seven holds
    assert after["credit_lots"] - before["credit_lots"] == lots_touched
    assert await check_ledger(db) == []


async def test_a_batch_across_accounts_with_a_hold_settled_before(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    first, first_holds = await funded_account(db, make_account)
    second, second_holds = await funded_account(db, make_account)
    items = [item for pair in zip(settlements(first, first_holds), settlements(second, second_holds), strict=True)
             for item in pair]  # fmt: skip
    async with db.transaction() as conn:
        early = await settle_hold(conn, items[3])  # settled before the batch: the batch leaves it as it is

    async with db.transaction() as conn:
        before = await counted_updates(conn)
        resolved = await settle_holds(conn, items)
        after = await counted_updates(conn)
        assert await settle_holds(conn, items) == [None] * len(items)  # a replay changes nothing

    assert early is not None and resolved[3] is None
    assert all(r is not None for n, r in enumerate(resolved) if n != 3)
    assert after["accounts"] - before["accounts"] == 2
    for principal, holds in ((first, first_holds), (second, second_holds)):
        money = await db.fetchrow("SELECT credits_total, credits_held FROM accounts WHERE id = $1",
                                  principal.account_id)  # fmt: skip
        assert money is not None
        charged = sum(min(amount, charge) for amount, charge in HOLDS)
        assert (money["credits_total"], money["credits_held"]) == (13 * C - charged, 0)
        pending = await db.fetchval("SELECT count(*) FROM holds WHERE id = ANY($1::uuid[]) AND status = 'pending'",
                                    holds)  # fmt: skip
        assert pending == 0
    usage = await db.fetchval("SELECT count(*) FROM usage_records WHERE request_id = ANY($1::uuid[])",
                              [item.request_id for item in items])  # fmt: skip
    assert usage == len(items)  # one each: the early one's from its own settlement, none from the replay
    assert await check_ledger(db) == []


async def test_a_batch_settlement_reads_only_its_own_rows(services: Services, make_account: AccountFactory) -> None:
    """Its cost must not grow with the tables: a step that cannot look its rows up through an index (a join on
    an expression, say) reads every row of a table, in a sequential scan or a full index scan; this counts the
    rows the statement read. The other holds and the statistics that tell the planner about them live in the
    rolled-back transaction of ``indexes_only``."""
    db = services.db
    principal, hold_ids = await funded_account(db, make_account)
    crowd = await make_account(credits="1")
    tables = ["holds", "hold_allocations", "credit_lots", "accounts"]
    rows_read = """SELECT sum(seq_tup_read + idx_tup_fetch) FROM pg_stat_xact_user_tables
                   WHERE relname = ANY($1::text[])"""  # rows read by sequential scans and fetched through indexes
    async with indexes_only(services.settings) as conn:
        for _ in range(10):  # other holds, so that reading them all shows
            await place_holds(conn, [NewHold(account_id=crowd.id, amount=1, description="crowd") for _ in range(60)])
        await conn.execute("ANALYZE holds, hold_allocations")
        before = await conn.fetchval(rows_read, tables)
        resolved = await settle_holds(conn, settlements(principal, hold_ids))
        read = await conn.fetchval(rows_read, tables) - before
    async with db.transaction() as done:  # leave no pending hold behind
        await settle_holds(done, settlements(principal, hold_ids))
    assert all(r is not None for r in resolved)
    # Each hold's own rows, its allocations, lots and account, and the foreign-key checks of what it writes: about
    # twenty; reading all the crowd's holds would be 600 more.
    assert read < 40 * len(hold_ids)
