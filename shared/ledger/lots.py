"""Credit lots: grants make them, the expiry sweep expires what is left of them; the balance they add up to.

A lot is one grant (signup reward, promo code, purchase, operator's grant) with its own expiry. The account's
``credits_total`` is the sum of its lots' ``remaining``; ``reserved`` is what pending holds set aside of a lot.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from shared.infra.db import Connection
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS

LOT_SOURCES = ("signup", "promo", "purchase", "manual")


@dataclass(frozen=True, slots=True)
class Balance:
    available: int
    held: int

    @property
    def total(self) -> int:
        return self.available + self.held


async def get_balance(conn: Connection, account_id: uuid.UUID) -> Balance:
    row = await conn.fetchrow("SELECT credits_total, credits_held FROM accounts WHERE id = $1", account_id)
    if row is None:
        return Balance(available=0, held=0)
    return Balance(available=row["credits_total"] - row["credits_held"], held=row["credits_held"])


async def grant(
    conn: Connection,
    *,
    account_id: uuid.UUID,
    amount: int,
    source: str,
    idempotency_key: str,
    reference: str | None = None,
    expires_at: dt.datetime | None = None,
    description: str = "",
) -> uuid.UUID | None:
    """Create a lot of ``amount`` micro-credits. Returns the lot id, or None if this grant already happened
    (``granted_lot`` finds the lot it made then)."""
    if amount <= 0:
        raise ValueError("a grant must be positive")
    if source not in LOT_SOURCES:
        raise ValueError(f"unknown lot source {source!r}")
    lot_id = uuid7()
    # One statement: the entry claims the idempotency key; the lot and the balance follow only if it did.
    # (Foreign keys are checked at the end of the statement, so the entry may name the lot it creates.)
    row = await conn.fetchrow(
        """
        WITH entry AS (
            INSERT INTO ledger_entries
                (id, account_id, kind, amount, delta_total, delta_held, lot_id, idempotency_key, description)
            VALUES ($1, $2, 'grant', $3, $3, 0, $4, $5, $6)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id
        ), lot AS (
            INSERT INTO credit_lots (id, account_id, source, reference, amount, remaining, reserved, expires_at)
            SELECT $4, $2, $7, $8, $3, $3, 0, $9 FROM entry
            RETURNING id
        )
        UPDATE accounts SET credits_total = credits_total + $3, updated_at = now()
        WHERE id = $2 AND EXISTS (SELECT 1 FROM lot)
        RETURNING id
        """,
        uuid7(), account_id, amount, lot_id, idempotency_key, description, source, reference, expires_at,
    )  # fmt: skip
    if row is None:
        return None
    METRICS.inc("conduit_credits_granted", {"source": source}, amount / 1_000_000)
    return lot_id


async def granted_lot(conn: Connection, idempotency_key: str) -> uuid.UUID | None:
    """The lot that the grant with this idempotency key made (None if there was no such grant)."""
    lot_id: uuid.UUID | None = await conn.fetchval(
        "SELECT lot_id FROM ledger_entries WHERE idempotency_key = $1 AND kind = 'grant'", idempotency_key
    )
    return lot_id


async def expire_lots(conn: Connection, *, limit: int = 500) -> int:
    """Expire the unreserved remainder of lots past their expiry. Returns how many credits expired.

    The reserved part stays until its hold resolves (``ledger_resolve_hold`` expires it then)."""
    lots = await conn.fetch(
        """
        SELECT id, account_id FROM credit_lots
        WHERE closed_at IS NULL AND remaining > reserved AND expires_at IS NOT NULL AND expires_at <= now()
        ORDER BY expires_at LIMIT $1
        """,
        limit,
    )
    expired_total = 0
    for lot in sorted(lots, key=lambda r: (r["account_id"], r["id"])):
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", lot["account_id"])
        part = await conn.fetchval(
            "SELECT remaining - reserved FROM credit_lots WHERE id = $1 AND expires_at <= now() FOR NO KEY UPDATE",
            lot["id"],
        )
        if not part:
            continue  # another sweep got there first
        await conn.execute(
            """
            UPDATE credit_lots SET remaining = reserved, closed_at = CASE WHEN reserved = 0 THEN now() END
            WHERE id = $1
            """,
            lot["id"],
        )
        await conn.execute(
            "UPDATE accounts SET credits_total = credits_total - $2, updated_at = now() WHERE id = $1",
            lot["account_id"],
            part,
        )
        await conn.execute(
            """
            INSERT INTO ledger_entries
                (id, account_id, kind, amount, delta_total, delta_held, lot_id, idempotency_key, description)
            VALUES ($1, $2, 'expire', $3, -$3::bigint, 0, $4, $5, 'credits expired')
            """,
            uuid7(), lot["account_id"], part, lot["id"], f"expire:{lot['id']}",
        )  # fmt: skip
        expired_total += part
    return expired_total


async def upcoming_expiries(conn: Connection, account_id: uuid.UUID, *, limit: int = 20) -> list[asyncpg.Record]:
    """The account's lots that will expire, soonest first: ``lot_id, source, remaining, expires_at``."""
    return await conn.fetch(
        """
        SELECT id AS lot_id, source, remaining, expires_at FROM credit_lots
        WHERE account_id = $1 AND closed_at IS NULL AND remaining > 0 AND expires_at > now()
        ORDER BY expires_at, id LIMIT $2
        """,
        account_id,
        limit,
    )
