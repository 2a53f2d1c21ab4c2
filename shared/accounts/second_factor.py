"""A second factor for signing in: TOTP codes (RFC 6238, an authenticator app) and single-use recovery codes.

Any person can turn it on from the dashboard's settings; staff must have it to use the console (their
sessions reach staff routes only once a second factor was passed, ``shared.staff.require_staff``).

* Enrolment: ``start_enrolment`` makes a secret kept in Redis for ``ENROLMENT_TTL_S``; ``confirm_enrolment``
  takes a code computed from it, stores the secret on the account and answers ten recovery codes, shown once
  (only their SHA-256 is stored: they are random, like API keys, so a fast hash is right).
* Sign-in: a right password on an account with TOTP opens no session; it answers a challenge token (Redis,
  ``CHALLENGE_TTL_S``) that ``POST /v1/auth/signin/second-factor`` exchanges, with a code, for the session.
* A TOTP code is accepted once: the account keeps the last time step used and an accepted code must be of a
  later step (one atomic UPDATE). A recovery code is removed in the statement that accepts it.
* Wrong codes draw on a budget per account (the sign-in failure rate: ``SIGNIN_MAX_FAILURES`` per
  ``SIGNIN_FAILURE_WINDOW_S``), reserved atomically before the check and given back when the code is right, as
  passwords are; the password's own throttle and device cookies are unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import msgspec
import pyotp
import segno

from shared.accounts.signup import AuthDeps
from shared.infra.errors import Conflict, InvalidInput
from shared.ratelimits.limiter import raise_if_limited
from shared.ratelimits.signin_throttle import signin_failures_rate

ISSUER = "Conduit"
ENROLMENT_TTL_S = 900
CHALLENGE_TTL_S = 300
RECOVERY_CODES = 10
ENROLMENT_KEY = "conduit:totp-enrolment:"
CHALLENGE_KEY = "conduit:signin-challenge:"
_TOTP_CODE = re.compile(r"^\d{6}$")
_RECOVERY_CODE = re.compile(r"^[0-9a-f]{10}$")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def wrong_code(param: str = "code") -> InvalidInput:
    return InvalidInput("that code is not right (or was already used)", code="invalid_code", param=param)


class SecondFactorStatus(msgspec.Struct):
    object: Literal["second_factor"]
    enabled: bool
    enabled_at: dt.datetime | None
    recovery_codes_left: int


class SecondFactorEnrolment(msgspec.Struct):
    """A new secret for an authenticator app: as text, as an ``otpauth://`` URI and as its QR code (SVG data URI)."""

    object: Literal["second_factor_enrolment"]
    secret: str
    otpauth_uri: str
    qr_svg: str
    expires_in_s: int


class SecondFactorChange(msgspec.Struct):
    """Two-step sign-in turned on or off; ``recovery_codes`` (shown this once) when new ones were made."""

    object: Literal["second_factor"]
    enabled: bool
    recovery_codes: list[str] | msgspec.UnsetType = msgspec.UNSET


async def status(deps: AuthDeps, account_id: uuid.UUID) -> SecondFactorStatus:
    row = await deps.db.fetchrow(
        "SELECT totp_enabled_at, cardinality(recovery_code_hashes) AS left FROM accounts WHERE id = $1", account_id
    )
    if row is None or row["totp_enabled_at"] is None:
        return SecondFactorStatus(object="second_factor", enabled=False, enabled_at=None, recovery_codes_left=0)
    return SecondFactorStatus(
        object="second_factor", enabled=True, enabled_at=row["totp_enabled_at"], recovery_codes_left=row["left"] or 0
    )


async def enabled(deps: AuthDeps, account_id: uuid.UUID) -> bool:
    return bool(await deps.db.fetchval("SELECT totp_enabled_at IS NOT NULL FROM accounts WHERE id = $1", account_id))


async def start_enrolment(deps: AuthDeps, account_id: uuid.UUID) -> SecondFactorEnrolment:
    """A new secret to add to an authenticator app (as text, an ``otpauth://`` URI and its QR code)."""
    row = await deps.db.fetchrow("SELECT email, totp_enabled_at FROM accounts WHERE id = $1", account_id)
    if row is None or row["email"] is None:
        raise Conflict("this account cannot sign in", code="account_deleted")
    if row["totp_enabled_at"] is not None:
        raise Conflict("two-step sign-in is already on; turn it off first to change apps", code="totp_enabled")
    secret = pyotp.random_base32()
    await deps.sessions.redis.set(ENROLMENT_KEY + str(account_id), secret, ex=ENROLMENT_TTL_S)
    uri = pyotp.TOTP(secret).provisioning_uri(name=row["email"], issuer_name=ISSUER)
    return SecondFactorEnrolment(
        object="second_factor_enrolment",
        secret=secret,
        otpauth_uri=uri,
        qr_svg=segno.make(uri, error="m").svg_data_uri(scale=4),
        expires_in_s=ENROLMENT_TTL_S,
    )


async def confirm_enrolment(deps: AuthDeps, account_id: uuid.UUID, code: str) -> SecondFactorChange:
    """Turn TOTP on with a code from the app; answers the recovery codes (shown this once)."""
    raw = await deps.sessions.redis.get(ENROLMENT_KEY + str(account_id))
    if raw is None:
        raise Conflict("start the set-up again: it expired", code="totp_enrolment_expired")
    secret = raw.decode() if isinstance(raw, bytes) else str(raw)
    async with _budget(deps, account_id) as budget:
        step = _matching_step(secret, code)
        if step is None:
            raise wrong_code()
        codes, hashes = _recovery_codes()
        done = await deps.db.fetchval(
            """
            UPDATE accounts SET totp_secret = $2, totp_enabled_at = now(), totp_last_step = $3,
                                recovery_code_hashes = $4, updated_at = now()
            WHERE id = $1 AND totp_enabled_at IS NULL RETURNING id
            """,
            account_id, secret, step, hashes,
        )  # fmt: skip
        if done is None:
            raise Conflict("two-step sign-in is already on", code="totp_enabled")
        budget.right()
    await deps.sessions.redis.delete(ENROLMENT_KEY + str(account_id))
    return SecondFactorChange(object="second_factor", enabled=True, recovery_codes=codes)


async def disable(deps: AuthDeps, account_id: uuid.UUID, code: str) -> SecondFactorChange:
    """Turn TOTP off, confirmed with a current code or a recovery code."""
    await check_code(deps, account_id, code)
    await deps.db.execute(
        """
        UPDATE accounts SET totp_secret = NULL, totp_enabled_at = NULL, recovery_code_hashes = NULL,
                            updated_at = now()
        WHERE id = $1
        """,
        account_id,
    )
    return SecondFactorChange(object="second_factor", enabled=False)


async def new_recovery_codes(deps: AuthDeps, account_id: uuid.UUID, code: str) -> SecondFactorChange:
    """Replace the recovery codes (the old ones stop working), confirmed with a current code."""
    await check_code(deps, account_id, code)
    codes, hashes = _recovery_codes()
    await deps.db.execute("UPDATE accounts SET recovery_code_hashes = $2 WHERE id = $1", account_id, hashes)
    return SecondFactorChange(object="second_factor", enabled=True, recovery_codes=codes)


async def check_code(deps: AuthDeps, account_id: uuid.UUID, code: str) -> None:
    """Accept a TOTP code of a step not used before, or an unused recovery code (then used up), or raise."""
    async with _budget(deps, account_id) as budget:
        if not await _accept(deps, account_id, code):
            raise wrong_code()
        budget.right()


async def _accept(deps: AuthDeps, account_id: uuid.UUID, code: str) -> bool:
    text = _normalise(code)
    if _RECOVERY_CODE.match(text):
        used = await deps.db.fetchval(
            """
            UPDATE accounts SET recovery_code_hashes = array_remove(recovery_code_hashes, $2)
            WHERE id = $1 AND totp_enabled_at IS NOT NULL AND $2 = ANY(recovery_code_hashes) RETURNING id
            """,
            account_id,
            _hash(text),
        )
        return used is not None
    secret = await deps.db.fetchval(
        "SELECT totp_secret FROM accounts WHERE id = $1 AND totp_enabled_at IS NOT NULL", account_id
    )
    step = _matching_step(secret, text) if secret else None
    if step is None:
        return False
    accepted = await deps.db.fetchval(
        "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2 RETURNING id", account_id, step
    )
    return accepted is not None


def _matching_step(secret: str, code: str) -> int | None:
    """The time step (now, or one either side for clock drift) whose code is ``code``."""
    text = _normalise(code)
    if not _TOTP_CODE.match(text):
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(dt.datetime.now(dt.UTC))
    for step in (now, now - 1, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), text):
            return step
    return None


def _recovery_codes() -> tuple[list[str], list[str]]:
    raw = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    return [f"{c[:5]}-{c[5:]}" for c in raw], [_hash(c) for c in raw]


class _Budget:
    """A code check reserved from the account's budget of wrong codes; ``right()`` gives it back."""

    def __init__(self, deps: AuthDeps, account_id: uuid.UUID) -> None:
        self.deps = deps
        self.key = f"auth:2fa:{account_id}"
        self.rate = signin_failures_rate(deps.settings)
        self._right = False

    def right(self) -> None:
        self._right = True

    async def __aenter__(self) -> _Budget:
        admission = await self.deps.limiter.admit([(self.key, self.rate)])
        if not admission.allowed:
            raise_if_limited(
                admission.rates[0],
                "too many wrong codes for this account; try again later",
                code="too_many_code_attempts",
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._right:
            await self.deps.limiter.refund(self.key, self.rate)


def _budget(deps: AuthDeps, account_id: uuid.UUID) -> _Budget:
    return _Budget(deps, account_id)


# -- sign-in challenges --------------------------------------------------------------------------------------


class SecondFactorRequired(msgspec.Struct):
    """The answer of a right password on an account with two-step sign-in: send ``challenge`` with a code to
    ``POST /v1/auth/signin/second-factor``."""

    object: Literal["second_factor_required"]
    challenge: str
    methods: list[str]
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class Challenge:
    """A right password on an account with TOTP: the token that, with a code, opens the session."""

    token: str
    account_id: uuid.UUID
    email: str
    redirect_to: str | None = None

    def public(self) -> SecondFactorRequired:
        return SecondFactorRequired(
            object="second_factor_required",
            challenge=self.token,
            methods=["totp", "recovery_code"],
            expires_in_s=CHALLENGE_TTL_S,
        )


async def create_challenge(
    deps: AuthDeps, account_id: uuid.UUID, email: str, *, redirect_to: str | None = None
) -> Challenge:
    token = secrets.token_urlsafe(32)
    record = {"account_id": str(account_id), "email": email, "redirect_to": redirect_to, "at": time.time()}
    await deps.sessions.redis.set(CHALLENGE_KEY + _hash(token), json.dumps(record), ex=CHALLENGE_TTL_S)
    return Challenge(token, account_id, email, redirect_to)


async def pass_challenge(deps: AuthDeps, token: str, code: str) -> Challenge:
    """Check the code for the challenge's account, then use the challenge up (once, even under concurrency)."""
    expired = InvalidInput("this sign-in expired; enter your email and password again", code="challenge_expired",
                           param="challenge")  # fmt: skip
    if not token or len(token) > 100:
        raise expired
    key = CHALLENGE_KEY + _hash(token)
    raw = await deps.sessions.redis.get(key)
    if raw is None:
        raise expired
    record = json.loads(raw)
    account_id = uuid.UUID(record["account_id"])
    await check_code(deps, account_id, code)
    if not await deps.sessions.redis.delete(key):  # a concurrent request used it first
        raise expired
    return Challenge(token, account_id, record["email"], record.get("redirect_to"))
