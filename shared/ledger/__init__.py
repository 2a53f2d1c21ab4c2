"""The credit ledger: lots, holds and append-only entries.

Every function takes a connection that is already inside a transaction, so callers compose a money
movement with the state change it belongs to (a task's status, an order's payment) atomically.

Rules that keep this correct under concurrency:
* Locks are always taken in the order hold -> account -> lots, so no two transactions can deadlock.
* "available >= 0" is enforced by PostgreSQL: the hold is placed by a conditional UPDATE on the account
  row (re-checked after any lock wait) and backed by CHECK constraints on accounts and lots. Placing a
  hold is the hot path of every submit, so it is one call of the ``ledger_place_hold`` SQL function.
* Each movement writes a ledger entry with a unique idempotency key; resolving a hold is a
  compare-and-set on its status, so a replay changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from shared.infra.db import Connection
from shared.infra.errors import InsufficientCredits, PermissionDenied
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


@dataclass(frozen=True, slots=True)
class HoldResolution:
    hold_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    charged: int
    expired_on_release: int


_INSERT_ENTRY = """
INSERT INTO ledger_entries
    (id, account_id, kind, amount, delta_total, delta_held, lot_id, hold_id, task_id, idempotency_key, description)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


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
    """Create a lot of ``amount`` micro-credits. Returns the lot id, or None if this grant already happened."""
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


async def place_hold(
    conn: Connection,
    *,
    account_id: uuid.UUID,
    amount: int,
    task_id: uuid.UUID | None = None,
    description: str = "",
) -> uuid.UUID:
    """Set ``amount`` aside from the account's lots, earliest expiry first. Raises ``InsufficientCredits``.

    Runs ``ledger_place_hold`` (migration m0003) in one round trip. The caller's transaction must also
    create whatever the hold is for (e.g. the task row)."""
    hold_id = uuid7()
    async with hold_errors(amount):
        await conn.execute(
            "SELECT ledger_place_hold($1, $2, $3, $4, $5, $6)",
            hold_id, account_id, amount, task_id, uuid7(), description,
        )  # fmt: skip
    return hold_id


@contextlib.asynccontextmanager
async def hold_errors(amount: int) -> AsyncIterator[None]:
    """Turn ``ledger_place_hold``'s SQLSTATEs into domain errors (for callers that embed the call)."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        error = hold_refusal(getattr(exc, "sqlstate", None), getattr(exc, "detail", None) or "", amount)
        if error is None:
            raise
        raise error from None


def hold_refusal(state: str | None, detail: str, amount: int) -> Exception | None:
    """The domain error of a refused hold: SQLSTATE CD402 (insufficient; detail = spendable micro-credits) or
    CD403 (account not active; detail = its status). None for any other state."""
    if state == "CD402":
        return InsufficientCredits(_insufficient_message(int(detail or 0), amount))
    if state == "CD403":
        if detail == "suspended":
            return PermissionDenied("this account is suspended; contact support", code="account_suspended")
        return PermissionDenied("this account no longer exists", code="account_deleted")
    return None


async def post_hold(
    conn: Connection,
    *,
    charge: int,
    task_id: uuid.UUID | None = None,
    hold_id: uuid.UUID | None = None,
    description: str = "",
) -> HoldResolution | None:
    """Charge ``charge`` (capped at the hold) and release the rest. The hold is named by its id or its task's.
    None if it was already resolved."""
    return await _resolve_hold(conn, task_id, hold_id, charge=charge, status="posted", description=description)


async def void_hold(
    conn: Connection, *, task_id: uuid.UUID | None = None, hold_id: uuid.UUID | None = None, description: str = ""
) -> HoldResolution | None:
    """Release the whole hold. None if it was already resolved."""
    return await _resolve_hold(conn, task_id, hold_id, charge=0, status="voided", description=description)


async def _resolve_hold(
    conn: Connection,
    task_id: uuid.UUID | None,
    hold_id: uuid.UUID | None,
    *,
    charge: int,
    status: str,
    description: str,
) -> HoldResolution | None:
    """One call of ``ledger_resolve_hold`` (migration m0004): the status compare-and-set, the charge drawn from
    the hold's lots earliest-expiry first, the rest released (and expired if its lot lapsed meanwhile)."""
    if charge < 0:
        raise ValueError("a charge cannot be negative")
    if (task_id is None) == (hold_id is None):
        raise ValueError("name the hold by exactly one of task_id and hold_id")
    row = await conn.fetchrow(
        "SELECT * FROM ledger_resolve_hold($1, $2, $3, $4, $5, $6, $7)",
        hold_id, task_id, charge, status, description, uuid7(), uuid7(),
    )  # fmt: skip
    if row is None:
        return None  # resolved before: a replay changes nothing
    return HoldResolution(row["hold_id"], row["account_id"], row["amount"], row["charged"], row["expired"])


async def expire_lots(conn: Connection, *, limit: int = 500) -> int:
    """Expire the unreserved remainder of lots past their expiry. Returns how many credits expired.

    The reserved part stays until its hold resolves (``_resolve_hold`` expires it then)."""
    lots = await conn.fetch(
        """
        SELECT id, account_id FROM credit_lots
        WHERE remaining > reserved AND expires_at IS NOT NULL AND expires_at <= now()
        ORDER BY expires_at LIMIT $1
        """,
        limit,
    )
    expired_total = 0
    for lot in sorted(lots, key=lambda r: (r["account_id"], r["id"])):
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", lot["account_id"])
        part = await conn.fetchval(
            "SELECT remaining - reserved FROM credit_lots WHERE id = $1 AND expires_at <= now() FOR UPDATE",
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
            _INSERT_ENTRY,
            uuid7(), lot["account_id"], "expire", part, -part, 0, lot["id"], None, None,
            f"expire:{lot['id']}", "credits expired",
        )  # fmt: skip
        expired_total += part
    return expired_total


def _insufficient_message(available: int, needed: int) -> str:
    from shared.ledger.money import Credits

    return (
        f"insufficient credits: this request needs up to {Credits(needed)} credits "
        f"and {Credits(max(available, 0))} are available"
    )


# -- Taking back a lot's unused credits: refunds and revocations (billing) -----------------------------------
#
# A lot's *unused* credits are ``remaining - reserved``: what is neither spent nor set aside by a pending
# hold. Only those can be taken back; the reserved part follows its hold (charged, or released back to
# the lot). Callers lock in the usual order (their own row, e.g. the order, then account -> lot), which
# ``lot_unused`` does for the account and the lot, so what it returns stays true until the transaction ends.

TAKE_BACK_KINDS = ("refund", "revoke")


async def lot_unused(conn: Connection, lot_id: uuid.UUID) -> int:
    """Lock the lot's account and the lot; return its unused credits (0 once it has expired)."""
    account_id = await conn.fetchval("SELECT account_id FROM credit_lots WHERE id = $1", lot_id)
    if account_id is None:
        raise ValueError(f"no credit lot {lot_id}")
    await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
    unused: int = await conn.fetchval(
        """
        SELECT CASE WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 0 ELSE remaining - reserved END
        FROM credit_lots WHERE id = $1 FOR UPDATE
        """,
        lot_id,
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


async def upcoming_expiries(conn: Connection, account_id: uuid.UUID, *, limit: int = 20) -> list[asyncpg.Record]:
    """The account's lots that will expire, soonest first: ``lot_id, source, remaining, expires_at``."""
    return await conn.fetch(
        """
        SELECT id AS lot_id, source, remaining, expires_at FROM credit_lots
        WHERE account_id = $1 AND remaining > 0 AND expires_at > now()
        ORDER BY expires_at, id LIMIT $2
        """,
        account_id,
        limit,
    )
