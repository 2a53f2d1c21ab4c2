"""Free credits: the signup reward and promotional codes. Both become credit lots in the ledger.

* The signup reward is granted in the transaction that first marks an account's email as verified, with
  the idempotency key ``grant:signup:<account>``: however often an address is verified, it is granted once.
* A promotional code (created by an operator: ``conduit promo create``) grants its credits to each account
  that claims it, once per account, up to its maximum number of redemptions. PostgreSQL enforces both: a
  unique (code, account) redemption row and a conditional increment of the code's counter (re-checked
  after any concurrent claim, and backed by a CHECK constraint).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from shared.accounts.settings import AuthSettings
from shared.infra.db import Connection, Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.ledger import grant
from shared.ledger.money import Credits
from shared.ratelimits.limiter import Rate, RateLimiter, raise_if_limited

CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{2,63}$")
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
# Unknown codes an account may try before it is slowed down (guessing codes is not a way to get credits).
PROMO_GUESSES = Rate(10, 3600)


async def mark_email_verified(conn: Connection, account_id: uuid.UUID, settings: AuthSettings) -> bool:
    """Record that the account controls its address; the first time, grant the signup reward."""
    first = await conn.fetchval(
        """
        UPDATE accounts SET email_verified_at = now(), updated_at = now()
        WHERE id = $1 AND email_verified_at IS NULL AND status <> 'deleted'
        RETURNING id
        """,
        account_id,
    )
    if first is None:
        return False
    await grant_signup_reward(conn, account_id, settings)
    return True


async def grant_signup_reward(conn: Connection, account_id: uuid.UUID, settings: AuthSettings) -> uuid.UUID | None:
    if settings.signup_reward <= 0:
        return None
    days = settings.signup_reward_validity_days
    return await grant(
        conn,
        account_id=account_id,
        amount=settings.signup_reward,
        source="signup",
        idempotency_key=f"grant:signup:{account_id}",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None,
        description="signup reward",
    )


class PromoCodeSummary(msgspec.Struct):
    """A promo code as operators see it (``credits`` each redemption grants)."""

    code: str
    credits: Credits
    expires_at: str | None
    credit_validity_days: int | None
    max_redemptions: int | None
    redemptions: int
    description: str
    created_at: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class PromoCode:
    id: uuid.UUID
    code: str
    credits: int
    expires_at: dt.datetime | None
    credit_validity_days: int | None
    max_redemptions: int | None
    redemptions: int
    description: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    def summary(self) -> PromoCodeSummary:
        """For the admin API and the operator CLI."""
        return PromoCodeSummary(
            code=self.code,
            credits=Credits(self.credits),
            expires_at=self.expires_at.isoformat() if self.expires_at else None,
            credit_validity_days=self.credit_validity_days,
            max_redemptions=self.max_redemptions,
            redemptions=self.redemptions,
            description=self.description,
            created_at=self.created_at.isoformat(),
            disabled=self.disabled_at is not None,
        )


PROMO_ROWS = RecordMapping(PromoCode, "promo_codes")


def normalize_code(code: str) -> str:
    return code.strip().upper()


async def create_promo_code(
    db: Database,
    *,
    credits: int,
    code: str | None = None,
    expires_at: dt.datetime | None = None,
    credit_validity_days: int | None = None,
    max_redemptions: int | None = None,
    description: str = "",
) -> PromoCode:
    code = (
        normalize_code(code)
        if code
        else "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(3))
    )
    if not CODE_PATTERN.match(code):
        raise InvalidInput("a code is 3-64 letters, digits, '-' or '_'", param="code")
    if credits <= 0:
        raise InvalidInput("credits must be positive", param="credits")
    if credit_validity_days is not None and credit_validity_days <= 0:
        raise InvalidInput("credit validity must be a positive number of days", param="credit_validity_days")
    if max_redemptions is not None and max_redemptions <= 0:
        raise InvalidInput("maximum redemptions must be positive", param="max_redemptions")
    if expires_at is not None and expires_at <= dt.datetime.now(dt.UTC):
        raise InvalidInput("the code's expiry is in the past", param="expires_at")
    row = await db.fetchrow(
        f"""
        INSERT INTO promo_codes (id, code, credits, expires_at, credit_validity_days, max_redemptions, description)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (code) DO NOTHING
        RETURNING {PROMO_ROWS.columns}
        """,
        uuid7(), code, credits, expires_at, credit_validity_days, max_redemptions, description,
    )  # fmt: skip
    if row is None:
        raise Conflict(f"promo code {code} already exists", code="promo_code_exists", param="code")
    return PROMO_ROWS.from_row(row)


async def list_promo_codes(db: Database) -> list[PromoCode]:
    rows = await db.fetch(f"SELECT {PROMO_ROWS.columns} FROM promo_codes ORDER BY id DESC")
    return [PROMO_ROWS.from_row(row) for row in rows]


async def disable_promo_code(db: Database, code: str) -> PromoCode:
    row = await db.fetchrow(
        f"""
        UPDATE promo_codes SET disabled_at = COALESCE(disabled_at, now()) WHERE code = $1
        RETURNING {PROMO_ROWS.columns}
        """,
        normalize_code(code),
    )
    if row is None:
        raise NotFound(f"no promo code {normalize_code(code)}", code="promo_code_not_found", param="code")
    return PROMO_ROWS.from_row(row)


class PromoRedemption(msgspec.Struct):
    """A claimed promo code: its credits, added as a lot (which expires at ``expires_at``, if ever)."""

    object: Literal["promo_redemption"]
    code: str
    credits: Credits
    lot_id: str
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Redemption:
    code: str
    credits: int
    lot_id: uuid.UUID
    expires_at: dt.datetime | None

    def public(self) -> PromoRedemption:
        return PromoRedemption(
            object="promo_redemption",
            code=self.code,
            credits=Credits(self.credits),
            lot_id=str(self.lot_id),
            expires_at=self.expires_at,
        )


async def redeem_promo_code(db: Database, limiter: RateLimiter, account_id: uuid.UUID, code: str) -> Redemption:
    guesses = f"promo:account:{account_id}"
    raise_if_limited(
        await limiter.peek(guesses, PROMO_GUESSES),
        "too many unknown promo codes; try again later",
        code="too_many_promo_attempts",
    )
    code = normalize_code(code)
    try:
        return await _redeem(db, account_id, code)
    except NotFound:
        await limiter.hit(guesses, PROMO_GUESSES)
        raise


async def _redeem(db: Database, account_id: uuid.UUID, code: str) -> Redemption:
    not_found = NotFound("this promo code does not exist", code="promo_code_not_found", param="code")
    if not CODE_PATTERN.match(code):
        raise not_found
    async with db.transaction() as conn:
        promo_id = await conn.fetchval("SELECT id FROM promo_codes WHERE code = $1", code)
        if promo_id is None:
            raise not_found
        redemption_id = await conn.fetchval(
            """
            INSERT INTO promo_redemptions (id, promo_code_id, account_id) VALUES ($1, $2, $3)
            ON CONFLICT (promo_code_id, account_id) DO NOTHING RETURNING id
            """,
            uuid7(),
            promo_id,
            account_id,
        )
        if redemption_id is None:
            raise Conflict("this account has already claimed this promo code", code="promo_code_already_redeemed")
        promo = await conn.fetchrow(
            """
            UPDATE promo_codes SET redemptions = redemptions + 1
            WHERE id = $1 AND disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now())
              AND (max_redemptions IS NULL OR redemptions < max_redemptions)
            RETURNING credits, credit_validity_days
            """,
            promo_id,
        )
        if promo is None:
            live = await conn.fetchval(
                """
                SELECT disabled_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                FROM promo_codes WHERE id = $1
                """,
                promo_id,
            )
            if not live:
                raise Conflict("this promo code has expired", code="promo_code_expired", param="code")
            raise Conflict("this promo code has been fully claimed", code="promo_code_exhausted", param="code")
        days = promo["credit_validity_days"]
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None
        lot_id = await grant(
            conn,
            account_id=account_id,
            amount=promo["credits"],
            source="promo",
            idempotency_key=f"grant:promo:{promo_id}:{account_id}",
            reference=code,
            expires_at=expires_at,
            description=f"promo code {code}",
        )
        assert lot_id is not None  # the redemption row makes this the first grant for (code, account)
        await conn.execute("UPDATE promo_redemptions SET lot_id = $2 WHERE id = $1", redemption_id, lot_id)
    return Redemption(code=code, credits=promo["credits"], lot_id=lot_id, expires_at=expires_at)


async def list_reward_grants(db: Database, account_id: uuid.UUID, limit: int = 50) -> list[dict[str, Any]]:
    """The account's free credits (signup reward and promo codes), newest first, with what is left of each."""
    rows = await db.fetch(
        """
        SELECT source, amount, remaining, expires_at, created_at FROM credit_lots
        WHERE account_id = $1 AND source IN ('signup', 'promo') ORDER BY created_at DESC LIMIT $2
        """,
        account_id,
        limit,
    )
    return [
        {
            "source": row["source"],
            "credits": Credits(row["amount"]),
            "remaining": Credits(row["remaining"]),
            "expires_at": row["expires_at"],
            "granted_at": row["created_at"],
        }
        for row in rows
    ]
