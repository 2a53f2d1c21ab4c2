"""Operators on an account's standing: suspension (with the reason its owner is told), its own rate limits,
its staff role, and a new verification mail. Each action is written to the staff audit log with the state
before and after."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from shared.accounts import ROLES
from shared.accounts.erasure import find_account, suspend
from shared.accounts.key_cache import publish_invalidation
from shared.accounts.key_management import UNSET
from shared.accounts.signup import AuthDeps, verification_mail
from shared.admin.views import AccountLimits, AccountRole, AccountStanding, VerificationMail
from shared.infra.db import Database
from shared.infra.errors import Conflict, InvalidInput
from shared.ratelimits.request_limits import set_account_limits
from shared.staff import Actor, audit


async def _standing(db: Database, account_id: object) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT status, suspension_reason, role, rate_limit_rpm, max_inflight_tasks FROM accounts WHERE id = $1",
        account_id,
    )
    return dict(row) if row is not None else {}


async def set_suspended(
    db: Database, redis: Redis, ident: str, *, suspended: bool, actor: Actor, reason: str = ""
) -> AccountStanding:
    """Suspend (a reason is required: the owner is told it) or reinstate an account."""
    reason = audit.check_reason(reason, required=suspended)
    account_id = await find_account(db, ident)
    before = await _standing(db, account_id)
    await suspend(db, redis, str(account_id), suspended=suspended, reason=reason)
    after = await _standing(db, account_id)
    action = "account.suspend" if suspended else "account.unsuspend"
    await audit.record(db, actor, action, "account", account_id, reason=reason,
                       before={"status": before["status"]}, after={"status": after["status"]})  # fmt: skip
    return AccountStanding(
        account_id=str(account_id), status=after["status"], suspension_reason=after["suspension_reason"]
    )


async def change_limits(
    db: Database,
    redis: Redis,
    ident: str,
    *,
    actor: Actor,
    rpm: int | object | None = UNSET,
    max_inflight: int | object | None = UNSET,
    reason: str = "",
) -> AccountLimits:
    """Set (None: back to the defaults) an account's requests per minute and tasks in flight."""
    reason = audit.check_reason(reason, required=False)
    account_id = await find_account(db, ident)
    before = await _standing(db, account_id)
    limits = await set_account_limits(db, redis, account_id, rpm=rpm, max_inflight=max_inflight)  # type: ignore[arg-type]
    keys = ("rate_limit_rpm", "max_inflight_tasks")
    await audit.record(db, actor, "account.limits", "account", account_id, reason=reason,
                       before={k: before[k] for k in keys}, after=limits)  # fmt: skip
    return AccountLimits(account_id=str(account_id), **limits)


async def set_role(db: Database, redis: Redis, ident: str, role: str, *, actor: Actor, reason: str = "") -> AccountRole:
    """Grant a staff role (``support``, ``admin``) or take it back (``user``); the account's keys and sessions
    see it on their next request."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of: {', '.join(ROLES)}", param="role")
    reason = audit.check_reason(reason, required=False)
    account_id = await find_account(db, ident)
    before = await _standing(db, account_id)
    if before.get("status") == "deleted":
        raise Conflict("the account was deleted", code="account_deleted")
    await db.execute("UPDATE accounts SET role = $2, updated_at = now() WHERE id = $1", account_id, role)
    await publish_invalidation(redis, f"account:{account_id}")
    await audit.record(db, actor, "staff.role", "account", account_id, reason=reason,
                       before={"role": before["role"]}, after={"role": role})  # fmt: skip
    return AccountRole(account_id=str(account_id), role=role)


async def resend_verification(deps: AuthDeps, ident: str, *, actor: Actor) -> VerificationMail:
    """Mail the owner a new verification link (an address not verified yet)."""
    account_id = await find_account(deps.db, ident)
    async with deps.db.transaction() as conn:
        row = await conn.fetchrow(
            "SELECT email, email_verified_at, status FROM accounts WHERE id = $1 FOR UPDATE", account_id
        )
        if row is None or row["email"] is None or row["status"] != "active":
            raise Conflict("only an active account with an address can be mailed", code="account_not_active")
        if row["email_verified_at"] is not None:
            raise Conflict("this address is verified already", code="email_already_verified")
        mail = await verification_mail(conn, deps.settings, account_id, row["email"])
        await audit.record(conn, actor, "account.resend_verification", "account", account_id)
    deps.mailer.dispatch(mail)
    return VerificationMail(account_id=str(account_id), object="verification_mail", sent_to=row["email"])
