"""The ledger on its own: lots spent earliest-expiry first, expiry, idempotent movements."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from shared.infra.db import Database
from shared.infra.errors import InsufficientCredits
from shared.infra.ids import uuid7
from shared.ledger import NewHold, expire_lots, get_balance, grant, place_hold, post_hold, void_hold
from shared.services import Services
from tests.conftest import AccountFactory

C = 1_000_000  # one credit in micro-credits


async def make_task(db: Database, account_id: uuid.UUID, held: int) -> uuid.UUID:
    """A bare task row for a hold to belong to (the ledger tests bypass the API)."""
    task_id = uuid7()
    await db.execute(
        """
        INSERT INTO tasks (id, account_id, model, kind, status, credits_held, deadline_at)
        VALUES ($1, $2, 'sdxl', 'image', 'queued', $3, now() + interval '1 hour')
        """,
        task_id,
        account_id,
        held,
    )
    return task_id


async def finish(db: Database, task_id: uuid.UUID, status: str, charged: int = 0) -> None:
    await db.execute("UPDATE tasks SET status = $2, credits_charged = $3 WHERE id = $1", task_id, status, charged)


async def lots(db: Database, account_id: uuid.UUID) -> dict[str, tuple[int, int]]:
    rows = await db.fetch("SELECT reference, remaining, reserved FROM credit_lots WHERE account_id = $1", account_id)
    return {row["reference"]: (row["remaining"], row["reserved"]) for row in rows}


async def test_holds_draw_on_the_lot_that_expires_first(services: Services, make_account: AccountFactory) -> None:
    db = services.db
    account = await make_account(credits="0")
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as conn:
        await grant(conn, account_id=account.id, amount=5 * C, source="manual", reference="forever",
                    idempotency_key=f"t:{account.id}:a")  # fmt: skip
        await grant(conn, account_id=account.id, amount=3 * C, source="promo", reference="next-week",
                    expires_at=now + dt.timedelta(days=7), idempotency_key=f"t:{account.id}:b")  # fmt: skip
        await grant(conn, account_id=account.id, amount=2 * C, source="promo", reference="tomorrow",
                    expires_at=now + dt.timedelta(days=1), idempotency_key=f"t:{account.id}:c")  # fmt: skip
    task_id = await make_task(db, account.id, 4 * C)
    async with db.transaction() as conn:
        await place_hold(conn, NewHold(account_id=account.id, amount=4 * C, task_id=task_id))
    assert await lots(db, account.id) == {
        "forever": (5 * C, 0),
        "next-week": (3 * C, 2 * C),
        "tomorrow": (2 * C, 2 * C),
    }

    async with db.transaction() as conn:
        resolution = await post_hold(conn, task_id=task_id, charge=3 * C)
    await finish(db, task_id, "succeeded", 3 * C)
    assert resolution is not None
    assert resolution.charged == 3 * C
    assert await lots(db, account.id) == {"forever": (5 * C, 0), "next-week": (2 * C, 0), "tomorrow": (0, 0)}
    async with db.connection() as conn:
        balance = await get_balance(conn, account.id)
    assert (balance.available, balance.held) == (7 * C, 0)

    async with db.transaction() as conn:  # a replayed settlement changes nothing
        assert await post_hold(conn, task_id=task_id, charge=3 * C) is None
        assert await void_hold(conn, task_id=task_id) is None
    assert await lots(db, account.id) == {"forever": (5 * C, 0), "next-week": (2 * C, 0), "tomorrow": (0, 0)}


async def test_a_charge_never_exceeds_the_hold(services: Services, make_account: AccountFactory) -> None:
    account = await make_account(credits="10")
    task_id = await make_task(services.db, account.id, 2 * C)
    async with services.db.transaction() as conn:
        await place_hold(conn, NewHold(account_id=account.id, amount=2 * C, task_id=task_id))
        resolution = await post_hold(conn, task_id=task_id, charge=5 * C)
    await finish(services.db, task_id, "succeeded", 2 * C)
    assert resolution is not None
    assert resolution.charged == 2 * C
    async with services.db.connection() as conn:
        assert (await get_balance(conn, account.id)).available == 8 * C


async def test_grants_are_idempotent(services: Services, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    key = f"grant:test:{account.id}"
    async with services.db.transaction() as conn:
        first = await grant(conn, account_id=account.id, amount=C, source="manual", idempotency_key=key)
        second = await grant(conn, account_id=account.id, amount=C, source="manual", idempotency_key=key)
    assert first is not None
    assert second is None
    async with services.db.connection() as conn:
        assert (await get_balance(conn, account.id)).available == C


async def test_expired_lots_stop_counting_and_cannot_be_spent(services: Services, make_account: AccountFactory) -> None:
    db = services.db
    account = await make_account(credits="0")
    async with db.transaction() as conn:
        await grant(conn, account_id=account.id, amount=3 * C, source="promo", reference="old",
                    expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
                    idempotency_key=f"t:{account.id}:old")  # fmt: skip
    # Not swept yet: the credits still count in the total but a hold cannot use them.
    task_id = await make_task(db, account.id, C)
    with pytest.raises(InsufficientCredits):
        async with db.transaction() as conn:
            await place_hold(conn, NewHold(account_id=account.id, amount=C, task_id=task_id))
    async with db.transaction() as conn:
        expired = await expire_lots(conn)
    assert expired >= 3 * C
    async with db.transaction() as conn:
        assert await expire_lots(conn) == 0  # nothing left to expire: a second sweep is a no-op
    async with db.connection() as conn:
        balance = await get_balance(conn, account.id)
    assert (balance.available, balance.held) == (0, 0)
    kinds = await db.fetch("SELECT kind, amount FROM ledger_entries WHERE account_id = $1 ORDER BY id", account.id)
    assert [(r["kind"], r["amount"]) for r in kinds] == [("grant", 3 * C), ("expire", 3 * C)]
    await db.execute("UPDATE tasks SET status = 'failed', credits_held = 0 WHERE id = $1", task_id)
    async with db.transaction() as conn:  # give the refused test task a resolved hold of zero
        await place_hold(conn, NewHold(account_id=account.id, amount=0, task_id=task_id))
        await void_hold(conn, task_id=task_id)


async def test_a_hold_on_a_lot_that_expires_before_settlement(services: Services, make_account: AccountFactory) -> None:
    """The held part survives the expiry sweep; what the settlement releases then expires at once."""
    db = services.db
    account = await make_account(credits="0")
    async with db.transaction() as conn:
        await grant(conn, account_id=account.id, amount=5 * C, source="promo", reference="soon",
                    expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                    idempotency_key=f"t:{account.id}:soon")  # fmt: skip
    task_id = await make_task(db, account.id, 2 * C)
    async with db.transaction() as conn:
        await place_hold(conn, NewHold(account_id=account.id, amount=2 * C, task_id=task_id))
    await db.execute(
        "UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE account_id = $1", account.id
    )
    async with db.transaction() as conn:
        assert await expire_lots(conn) == 3 * C  # only the unreserved part
    async with db.connection() as conn:
        balance = await get_balance(conn, account.id)
    assert (balance.available, balance.held) == (0, 2 * C)

    async with db.transaction() as conn:
        resolution = await post_hold(conn, task_id=task_id, charge=C // 2)
    await finish(db, task_id, "succeeded", C // 2)
    assert resolution is not None
    assert resolution.expired_on_release == 2 * C - C // 2
    async with db.connection() as conn:
        balance = await get_balance(conn, account.id)
    assert (balance.available, balance.held) == (0, 0)
    assert await lots(db, account.id) == {"soon": (0, 0)}
