"""Sign-up with email and password, email verification and password reset.

Nothing here tells a caller whether an address has an account: sign-up of a registered address answers like
any other sign-up and mails the owner a "you already have an account" message (with a reset link) instead
of a verification link; "resend" and "reset" answer the same whether or not the address is known. Every
path hashes a password or none, the same for known and unknown addresses, and mails go out in the
background, so timing does not tell either.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.accounts import mails, tokens
from shared.accounts.devices import DeviceCookies
from shared.accounts.passwords import check_password_policy, hash_password
from shared.accounts.rewards import mark_email_verified
from shared.accounts.service import normalize_email
from shared.accounts.sessions import SessionStore
from shared.accounts.settings import AuthSettings
from shared.infra.db import Connection, Database
from shared.infra.errors import InvalidInput
from shared.infra.ids import uuid7
from shared.infra.mail import Mail, Mailer
from shared.ratelimits.limiter import RateLimiter
from shared.ratelimits.signin_throttle import throttle_ip, throttle_mail


@dataclass(frozen=True, slots=True)
class AuthDeps:
    """What the account flows need from the process."""

    db: Database
    mailer: Mailer
    limiter: RateLimiter
    sessions: SessionStore
    settings: AuthSettings
    devices: DeviceCookies  # signs the sign-in device cookies


def invalid_token() -> InvalidInput:
    return InvalidInput("this link is invalid, has expired or was already used", code="invalid_token", param="token")


async def verification_mail(conn: Connection, settings: AuthSettings, account_id: uuid.UUID, email: str) -> Mail:
    token = await tokens.issue_token(
        conn, account_id=account_id, email=email, purpose=tokens.VERIFY_EMAIL, ttl_s=settings.verify_token_ttl_s
    )
    return mails.verify_email(settings, email, token)


async def _reset_token(conn: Connection, settings: AuthSettings, account_id: uuid.UUID, email: str) -> str:
    return await tokens.issue_token(
        conn, account_id=account_id, email=email, purpose=tokens.RESET_PASSWORD, ttl_s=settings.reset_token_ttl_s
    )


async def sign_up(deps: AuthDeps, *, email: str, password: str, age_confirmed: bool, ip: str) -> str:
    """Register an address (or mail its owner that it is registered). Returns the normalised address."""
    email = normalize_email(email)
    if age_confirmed is not True:
        raise InvalidInput(
            "you must confirm that you are at least 18 years old",
            code="age_confirmation_required",
            param="age_confirmed",
        )
    check_password_policy(password, email=email)
    await throttle_ip(deps.limiter, deps.settings, ip)
    await throttle_mail(deps.limiter, email)
    password_hash = await hash_password(password)
    mail: Mail | None = None
    async with deps.db.transaction() as conn:
        account_id = await conn.fetchval(
            """
            INSERT INTO accounts (id, email, password_hash, age_confirmed_at) VALUES ($1, $2, $3, now())
            ON CONFLICT (email) DO NOTHING RETURNING id
            """,
            uuid7(),
            email,
            password_hash,
        )
        if account_id is not None:
            mail = await verification_mail(conn, deps.settings, account_id, email)
        else:
            existing = await conn.fetchval("SELECT id FROM accounts WHERE email = $1", email)
            if existing is not None:
                token = await _reset_token(conn, deps.settings, existing, email)
                mail = mails.account_exists(deps.settings, email, token)
    if mail is not None:
        deps.mailer.dispatch(mail)
    return email


async def verify_email(deps: AuthDeps, token: str) -> tuple[uuid.UUID, str]:
    """Use a verification link. Returns (account id, address); the first verification grants the reward."""
    async with deps.db.transaction() as conn:
        consumed = await tokens.consume_token(conn, token, tokens.VERIFY_EMAIL)
        if consumed is None:
            raise invalid_token()
        await mark_email_verified(conn, consumed.account_id, deps.settings)
    return consumed.account_id, consumed.email


async def resend_verification(deps: AuthDeps, *, email: str, ip: str) -> str:
    """Mail a new verification link, if the address has an account still waiting for one."""

    async def compose(conn: Connection, account_id: uuid.UUID, address: str) -> Mail:
        return await verification_mail(conn, deps.settings, account_id, address)

    return await _mail_the_owner(deps, email, ip, "AND email_verified_at IS NULL AND status = 'active'", compose)


async def request_password_reset(deps: AuthDeps, *, email: str, ip: str) -> str:
    """Mail a password reset link, if the address has an account."""

    async def compose(conn: Connection, account_id: uuid.UUID, address: str) -> Mail:
        return mails.reset_password(
            deps.settings, address, await _reset_token(conn, deps.settings, account_id, address)
        )

    return await _mail_the_owner(deps, email, ip, "", compose)


async def _mail_the_owner(
    deps: AuthDeps,
    email: str,
    ip: str,
    condition: str,
    compose: Callable[[Connection, uuid.UUID, str], Awaitable[Mail]],
) -> str:
    """Throttle, then mail the account with this address (matching ``condition``) if there is one. Answers
    the same either way."""
    email = normalize_email(email)
    await throttle_ip(deps.limiter, deps.settings, ip)
    await throttle_mail(deps.limiter, email)
    mail: Mail | None = None
    async with deps.db.transaction() as conn:
        account_id = await conn.fetchval(f"SELECT id FROM accounts WHERE email = $1 {condition}", email)
        if account_id is not None:
            mail = await compose(conn, account_id, email)
    if mail is not None:
        deps.mailer.dispatch(mail)
    return email


async def reset_password(deps: AuthDeps, *, token: str, password: str) -> uuid.UUID:
    """Use a reset link: set the new password, end every session, and (as the link proves the owner reads
    this address) mark the address verified."""
    async with deps.db.connection() as conn:
        target = await tokens.peek_token(conn, token, tokens.RESET_PASSWORD)
    if target is None:
        raise invalid_token()
    check_password_policy(password, email=target.email)
    password_hash = await hash_password(password)
    async with deps.db.transaction() as conn:
        consumed = await tokens.consume_token(conn, token, tokens.RESET_PASSWORD)
        if consumed is None:
            raise invalid_token()
        await conn.execute(
            "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE id = $1",
            consumed.account_id,
            password_hash,
        )
        await tokens.revoke_tokens(conn, consumed.account_id, tokens.RESET_PASSWORD)
        await mark_email_verified(conn, consumed.account_id, deps.settings)
    await deps.sessions.revoke_all(consumed.account_id)
    deps.mailer.dispatch(mails.password_changed(consumed.email))
    return consumed.account_id
