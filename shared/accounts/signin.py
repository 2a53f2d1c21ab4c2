"""Signing in with a password, and changing it.

Every password check (sign-in, password change, account deletion) goes through ``check_password``: throttled
per client IP and per address, or per device cookie for a browser that signed in to the address before (see
``shared.ratelimits.signin_throttle``). A wrong password, an unknown address and an account without a password
all answer ``invalid_credentials`` after the same amount of work. Only once the password is right does the
answer say more (unverified address, suspension).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.accounts import mails, second_factor
from shared.accounts.keys import Principal, account_suspended
from shared.accounts.passwords import check_password_policy, hash_password, needs_rehash, verify_password
from shared.accounts.second_factor import Challenge
from shared.accounts.service import normalize_email
from shared.accounts.sessions import Session
from shared.accounts.signup import AuthDeps
from shared.infra.errors import InvalidInput, PermissionDenied, Unauthenticated
from shared.infra.metrics import METRICS
from shared.ratelimits.signin_throttle import (
    PasswordAttempt,
    give_back_password_attempt,
    reserve_password_attempt,
)


@dataclass(frozen=True, slots=True)
class PasswordClient:
    """Where a password comes from: the client's IP and its browser's device cookie, if it sent one."""

    ip: str
    device_cookie: str | None = None


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # the session cookie's value
    session: Session
    device_cookie: str  # the browser's device cookie from now on


async def reserve_attempt(deps: AuthDeps, email: str, client: PasswordClient) -> PasswordAttempt:
    """Reserve a password check for ``email`` (normalised) under the sign-in throttle; 429 when its budget is
    spent (the device cookie's own budget for a browser that signed in to the address before)."""
    device_id = deps.devices.device_for(client.device_cookie, email)
    return await reserve_password_attempt(deps.limiter, deps.settings, email, ip=client.ip, device_id=device_id)


async def verify_attempt(deps: AuthDeps, attempt: PasswordAttempt, password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None never matches); a match gives the attempt back."""
    matches = await verify_password(password_hash, password)
    if matches:
        await give_back_password_attempt(deps.limiter, attempt)
    METRICS.inc("conduit_signin_attempts", {"outcome": "succeeded" if matches else "failed", "client": attempt.client})
    return matches


async def check_password(
    deps: AuthDeps, email: str, password_hash: str | None, password: str, client: PasswordClient
) -> bool:
    """``reserve_attempt`` then ``verify_attempt``, for a password hash already at hand."""
    return await verify_attempt(deps, await reserve_attempt(deps, email, client), password_hash, password)


async def sign_in(
    deps: AuthDeps, *, email: str, password: str, client: PasswordClient, user_agent: str
) -> SignedIn | Challenge:
    """Check the password and open a session; the browser's device cookie gets an entry for the address. An
    account with two-step sign-in gets a ``Challenge`` instead, which ``pass_second_factor`` completes."""
    email = normalize_email(email)
    attempt = await reserve_attempt(deps, email, client)  # before anything costs: a refused attempt costs no query
    row = await deps.db.fetchrow(
        "SELECT id, password_hash, status, suspension_reason, email_verified_at, totp_enabled_at FROM accounts"
        " WHERE email = $1",
        email,
    )
    password_hash = row["password_hash"] if row is not None else None
    if not await verify_attempt(deps, attempt, password_hash, password):
        raise Unauthenticated("wrong email or password", code="invalid_credentials")
    assert row is not None and password_hash is not None
    if row["status"] == "suspended":
        raise account_suspended(row["suspension_reason"])
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
    if row["totp_enabled_at"] is not None:
        return await second_factor.create_challenge(deps, row["id"], email)
    token, session = await deps.sessions.create(row["id"], ip=client.ip, user_agent=user_agent)
    return SignedIn(token, session, deps.devices.issue(client.device_cookie, email))


async def pass_second_factor(
    deps: AuthDeps, *, challenge: str, code: str, client: PasswordClient, user_agent: str
) -> tuple[SignedIn, Challenge]:
    """The second step of a sign-in: a TOTP or recovery code for the challenge's account opens the session (a
    session that passed a second factor), and the browser's device cookie gets its entry then."""
    passed = await second_factor.pass_challenge(deps, challenge, code)
    row = await deps.db.fetchrow("SELECT status, suspension_reason FROM accounts WHERE id = $1", passed.account_id)
    if row is not None and row["status"] == "suspended":
        raise account_suspended(row["suspension_reason"])
    if row is None or row["status"] != "active":
        raise Unauthenticated("wrong email or password", code="invalid_credentials")
    token, session = await deps.sessions.create(
        passed.account_id, ip=client.ip, user_agent=user_agent, second_factor=True
    )
    return SignedIn(token, session, deps.devices.issue(client.device_cookie, passed.email)), passed


async def change_password(
    deps: AuthDeps, principal: Principal, *, current_password: str, new_password: str, client: PasswordClient
) -> None:
    """Replace the password (the current one is required) and end the account's other sessions."""
    row = await deps.db.fetchrow("SELECT email, password_hash FROM accounts WHERE id = $1", principal.person)
    if row is None or row["email"] is None:
        raise Unauthenticated("your session has ended; sign in again", code="session_expired")
    if row["password_hash"] is None:
        raise InvalidInput(
            "this account has no password yet; set one with the password reset link (POST /v1/auth/password-reset)",
            code="no_password",
        )
    if not await check_password(deps, row["email"], row["password_hash"], current_password, client):
        raise InvalidInput("the current password is wrong", code="invalid_credentials", param="current_password")
    check_password_policy(new_password, email=row["email"])
    await deps.db.execute(
        "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1",
        principal.person,
        await hash_password(new_password),
    )
    await deps.sessions.revoke_all(principal.person, keep=principal.session_id)
    deps.mailer.dispatch(mails.password_changed(row["email"]))


async def account_has_password(deps: AuthDeps, account_id: uuid.UUID) -> bool:
    return bool(await deps.db.fetchval("SELECT password_hash IS NOT NULL FROM accounts WHERE id = $1", account_id))
