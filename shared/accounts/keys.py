"""API keys: ``cdt_`` + 40 random base62 characters. Only a SHA-256 hash and the visible prefix are stored.

A fast hash is right here: the key has ~238 bits of entropy, so there is nothing to brute-force, and the
lookup stays a single indexed query. On the request path even that query is usually skipped: each API
process keeps a small cache of recently seen keys (``shared.accounts.key_cache``). Whatever changes a key's or
an account's standing (revocation, deletion, suspension) publishes an invalidation on Redis, which every API
process applies at once; the cache also forgets entries after ``ttl_s`` as a safety net.

Keys that were refused (unknown, revoked, expired: states that never turn back into a working key) are
remembered for ``REFUSAL_TTL_S`` too, so a flood of the same bad key costs no lookups; lookups of keys not
cached are limited per client IP (``shared.ratelimits.invalid_keys``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.accounts.key_cache import KeyCache, publish_invalidation
from shared.infra.db import Connection, Database, Record
from shared.infra.errors import PermissionDenied, Unauthenticated
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS
from shared.ledger.budgets import PeriodBudget
from shared.ratelimits.invalid_keys import InvalidKeyLimit

log = logging.getLogger(__name__)

KEY_PREFIX = "cdt_"
KEY_BODY_LENGTH = 40
VISIBLE_PREFIX_LENGTH = 12
_ALPHABET = string.ascii_letters + string.digits
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9]{{{KEY_BODY_LENGTH}}}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account, and the API key used (with its limits) or the person's session.

    ``role`` is the staff role (``user``, ``support``, ``admin``) of the person signed in, or of the key's
    account; ``member_role`` the caller's role in the account (``shared.teams.roles``): the person's
    membership, or the role the key was created with."""

    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    role: str
    allowed_models: frozenset[str] | None = None  # None: every model
    spend_cap: int | None = None  # micro-credits this key may spend in total; None: no cap
    session_id: str | None = None  # set when a person's browser session (not an API key) is calling
    second_factor: bool = False  # that session was opened with a second factor (TOTP or a recovery code)
    # Rate limits set on the key and on the account; None: the defaults from the settings
    key_rpm: int | None = None
    key_max_inflight: int | None = None
    account_rpm: int | None = None
    account_max_inflight: int | None = None
    member_role: str = "owner"
    person_id: uuid.UUID | None = None  # the person signed in (a session); None for an API key
    budget: PeriodBudget | None = None  # the key's budget per period; None: none
    # The budget of the member whose spending this is (the person of a session, the creator of a key), and who
    member_budget: PeriodBudget | None = None
    budget_member_id: uuid.UUID | None = None

    @property
    def via_session(self) -> bool:
        return self.session_id is not None

    @property
    def person(self) -> uuid.UUID:
        """The person behind a session (their own account), or the key's account."""
        return self.person_id or self.account_id


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
    conn: Connection,
    *,
    account_id: uuid.UUID,
    name: str = "",
    expires_at: dt.datetime | None = None,
    allowed_models: list[str] | None = None,
    spend_cap: int | None = None,
    created_by: uuid.UUID | None = None,
    role: str = "owner",
) -> NewKey:
    """A new key of the account; ``created_by`` is the person who made it, ``role`` the member role it acts
    with."""
    secret = generate_secret()
    key = NewKey(id=uuid7(), secret=secret, prefix=secret[:VISIBLE_PREFIX_LENGTH])
    await conn.execute(
        """
        INSERT INTO api_keys
            (id, account_id, name, prefix, key_hash, expires_at, allowed_models, spend_cap, created_by, role)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        """,
        key.id,
        account_id,
        name,
        key.prefix,
        hash_secret(secret),
        expires_at,
        allowed_models,
        spend_cap,
        created_by,
        role,
    )
    return key


async def authenticate(
    db: Database,
    secret: str | None,
    cache: KeyCache | None = None,
    *,
    invalid_keys: InvalidKeyLimit | None = None,
    ip: str = "",
    allow_suspended: bool = False,
) -> Principal:
    """Resolve a bearer secret to a principal, or raise ``Unauthenticated`` / ``PermissionDenied``. With
    ``invalid_keys``, a key that is not cached as working counts against ``ip``'s budget of invalid keys until it
    proves to work (``RateLimited`` when the budget is spent). ``allow_suspended``: a suspended account's key works
    too (only to appeal the suspension; such a principal is never cached)."""
    if not secret:
        raise Unauthenticated("missing API key: send it as 'Authorization: Bearer cdt_...'", code="missing_api_key")
    if not KEY_PATTERN.match(secret):
        raise Unauthenticated("invalid API key")
    key_hash = hash_secret(secret)
    now = time.time()
    generation = cache.generation if cache is not None else 0
    if cache is not None:
        cached = cache.get(key_hash, now)
        if cached is not None:
            _touch(db, cache, cached, now)
            return cached
        refused = cache.refusal(key_hash, now)
        if refused is not None:
            if invalid_keys is not None:
                await invalid_keys.reserve(ip)
            METRICS.inc("conduit_invalid_api_keys", {"outcome": "cached"})
            raise refused
    if invalid_keys is not None:
        await invalid_keys.reserve(ip)  # before the lookup: a spent budget costs the database nothing
    row = await db.fetchrow(f"{_KEY_ROW} WHERE k.key_hash = $1", key_hash)
    try:
        principal = _principal(row, allow_suspended=allow_suspended)
    except Unauthenticated as refused:
        METRICS.inc("conduit_invalid_api_keys", {"outcome": "looked_up"})
        if cache is not None:
            cache.remember_refusal(key_hash, refused, now)
        raise
    except PermissionDenied:
        if invalid_keys is not None:
            await invalid_keys.give_back(ip)  # a real key, of a suspended account: not a guess
        raise
    assert row is not None  # a missing row is refused above
    if invalid_keys is not None:
        await invalid_keys.give_back(ip)
    if cache is not None and row["status"] == "active":
        cache.put(key_hash, principal, row["expires_at"], now, generation)
        _touch(db, cache, principal, now)
    return principal


def account_suspended(reason: str | None) -> PermissionDenied:
    """What a suspended account's owner is told: the operator's reason, when one was given."""
    because = f" ({reason})" if reason else ""
    return PermissionDenied(f"this account is suspended{because}; contact support", code="account_suspended")


_KEY_ROW = """
SELECT k.id, k.account_id, k.revoked_at, k.expires_at, k.expires_at < now() AS expired, k.allowed_models,
       k.spend_cap, a.status, a.suspension_reason, a.role, k.rate_limit_rpm AS key_rpm,
       k.max_inflight_tasks AS key_max_inflight, a.rate_limit_rpm AS account_rpm,
       a.max_inflight_tasks AS account_max_inflight, k.role AS member_role, k.budget, k.budget_period,
       k.budget_rolling, k.budget_anchor, m.person_id AS budget_member_id, m.budget AS member_budget,
       m.budget_period AS member_budget_period, m.budget_rolling AS member_budget_rolling,
       m.budget_anchor AS member_budget_anchor
FROM api_keys k JOIN accounts a ON a.id = k.account_id
LEFT JOIN account_members m ON m.account_id = k.account_id AND m.person_id = k.created_by"""


async def principal_of_key(db: Database, key_id: uuid.UUID) -> Principal:
    """The caller an API key names now, by the key's id (work done later on the key's behalf, e.g. a batch's
    lines), or why the key cannot be used any more."""
    return _principal(await db.fetchrow(f"{_KEY_ROW} WHERE k.id = $1", key_id))


def _principal(row: Record | None, *, allow_suspended: bool = False) -> Principal:
    """The caller a key's row names, or why the key cannot be used."""
    if row is None:
        raise Unauthenticated("invalid API key")
    if row["revoked_at"] is not None:
        raise Unauthenticated("this API key has been revoked", code="revoked_api_key")
    if row["expired"]:
        raise Unauthenticated("this API key has expired", code="expired_api_key")
    if row["status"] == "suspended" and not allow_suspended:
        raise account_suspended(row["suspension_reason"])
    if row["status"] not in ("active", "suspended"):
        raise Unauthenticated("invalid API key")
    allowed = row["allowed_models"]
    return Principal(
        account_id=row["account_id"],
        api_key_id=row["id"],
        role=row["role"],
        allowed_models=frozenset(allowed) if allowed is not None else None,
        spend_cap=row["spend_cap"],
        key_rpm=row["key_rpm"],
        key_max_inflight=row["key_max_inflight"],
        account_rpm=row["account_rpm"],
        account_max_inflight=row["account_max_inflight"],
        member_role=row["member_role"],
        budget=(
            PeriodBudget(row["budget"], row["budget_period"], row["budget_rolling"], row["budget_anchor"])
            if row["budget"] is not None
            else None
        ),
        **member_budget(row),
    )


def member_budget(row: Record) -> dict[str, Any]:
    """The ``member_budget`` and ``budget_member_id`` of a principal, from a row with ``budget_member_id`` and
    ``member_budget*`` columns (a key's creator's membership, or a session's person's)."""
    if row["member_budget"] is None or row["budget_member_id"] is None:
        return {}
    budget = PeriodBudget(row["member_budget"], row["member_budget_period"], row["member_budget_rolling"],
                          row["member_budget_anchor"])  # fmt: skip
    return {"member_budget": budget, "budget_member_id": row["budget_member_id"]}


def _touch(db: Database, cache: KeyCache, principal: Principal, now: float) -> None:
    """Record ``last_used_at`` at most once a minute per key, off the request path."""
    if principal.api_key_id is None or not cache.due_for_touch(principal.api_key_id, now):
        return

    async def touch() -> None:
        with contextlib.suppress(Exception):
            await db.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", principal.api_key_id)

    cache.background.spawn(touch(), name="api key last-used stamp")


async def revoke_key(db: Database, redis: Redis, key_id: uuid.UUID) -> bool:
    revoked = await db.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id", key_id
    )
    await publish_invalidation(redis, f"key:{key_id}")
    return revoked is not None


async def set_account_status(
    db: Database, redis: Redis, account_id: uuid.UUID, status: str, *, reason: str | None = None
) -> bool:
    """Suspend (``suspended``, with the ``reason`` its owner is told) or reinstate (``active``) an account; its
    keys stop or resume working at once."""
    changed = await db.fetchval(
        """
        UPDATE accounts
        SET status = $2::text, suspension_reason = CASE WHEN $2::text = 'suspended' THEN $3 END, updated_at = now()
        WHERE id = $1 AND status <> 'deleted' RETURNING id
        """,
        account_id,
        status,
        reason or None,
    )
    await publish_invalidation(redis, f"account:{account_id}")
    return changed is not None
