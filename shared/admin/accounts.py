"""Operators on accounts: search, detail, credit adjustments with a reason, suspension, key revocation.

A credit adjustment is a ledger movement like any other: a grant is a ``manual`` lot (``grant`` entry), a
deduction takes unused credits back from the account's lots, earliest expiry first (``revoke`` entries, so
the invariant granted - charged - expired - revoked - refunded = available + held still holds). Each carries
the operator's reason and an idempotency key derived from the operation id, so a retried request (same
``operation_id``) moves nothing twice."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.accounts.erasure import find_account
from shared.accounts.keys import revoke_key
from shared.accounts.service import CreditBalance, get_account
from shared.admin.views import AccountDetail, AccountKey, AccountSummary, CreditAdjustment, RevokedKey
from shared.infra.db import Connection, Database
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import parse_uuid, uuid7
from shared.infra.pagination import Page, page_cursor
from shared.ledger import deduct_unused, get_balance, grant
from shared.ledger.money import Credits
from shared.staff import Actor, audit


def _summary(row: Any) -> AccountSummary:
    return AccountSummary(
        id=str(row["id"]),
        object="account",
        email=row["email"],
        role=row["role"],
        status=row["status"],
        balance=CreditBalance(
            available=Credits(row["credits_total"] - row["credits_held"]), held=Credits(row["credits_held"])
        ),
        created_at=row["created_at"],
    )


async def search_accounts(
    db: Database,
    *,
    query: str | None = None,
    status: str | None = None,
    role: str | None = None,
    limit: int = 20,
    after: str | None = None,
) -> Page[AccountSummary]:
    """Newest first. ``query`` is an account id, an API key prefix (``cdt_…``), an order id or part of an email
    address."""
    cursor = page_cursor(limit, after)
    text = (query or "").strip().lower()
    exact_id = parse_uuid(text) if text else None
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await db.fetch(
        """
        SELECT a.id, a.email, a.role, a.status, a.credits_total, a.credits_held, a.created_at
        FROM accounts a
        WHERE ($1::text = '' OR a.id = $2::uuid OR a.email LIKE $7
               OR EXISTS (SELECT 1 FROM api_keys k WHERE k.account_id = a.id AND lower(k.prefix) = $1)
               OR EXISTS (SELECT 1 FROM billing_orders o WHERE o.account_id = a.id AND o.id = $2::uuid))
          AND ($3::text IS NULL OR a.status = $3) AND ($4::text IS NULL OR a.role = $4)
          AND ($5::uuid IS NULL OR a.id < $5)
        ORDER BY a.id DESC LIMIT $6
        """,
        text, exact_id, status, role, cursor, limit + 1, pattern,
    )  # fmt: skip
    return Page.of(rows, limit, _summary)


async def account_detail(db: Database, ident: str) -> AccountDetail:
    """The account (as its owner sees it) with its API keys and task counts."""
    account_id = await find_account(db, ident)
    view = (await get_account(db, account_id)).public()
    keys = await db.fetch(
        """
        SELECT id, name, prefix, created_at, last_used_at, expires_at, revoked_at, spend_cap, spent
        FROM api_keys WHERE account_id = $1 AND deleted_at IS NULL ORDER BY id
        """,
        account_id,
    )
    counts = await db.fetch("SELECT status, count(*) AS n FROM tasks WHERE account_id = $1 GROUP BY status", account_id)
    api_keys = [
        AccountKey(
            id=str(k["id"]),
            name=k["name"],
            prefix=k["prefix"],
            created_at=k["created_at"],
            last_used_at=k["last_used_at"],
            expires_at=k["expires_at"],
            revoked=k["revoked_at"] is not None,
            spend_cap=Credits(k["spend_cap"]) if k["spend_cap"] is not None else None,
            spent=Credits(k["spent"]),
        )
        for k in keys
    ]
    tasks = {row["status"]: row["n"] for row in counts}
    return AccountDetail(**msgspec.structs.asdict(view), api_keys=api_keys, tasks=tasks)


async def adjust_credits(
    db: Database,
    ident: str,
    *,
    amount: int,
    reason: str,
    actor: Actor,
    operation_id: str | None = None,
) -> CreditAdjustment:
    """Grant (``amount`` > 0) or deduct (``amount`` < 0) micro-credits. A deduction takes only unused credits
    (not what pending holds have set aside) and is refused whole when there are not enough."""
    if amount == 0:
        raise InvalidInput("amount must not be zero", param="amount")
    reason = audit.check_reason(reason)
    account_id = await find_account(db, ident)
    op = operation_id or uuid7().hex
    if not (0 < len(op) <= 100 and op.replace("-", "").replace("_", "").isalnum()):
        raise InvalidInput("operation_id must be 1-100 letters, digits, - or _", param="operation_id")
    description = f"{reason} (by {actor.label})"
    key = f"admin:{account_id}:{op}"
    async with db.transaction() as conn:
        # Locks in the ledger's order: account, then lots.
        status = await conn.fetchval("SELECT status FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        if status == "deleted":
            raise Conflict("the account was deleted", code="account_deleted")
        if amount > 0:
            lot = await grant(
                conn, account_id=account_id, amount=amount, source="manual", idempotency_key=key,
                reference=f"admin:{op}", description=description,
            )  # fmt: skip
            applied = amount if lot is not None else 0
        else:
            applied = -await deduct_unused(
                conn, account_id=account_id, amount=-amount, idempotency_key=key, description=description
            )
        replayed = applied == 0
        if replayed:  # this operation id was applied before: report what it did then
            applied = await _applied_before(conn, account_id, key)
            if applied != amount:
                raise Conflict(
                    f"operation_id {op!r} was already used for {Credits(applied)} credits, not {Credits(amount)}",
                    code="operation_id_reused",
                    param="operation_id",
                )
        balance = await get_balance(conn, account_id)
        if not replayed:  # a replay changed nothing: no second audit entry
            action = "credits.grant" if amount > 0 else "credits.deduct"
            after = {"available": str(Credits(balance.available)), "held": str(Credits(balance.held))}
            before = {"available": str(Credits(balance.available - applied)), "held": str(Credits(balance.held))}
            await audit.record(conn, actor, action, "account", account_id, reason=reason, before=before,
                               after={**after, "amount": str(Credits(applied)), "operation_id": op})  # fmt: skip
    return CreditAdjustment(
        object="credit_adjustment",
        account_id=str(account_id),
        operation_id=op,
        amount=Credits(applied),
        replayed=replayed,
        reason=reason,
        balance=CreditBalance(available=Credits(balance.available), held=Credits(balance.held)),
    )


async def _applied_before(conn: Connection, account_id: uuid.UUID, key: str) -> int:
    """What the adjustment with this idempotency key moved: its grant (positive), or its deduction (negative: the
    'revoke' entries of every lot it took from, keyed ``key`` and ``key:<lot id>``)."""
    moved: int = await conn.fetchval(
        """
        SELECT COALESCE(sum(CASE WHEN kind = 'grant' THEN amount ELSE -amount END), 0) FROM ledger_entries
        WHERE account_id = $1 AND kind IN ('grant', 'revoke')
          AND (idempotency_key = $2 OR left(idempotency_key, length($2) + 1) = $2 || ':')
        """,
        account_id,
        key,
    )
    return moved


async def revoke_any_key(db: Database, redis: Redis, key_id: str, *, actor: Actor, reason: str = "") -> RevokedKey:
    """Revoke any account's API key (it stops working on every process at once)."""
    reason = audit.check_reason(reason, required=False)
    parsed = parse_uuid(key_id)
    row = await db.fetchrow("SELECT id, account_id, prefix FROM api_keys WHERE id = $1", parsed) if parsed else None
    if row is None:
        raise NotFound(f"API key {key_id} not found", code="api_key_not_found")
    revoked = await revoke_key(db, redis, row["id"])
    if revoked:
        before = {"account_id": str(row["account_id"]), "prefix": row["prefix"], "revoked": False}
        after = {"revoked": True}
        await audit.record(db, actor, "key.revoke", "api_key", row["id"], reason=reason, before=before, after=after)
    return RevokedKey(id=str(row["id"]), object="api_key", account_id=str(row["account_id"]), revoked=True,
                      already_revoked=not revoked)  # fmt: skip
