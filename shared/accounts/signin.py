"""Signing in with a password, and changing it.

Sign-in is throttled per client IP and per address (see ``shared.ratelimits.signin_throttle``); a wrong password,
an unknown address and an account without a password all answer ``invalid_credentials`` after the same
amount of work. Only once the password is right does the answer say more (unverified address, suspension).
"""

from __future__ import annotations

import uuid

from shared.accounts import mails
from shared.accounts.keys import Principal
from shared.accounts.passwords import check_password_policy, hash_password, needs_rehash, verify_password
from shared.accounts.service import normalize_email
from shared.accounts.sessions import Session
from shared.accounts.signup import AuthDeps
from shared.infra.errors import InvalidInput, PermissionDenied, Unauthenticated
from shared.ratelimits.signin_throttle import check_signin_failures, record_signin_failure, throttle_ip


async def sign_in(deps: AuthDeps, *, email: str, password: str, ip: str, user_agent: str) -> tuple[str, Session]:
    """Check the password and open a session. Returns (cookie token, session)."""
    email = normalize_email(email)
    await throttle_ip(deps.limiter, deps.settings, ip)
    await check_signin_failures(deps.limiter, deps.settings, email)
    row = await deps.db.fetchrow(
        "SELECT id, password_hash, status, email_verified_at FROM accounts WHERE email = $1", email
    )
    password_hash = row["password_hash"] if row is not None else None
    if not await verify_password(password_hash, password):
        await record_signin_failure(deps.limiter, deps.settings, email)
        raise Unauthenticated("wrong email or password", code="invalid_credentials")
    assert row is not None and password_hash is not None
    if row["status"] == "suspended":
        raise PermissionDenied("this account is suspended; contact support", code="account_suspended")
    if row["email_verified_at"] is None:
        raise PermissionDenied(
            "confirm your email address first: open the link we mailed you "
            "(POST /v1/auth/verify-email/resend sends it again)",
            code="email_not_verified",
        )
    if needs_rehash(password_hash):
        await deps.db.execute(
            "UPDATE accounts SET password_hash = $2 WHERE id = $1", row["id"], await hash_password(password)
        )
    return await deps.sessions.create(row["id"], ip=ip, user_agent=user_agent)


async def change_password(deps: AuthDeps, principal: Principal, *, current_password: str, new_password: str) -> None:
    """Replace the password (the current one is required) and end the account's other sessions."""
    row = await deps.db.fetchrow("SELECT email, password_hash FROM accounts WHERE id = $1", principal.account_id)
    if row is None or row["email"] is None:
        raise Unauthenticated("your session has ended; sign in again", code="session_expired")
    if row["password_hash"] is None:
        raise InvalidInput(
            "this account has no password yet; set one with the password reset link (POST /v1/auth/password-reset)",
            code="no_password",
        )
    await check_signin_failures(deps.limiter, deps.settings, row["email"])
    if not await verify_password(row["password_hash"], current_password):
        await record_signin_failure(deps.limiter, deps.settings, row["email"])
        raise InvalidInput("the current password is wrong", code="invalid_credentials", param="current_password")
    check_password_policy(new_password, email=row["email"])
    await deps.db.execute(
        "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1",
        principal.account_id,
        await hash_password(new_password),
    )
    await deps.sessions.revoke_all(principal.account_id, keep=principal.session_id)
    deps.mailer.dispatch(mails.password_changed(row["email"]))


async def account_has_password(deps: AuthDeps, account_id: uuid.UUID) -> bool:
    return bool(await deps.db.fetchval("SELECT password_hash IS NOT NULL FROM accounts WHERE id = $1", account_id))
