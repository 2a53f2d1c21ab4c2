"""API keys managed by their owner (with a session; an API key cannot manage keys).

Create (the secret is returned once), list, show, update (name, allowed models, spend cap), revoke, rotate
(new secret, same key id, limits and history; the old secret stops at once) and delete (revoked and no
longer listed; the row stays so that its tasks and usage keep their key). Every change publishes an
invalidation so that every API process drops its cached copy of the key before the next request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from redis.asyncio import Redis

from shared.accounts.keys import (
    VISIBLE_PREFIX_LENGTH,
    create_api_key,
    generate_secret,
    hash_secret,
    publish_invalidation,
)
from shared.accounts.redaction import without_keys
from shared.catalog import Catalog
from shared.infra.db import Database
from shared.infra.db.records import Column, RecordMapping
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import parse_uuid
from shared.ledger.money import MICRO, Credits, CreditsFormatError, parse_credits

MAX_KEYS_PER_ACCOUNT = 100
MAX_NAME = 100
MAX_ALLOWED_MODELS = 100
MAX_SPEND_CAP = 1_000_000_000 * MICRO


class Unset:
    """Marks a field an update leaves alone (``None`` means "remove the limit")."""


UNSET = Unset()


class KeyRateLimits(msgspec.Struct):
    """A key's own rate limits; null: the platform's default for a key (the account's own limits apply as well)."""

    requests_per_minute: int | None
    max_inflight_tasks: int | None


class ApiKey(msgspec.Struct):
    """An API key as its owner sees it; ``secret`` only in the answer that creates or rotates it."""

    id: str
    object: Literal["api_key"]
    name: str
    prefix: str
    status: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rotated_at: dt.datetime | None
    allowed_models: list[str] | None
    spend_cap: Credits | None
    spent: Credits
    spend_reserved: Credits
    spend_remaining: Credits | None
    rate_limits: KeyRateLimits
    secret: str | msgspec.UnsetType = msgspec.UNSET


@dataclass(frozen=True, slots=True)
class KeyView:
    id: uuid.UUID
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rotated_at: dt.datetime | None
    allowed_models: list[str] | None
    spend_cap: int | None
    spent: int
    reserved: Annotated[int, Column("cap_held")]
    expired: Annotated[bool, Column("(expires_at IS NOT NULL AND expires_at <= now())")]
    rate_limit_rpm: int | None = None  # rate limits; None: the default
    max_inflight_tasks: int | None = None

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "expired" if self.expired else "active"

    def public(self, secret: str | None = None) -> ApiKey:
        return ApiKey(
            id=str(self.id),
            object="api_key",
            name=self.name,
            prefix=self.prefix,
            status=self.status,
            created_at=self.created_at,
            last_used_at=self.last_used_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
            rotated_at=self.rotated_at,
            allowed_models=self.allowed_models,
            spend_cap=Credits(self.spend_cap) if self.spend_cap is not None else None,
            spent=Credits(self.spent),
            spend_reserved=Credits(self.reserved),
            spend_remaining=(
                Credits(max(0, self.spend_cap - self.spent - self.reserved)) if self.spend_cap is not None else None
            ),
            rate_limits=KeyRateLimits(
                requests_per_minute=self.rate_limit_rpm, max_inflight_tasks=self.max_inflight_tasks
            ),
            secret=secret if secret is not None else msgspec.UNSET,
        )


KEY_ROWS = RecordMapping(KeyView, "api_keys")


def _not_found(key_id: object) -> NotFound:
    return NotFound(f"no API key {key_id}", code="key_not_found", param="key_id")


def _key_id(key_id: str) -> uuid.UUID:
    parsed = parse_uuid(key_id)
    if parsed is None:
        raise _not_found(key_id)
    return parsed


def check_name(name: str) -> str:
    """The name to store: trimmed, with any API key in it cut out."""
    name = name.strip()
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"name must be at most {MAX_NAME} printable characters", param="name")
    return without_keys(name)


def check_expiry(expires_at: dt.datetime | None) -> dt.datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone, e.g. 2030-01-01T00:00:00Z", param="expires_at")
    if expires_at <= dt.datetime.now(dt.UTC):
        raise InvalidInput("expires_at must be in the future", param="expires_at")
    return expires_at


def check_allowed_models(catalog: Catalog, models: list[str] | None) -> list[str] | None:
    if models is None:
        return None
    if not models or len(models) > MAX_ALLOWED_MODELS:
        raise InvalidInput(
            f"allowed_models lists 1-{MAX_ALLOWED_MODELS} model ids (or is null for every model)",
            param="allowed_models",
        )
    for index, model in enumerate(models):
        if catalog.get(model) is None:
            raise InvalidInput(
                f"unknown model {model!r}; see GET /v1/models", code="model_not_found", param=f"allowed_models[{index}]"
            )
    return sorted(set(models))


def check_spend_cap(cap: Decimal | int | None) -> int | None:
    if cap is None:
        return None
    try:
        micro = parse_credits(cap)
    except CreditsFormatError as exc:
        raise InvalidInput(f"spend_cap: {exc}", param="spend_cap") from None
    if not 0 <= micro <= MAX_SPEND_CAP:
        raise InvalidInput("spend_cap must be between 0 and 1000000000 credits", param="spend_cap")
    return micro


MAX_LIMIT_OVERRIDE = 1_000_000


def check_limit_override(value: int | None, param: str) -> int | None:
    """A key's or account's own rate limit: a positive integer, or None for the default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT_OVERRIDE:
        raise InvalidInput(f"{param} must be an integer from 1 to {MAX_LIMIT_OVERRIDE}, or null", param=param)
    return value


async def create_key(
    db: Database,
    catalog: Catalog,
    account_id: uuid.UUID,
    *,
    name: str = "",
    expires_at: dt.datetime | None = None,
    allowed_models: list[str] | None = None,
    spend_cap: Decimal | int | None = None,
    rate_limit_rpm: int | None = None,
    max_inflight_tasks: int | None = None,
) -> tuple[KeyView, str]:
    """Returns the key and its secret (shown this once)."""
    name = check_name(name)
    expires_at = check_expiry(expires_at)
    models = check_allowed_models(catalog, allowed_models)
    cap = check_spend_cap(spend_cap)
    rpm = check_limit_override(rate_limit_rpm, "rate_limits.requests_per_minute")
    inflight = check_limit_override(max_inflight_tasks, "rate_limits.max_inflight_tasks")
    async with db.transaction() as conn:
        # Serialise creations per account so the limit on the number of keys holds.
        await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        count = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL", account_id
        )
        if count >= MAX_KEYS_PER_ACCOUNT:
            raise Conflict(
                f"an account can have at most {MAX_KEYS_PER_ACCOUNT} active keys; revoke some first",
                code="too_many_keys",
            )
        new = await create_api_key(
            conn, account_id=account_id, name=name, expires_at=expires_at, allowed_models=models, spend_cap=cap
        )
        if rpm is not None or inflight is not None:
            await conn.execute(
                "UPDATE api_keys SET rate_limit_rpm = $2, max_inflight_tasks = $3 WHERE id = $1", new.id, rpm, inflight
            )
        row = await conn.fetchrow(f"SELECT {KEY_ROWS.columns} FROM api_keys WHERE id = $1", new.id)
    assert row is not None
    return KEY_ROWS.from_row(row), new.secret


async def list_keys(db: Database, account_id: uuid.UUID) -> list[KeyView]:
    rows = await db.fetch(
        f"SELECT {KEY_ROWS.columns} FROM api_keys WHERE account_id = $1 AND deleted_at IS NULL ORDER BY id DESC",
        account_id,
    )
    return [KEY_ROWS.from_row(row) for row in rows]


async def get_key(db: Database, account_id: uuid.UUID, key_id: str) -> KeyView:
    row = await db.fetchrow(
        f"SELECT {KEY_ROWS.columns} FROM api_keys WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        _key_id(key_id),
        account_id,
    )
    if row is None:
        raise _not_found(key_id)
    return KEY_ROWS.from_row(row)


async def update_key(
    db: Database,
    redis: Redis,
    catalog: Catalog,
    account_id: uuid.UUID,
    key_id: str,
    *,
    name: str | Unset = UNSET,
    allowed_models: list[str] | Unset | None = UNSET,
    spend_cap: Decimal | int | Unset | None = UNSET,
    rate_limit_rpm: int | Unset | None = UNSET,
    max_inflight_tasks: int | Unset | None = UNSET,
) -> KeyView:
    """Change a key's name or limits; the new limits apply to the next request on every process."""
    parsed = _key_id(key_id)
    sets: list[str] = []
    args: list[Any] = [parsed, account_id]
    if not isinstance(name, Unset):
        args.append(check_name(name))
        sets.append(f"name = ${len(args)}")
    if not isinstance(allowed_models, Unset):
        args.append(check_allowed_models(catalog, allowed_models))
        sets.append(f"allowed_models = ${len(args)}")
    if not isinstance(spend_cap, Unset):
        args.append(check_spend_cap(spend_cap))
        sets.append(f"spend_cap = ${len(args)}")
    if not isinstance(rate_limit_rpm, Unset):
        args.append(check_limit_override(rate_limit_rpm, "rate_limits.requests_per_minute"))
        sets.append(f"rate_limit_rpm = ${len(args)}")
    if not isinstance(max_inflight_tasks, Unset):
        args.append(check_limit_override(max_inflight_tasks, "rate_limits.max_inflight_tasks"))
        sets.append(f"max_inflight_tasks = ${len(args)}")
    if not sets:
        return await get_key(db, account_id, key_id)
    row = await db.fetchrow(
        f"""
        UPDATE api_keys SET {", ".join(sets)}
        WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
        RETURNING {KEY_ROWS.columns}
        """,
        *args,
    )
    if row is None:
        raise _not_found(key_id)
    await publish_invalidation(redis, f"key:{parsed}")
    return KEY_ROWS.from_row(row)


async def revoke_key(db: Database, redis: Redis, account_id: uuid.UUID, key_id: str) -> KeyView:
    parsed = _key_id(key_id)
    row = await db.fetchrow(
        f"""
        UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
        WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
        RETURNING {KEY_ROWS.columns}
        """,
        parsed,
        account_id,
    )
    if row is None:
        raise _not_found(key_id)
    await publish_invalidation(redis, f"key:{parsed}")
    return KEY_ROWS.from_row(row)


async def delete_key(db: Database, redis: Redis, account_id: uuid.UUID, key_id: str) -> None:
    parsed = _key_id(key_id)
    deleted = await db.fetchval(
        """
        UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), deleted_at = now()
        WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
        RETURNING id
        """,
        parsed,
        account_id,
    )
    if deleted is None:
        raise _not_found(key_id)
    await publish_invalidation(redis, f"key:{parsed}")


async def rotate_key(db: Database, redis: Redis, account_id: uuid.UUID, key_id: str) -> tuple[KeyView, str]:
    """A new secret for the same key (name, limits, spend and history stay); the old secret stops at once."""
    parsed = _key_id(key_id)
    secret = generate_secret()
    row = await db.fetchrow(
        f"""
        UPDATE api_keys SET key_hash = $3, prefix = $4, rotated_at = now()
        WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL AND revoked_at IS NULL
          AND (expires_at IS NULL OR expires_at > now())
        RETURNING {KEY_ROWS.columns}
        """,
        parsed,
        account_id,
        hash_secret(secret),
        secret[:VISIBLE_PREFIX_LENGTH],
    )
    if row is None:
        current = await get_key(db, account_id, key_id)  # raises 404 for a missing or deleted key
        raise Conflict(f"this key is {current.status} and cannot be rotated; create a new one", code="key_not_active")
    await publish_invalidation(redis, f"key:{parsed}")
    return KEY_ROWS.from_row(row), secret
