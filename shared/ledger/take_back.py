"""Taking back a lot's unused credits: refunds, revocations (a refund made outside Conduit, an operator's
deduction), and putting them back when a refund fails.

A lot's *unused* credits are ``remaining - reserved``: what is neither spent nor set aside by a pending hold
(nothing once the lot has expired). Only those can be taken back; the reserved part follows its hold (charged,
or released back to the lot). Callers lock in the usual order (their own row, e.g. the order, then account ->
lot), which ``lot_unused`` does for the account and the lot, so what it returns stays true until the
transaction ends.
"""

from __future__ import annotations

import uuid

from shared.infra.db import Connection
from shared.infra.errors import InsufficientCredits
from shared.infra.ids import uuid7
from shared.ledger.money import Credits

TAKE_BACK_KINDS = ("refund", "revoke")


def unused_credits_sql(lot: str) -> str:
    """The unused credits of the ``credit_lots`` row ``lot`` (an alias), as an SQL expression."""
    return (
        f"CASE WHEN {lot}.expires_at IS NOT NULL AND {lot}.expires_at <= now() THEN 0 "
        f"ELSE {lot}.remaining - {lot}.reserved END"
    )


async def lot_unused(conn: Connection, lot_id: uuid.UUID) -> int:
    """Lock the lot's account and the lot; return its unused credits (0 once it has expired)."""
    account_id = await conn.fetchval("SELECT account_id FROM credit_lots WHERE id = $1", lot_id)
    if account_id is None:
        raise ValueError(f"no credit lot {lot_id}")
    await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
    unused: int = await conn.fetchval(
        f"SELECT {unused_credits_sql('l')} FROM credit_lots l WHERE l.id = $1 FOR NO KEY UPDATE", lot_id
    )
    return unused


async def take_back(
    conn: Connection, *, lot_id: uuid.UUID, amount: int, kind: str, idempotency_key: str, description: str = ""
) -> int:
    """Remove ``amount`` unused micro-credits from the lot (a 'refund' or 'revoke' entry). Returns the amount
    taken, or 0 when this idempotency key was used before. Raises ``ValueError`` if the lot has fewer unused
    credits than ``amount`` (nothing is changed then)."""
    if kind not in TAKE_BACK_KINDS:
        raise ValueError(f"kind must be one of {TAKE_BACK_KINDS}")
    if amount <= 0:
        raise ValueError("the amount to take back must be positive")
    unused = await lot_unused(conn, lot_id)  # locks account -> lot (already held if the caller asked first)
    if amount > unused:
        raise ValueError(f"lot {lot_id} has {unused} unused micro-credits, cannot take back {amount}")
    account_id = await conn.fetchval(
        """
        WITH entry AS (
            INSERT INTO ledger_entries
                (id, account_id, kind, amount, delta_total, delta_held, lot_id, idempotency_key, description)
            SELECT $1::uuid, account_id, $6::text, $3::bigint, -$3::bigint, 0, id, $4::text, $5::text
            FROM credit_lots WHERE id = $2
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING account_id
        ), lot AS (
            UPDATE credit_lots
            SET remaining = remaining - $3::bigint,
                closed_at = CASE WHEN remaining = $3::bigint THEN now() ELSE closed_at END
            WHERE id = $2 AND EXISTS (SELECT 1 FROM entry)
        )
        UPDATE accounts SET credits_total = credits_total - $3::bigint, updated_at = now()
        WHERE id = (SELECT account_id FROM entry)
        RETURNING id
        """,
        uuid7(), lot_id, amount, idempotency_key, description, kind,
    )  # fmt: skip
    return amount if account_id is not None else 0


async def deduct_unused(
    conn: Connection, *, account_id: uuid.UUID, amount: int, idempotency_key: str, description: str = ""
) -> int:
    """Take ``amount`` unused micro-credits back from the account's lots, earliest expiry first ('revoke'
    entries): all or nothing. Returns the amount, or 0 when this idempotency key was used before. Raises
    ``InsufficientCredits`` (nothing is changed) when the account has fewer unused credits. The caller has
    locked the account row."""
    # The first lot's entry carries the operation's own key (indexed), the others ``key:lot``.
    if await conn.fetchval("SELECT 1 FROM ledger_entries WHERE idempotency_key = $1", idempotency_key):
        return 0  # this operation was applied before
    lots = await conn.fetch(
        """
        SELECT id, remaining - reserved AS unused FROM credit_lots
        WHERE account_id = $1 AND closed_at IS NULL AND remaining > reserved
          AND (expires_at IS NULL OR expires_at > now())
        ORDER BY expires_at NULLS LAST, id FOR NO KEY UPDATE
        """,
        account_id,
    )
    unused = sum(lot["unused"] for lot in lots)
    if unused < amount:
        raise InsufficientCredits(
            f"the account has {Credits(unused)} unused credits; cannot deduct {Credits(amount)}",
            code="insufficient_credits",
            param="amount",
        )
    left = amount
    for index, lot in enumerate(lots):
        if left == 0:
            break
        part = min(left, lot["unused"])
        entry_key = idempotency_key if index == 0 else f"{idempotency_key}:{lot['id']}"
        await take_back(
            conn, lot_id=lot["id"], amount=part, kind="revoke", idempotency_key=entry_key, description=description
        )
        left -= part
    return amount


async def restore_to_lot(
    conn: Connection, *, lot_id: uuid.UUID, amount: int, idempotency_key: str, description: str = ""
) -> int:
    """Put back credits that ``take_back`` removed (e.g. a refund the payment provider refused), as an
    'adjust' entry. If the lot has expired meanwhile, the next expiry sweep expires them. Returns the amount
    restored, or 0 when this idempotency key was used before."""
    if amount <= 0:
        raise ValueError("the amount to restore must be positive")
    await lot_unused(conn, lot_id)  # lock account -> lot
    account_id = await conn.fetchval(
        """
        WITH entry AS (
            INSERT INTO ledger_entries
                (id, account_id, kind, amount, delta_total, delta_held, lot_id, idempotency_key, description)
            SELECT $1::uuid, account_id, 'adjust', $3::bigint, $3::bigint, 0, id, $4::text, $5::text
            FROM credit_lots WHERE id = $2
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING account_id
        ), lot AS (
            UPDATE credit_lots SET remaining = remaining + $3::bigint, closed_at = NULL
            WHERE id = $2 AND EXISTS (SELECT 1 FROM entry)
        )
        UPDATE accounts SET credits_total = credits_total + $3::bigint, updated_at = now()
        WHERE id = (SELECT account_id FROM entry)
        RETURNING id
        """,
        uuid7(), lot_id, amount, idempotency_key, description,
    )  # fmt: skip
    return amount if account_id is not None else 0
