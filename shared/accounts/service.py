"""Accounts: creation (operator CLI for now), the account summary and the ledger listing."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from shared.accounts import ROLES
from shared.accounts.keys import NewKey, create_api_key
from shared.infra.db import Database, Record
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.infra.pagination import Page, page_cursor
from shared.ledger import Balance, get_balance, grant, upcoming_expiries
from shared.ledger.money import Credits


@dataclass(frozen=True, slots=True)
class CreatedAccount:
    account_id: uuid.UUID
    email: str
    api_key: NewKey
    credits: int


class CreditBalance(msgspec.Struct):
    """Credits ready to spend, and credits set aside by holds of requests in flight."""

    available: Credits
    held: Credits


class UpcomingExpiry(msgspec.Struct):
    """A lot of credits that will expire, with what is left of it."""

    lot_id: str
    source: str
    amount: Credits
    expires_at: dt.datetime


class Account(msgspec.Struct):
    id: str
    object: Literal["account"]
    email: str | None
    role: str
    status: str
    email_verified: bool
    balance: CreditBalance
    upcoming_expiries: list[UpcomingExpiry]
    created_at: dt.datetime
    has_password: bool | msgspec.UnsetType = msgspec.UNSET  # only in GET /v1/auth/session


class LedgerLot(msgspec.Struct):
    id: str
    source: str
    expires_at: dt.datetime | None


class LedgerEntry(msgspec.Struct):
    """One movement of credits, with its effect on the available and held balances."""

    id: str
    object: Literal["ledger_entry"]
    type: str
    amount: Credits
    available_change: Credits
    held_change: Credits
    task_id: str | None
    lot: LedgerLot | None
    description: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AccountView:
    id: uuid.UUID
    email: str | None
    role: str
    status: str
    created_at: dt.datetime
    balance: Balance
    email_verified: bool = False
    expiring: list[UpcomingExpiry] = field(default_factory=list)  # lots that will expire, soonest first

    def public(self) -> Account:
        return Account(
            id=str(self.id),
            object="account",
            email=self.email,
            role=self.role,
            status=self.status,
            email_verified=self.email_verified,
            balance=CreditBalance(available=Credits(self.balance.available), held=Credits(self.balance.held)),
            upcoming_expiries=self.expiring,
            created_at=self.created_at,
        )


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or any(c.isspace() for c in email):
        raise InvalidInput(f"not a valid email address: {email!r}", param="email")
    return email


async def create_account(
    db: Database, *, email: str, credits: int = 0, role: str = "user", key_name: str = "default"
) -> CreatedAccount:
    """Create an account with an API key and, if ``credits`` > 0, a manual grant of that many micro-credits."""
    email = normalize_email(email)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", param="role")
    if credits < 0:
        raise InvalidInput("credits cannot be negative", param="credits")
    account_id = uuid7()
    async with db.transaction() as conn:
        inserted = await conn.fetchval(
            # An operator vouches for the address: no verification mail, and no signup reward.
            """
            INSERT INTO accounts (id, email, role, email_verified_at) VALUES ($1, $2, $3, now())
            ON CONFLICT (email) DO NOTHING RETURNING id
            """,
            account_id,
            email,
            role,
        )
        if inserted is None:
            raise Conflict(f"an account with email {email} already exists", code="email_taken")
        key = await create_api_key(conn, account_id=account_id, name=key_name)
        if credits:
            await grant(
                conn,
                account_id=account_id,
                amount=credits,
                source="manual",
                idempotency_key=f"grant:initial:{account_id}",
                description="initial credits",
            )
    return CreatedAccount(account_id=account_id, email=email, api_key=key, credits=credits)


async def get_account(db: Database, account_id: uuid.UUID) -> AccountView:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT id, email, role, status, created_at, email_verified_at FROM accounts WHERE id = $1", account_id
        )
        if row is None:
            raise NotFound("account not found", code="account_not_found")
        balance = await get_balance(conn, account_id)
        expiring = [
            UpcomingExpiry(lot_id=str(lot["lot_id"]), source=lot["source"], amount=Credits(lot["remaining"]),
                           expires_at=lot["expires_at"])
            for lot in await upcoming_expiries(conn, account_id)
        ]  # fmt: skip
    return AccountView(
        id=row["id"],
        email=row["email"],
        role=row["role"],
        status=row["status"],
        created_at=row["created_at"],
        balance=balance,
        email_verified=row["email_verified_at"] is not None,
        expiring=expiring,
    )


async def list_ledger(
    db: Database, account_id: uuid.UUID, *, limit: int = 50, after: str | None = None
) -> Page[LedgerEntry]:
    """Newest first; each entry with its effect on the available and held balances."""
    cursor = page_cursor(limit, after)
    rows = await db.fetch(
        """
        SELECT e.id, e.kind, e.amount, e.delta_total, e.delta_held, e.lot_id, e.task_id, e.description,
               e.created_at, l.source AS lot_source, l.expires_at AS lot_expires_at
        FROM ledger_entries e LEFT JOIN credit_lots l ON l.id = e.lot_id
        WHERE e.account_id = $1 AND ($2::uuid IS NULL OR e.id < $2)
        ORDER BY e.id DESC LIMIT $3
        """,
        account_id,
        cursor,
        limit + 1,
    )
    return Page.of(rows, limit, _ledger_entry)


def _ledger_entry(row: Record) -> LedgerEntry:
    return LedgerEntry(
        id=str(row["id"]),
        object="ledger_entry",
        type=row["kind"],
        amount=Credits(row["amount"]),
        available_change=Credits(row["delta_total"] - row["delta_held"]),
        held_change=Credits(row["delta_held"]),
        task_id=str(row["task_id"]) if row["task_id"] else None,
        lot=(
            LedgerLot(id=str(row["lot_id"]), source=row["lot_source"], expires_at=row["lot_expires_at"])
            if row["lot_id"]
            else None
        ),
        description=row["description"],
        created_at=row["created_at"],
    )
