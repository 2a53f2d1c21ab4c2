"""API keys: ``cdt_`` + 40 random base62 characters. Only a SHA-256 hash and the visible prefix are stored.

A fast hash is right here: the key has ~238 bits of entropy, so there is nothing to brute-force, and the
lookup stays a single indexed query on the request path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import string
import uuid
from dataclasses import dataclass

from shared.db import Connection, Database
from shared.errors import PermissionDenied, Unauthenticated
from shared.ids import uuid7

KEY_PREFIX = "cdt_"
KEY_BODY_LENGTH = 40
VISIBLE_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9]{{{KEY_BODY_LENGTH}}}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account and the key used."""

    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    role: str


@dataclass(frozen=True, slots=True)
class NewKey:
    id: uuid.UUID
    secret: str
    prefix: str


def generate_secret() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_BODY_LENGTH))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    conn: Connection, *, account_id: uuid.UUID, name: str = "", expires_at: dt.datetime | None = None
) -> NewKey:
    secret = generate_secret()
    key = NewKey(id=uuid7(), secret=secret, prefix=secret[:VISIBLE_PREFIX_LENGTH])
    await conn.execute(
        "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        key.id,
        account_id,
        name,
        key.prefix,
        hash_secret(secret),
        expires_at,
    )
    return key


async def authenticate(db: Database, secret: str | None) -> Principal:
    """Resolve a bearer secret to a principal, or raise ``Unauthenticated`` / ``PermissionDenied``."""
    if not secret:
        raise Unauthenticated("missing API key: send it as 'Authorization: Bearer cdt_...'", code="missing_api_key")
    if not KEY_PATTERN.match(secret):
        raise Unauthenticated("invalid API key")
    row = await db.fetchrow(
        """
        SELECT k.id, k.account_id, k.revoked_at, k.expires_at < now() AS expired, a.status, a.role
        FROM api_keys k JOIN accounts a ON a.id = k.account_id
        WHERE k.key_hash = $1
        """,
        hash_secret(secret),
    )
    if row is None:
        raise Unauthenticated("invalid API key")
    if row["revoked_at"] is not None:
        raise Unauthenticated("this API key has been revoked", code="revoked_api_key")
    if row["expired"]:
        raise Unauthenticated("this API key has expired", code="expired_api_key")
    if row["status"] == "suspended":
        raise PermissionDenied("this account is suspended; contact support", code="account_suspended")
    if row["status"] != "active":
        raise Unauthenticated("invalid API key")
    return Principal(account_id=row["account_id"], api_key_id=row["id"], role=row["role"])
