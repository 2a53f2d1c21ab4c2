"""Single-use, expiring tokens sent by mail (email verification, password reset).

The token is 32 random bytes (base64url) and appears only in the mail; the database keeps its SHA-256.
Consuming it is one conditional UPDATE, so a token works once even if two requests race with it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from shared.infra.db import Connection, Database
from shared.infra.ids import uuid7

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True, slots=True)
class ConsumedToken:
    account_id: uuid.UUID
    email: str


def token_hash(token: str) -> str:
    """What is stored of a mailed token."""
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return bool(_TOKEN_PATTERN.match(token))


async def issue_token(conn: Connection, *, account_id: uuid.UUID, email: str, purpose: str, ttl_s: int) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        """
        INSERT INTO account_tokens (id, account_id, purpose, token_hash, email, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
        """,
        uuid7(),
        account_id,
        purpose,
        token_hash(token),
        email,
        float(ttl_s),
    )
    return token


async def peek_token(conn: Connection, token: str, purpose: str) -> ConsumedToken | None:
    """The account a still-usable token belongs to, without using it up."""
    if not well_formed(token):
        return None
    row = await conn.fetchrow(
        """
        SELECT t.account_id, t.email FROM account_tokens t JOIN accounts a ON a.id = t.account_id
        WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now()
          AND a.email = t.email
        """,
        token_hash(token),
        purpose,
    )
    return ConsumedToken(row["account_id"], row["email"]) if row else None


async def consume_token(conn: Connection, token: str, purpose: str) -> ConsumedToken | None:
    """Use the token up. None if it is unknown, expired, already used, or its address is no longer the
    account's (the account was erased)."""
    if not well_formed(token):
        return None
    row = await conn.fetchrow(
        """
        UPDATE account_tokens t SET used_at = now()
        FROM accounts a
        WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now()
          AND a.id = t.account_id AND a.email = t.email
        RETURNING t.account_id, t.email
        """,
        token_hash(token),
        purpose,
    )
    return ConsumedToken(row["account_id"], row["email"]) if row else None


async def revoke_tokens(conn: Connection, account_id: uuid.UUID, purpose: str | None = None) -> None:
    """Make every unused token of the account (of one purpose, or all) unusable."""
    await conn.execute(
        """
        UPDATE account_tokens SET used_at = now()
        WHERE account_id = $1 AND used_at IS NULL AND ($2::text IS NULL OR purpose = $2)
        """,
        account_id,
        purpose,
    )


async def prune_account_tokens(db: Database, *, limit: int = 5000) -> int:
    """The retention sweep: delete tokens used or expired more than a day ago. Returns how many."""
    deleted = await db.fetch(
        """
        DELETE FROM account_tokens WHERE id IN (
            SELECT id FROM account_tokens
            WHERE expires_at < now() - interval '1 day' OR used_at < now() - interval '1 day'
            LIMIT $1 FOR UPDATE SKIP LOCKED
        ) RETURNING id
        """,
        limit,
    )
    return len(deleted)
