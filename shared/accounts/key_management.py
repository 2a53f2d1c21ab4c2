"""API keys managed by their owner (with a session; an API key cannot manage keys).

Create (the secret is returned once), list, show, update (name, allowed models, spend cap), revoke, rotate
(new secret, same key id, limits and history; the old secret stops at once) and delete (revoked and no
longer listed; the row stays so that its tasks and usage keep their key). Every change publishes an
invalidation so that every API process drops its cached copy of the key before the next request, and, when
made by a member (``actor``), is written to the account's audit trail in the same transaction. A key acts with
its creator's member role (``shared.teams.roles``) and stays the account's when its creator leaves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from redis.asyncio import Redis

from shared.accounts.key_limits import (
    CLEAR_BUDGET,
    SET_BUDGET,
    BudgetInput,
    budget_fields,
    check_allowed_models,
    check_budget,
    check_expiry,
    check_limit_override,
    check_name,
    check_spend_cap,
)
from shared.accounts.key_views import ApiKey, KeyRateLimits
from shared.accounts.keys import (
    VISIBLE_PREFIX_LENGTH,
    create_api_key,
    generate_secret,
    hash_secret,
    publish_invalidation,
)
from shared.catalog import Catalog
from shared.infra.db import Connection, Database, Record, to_json
from shared.infra.db.records import Column, RecordMapping
from shared.infra.errors import Conflict, NotFound
from shared.infra.ids import parse_uuid
from shared.ledger.budgets import BudgetState, PeriodBudget, budget_state
from shared.ledger.money import Credits
from shared.teams import audit
from shared.teams.audit import AccountActor

MAX_KEYS_PER_ACCOUNT = 100
__all__ = ["UNSET", "KeyView", "Unset", "check_limit_override"]


class Unset:
    """Marks a field an update leaves alone (``None`` means "remove the limit")."""


UNSET = Unset()


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
    created_by: uuid.UUID | None = None  # the person who created it (None: before teams, or the command line)
    role: str = "owner"  # the member role it acts with
    budget: int | None = None  # the budget per period (``shared.ledger.budgets``)
    budget_period: str | None = None
    budget_rolling: bool = False
    budget_anchor: dt.datetime | None = None
    budget_period_start: dt.datetime | None = None
    budget_spent: int = 0
    budget_held: int = 0

    def budget_state(self) -> BudgetState | None:
        if self.budget is None or self.budget_period is None or self.budget_anchor is None:
            return None
        budget = PeriodBudget(self.budget, self.budget_period, self.budget_rolling, self.budget_anchor)
        return budget_state(budget, self.budget_period_start, self.budget_spent, self.budget_held)

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
            created_by=str(self.created_by) if self.created_by else None,
            role=self.role,
            **budget_fields(self.budget_state()),
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
    budget: BudgetInput | None = None,
    actor: AccountActor | None = None,
) -> tuple[KeyView, str]:
    """Returns the key and its secret (shown this once). Made by ``actor``, it acts with their role."""
    name = check_name(name)
    expires_at = check_expiry(expires_at)
    models = check_allowed_models(catalog, allowed_models)
    cap = check_spend_cap(spend_cap)
    rpm = check_limit_override(rate_limit_rpm, "rate_limits.requests_per_minute")
    inflight = check_limit_override(max_inflight_tasks, "rate_limits.max_inflight_tasks")
    period_budget = check_budget(budget)
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
            conn,
            account_id=account_id,
            name=name,
            expires_at=expires_at,
            allowed_models=models,
            spend_cap=cap,
            created_by=actor.person_id if actor else None,
            role=actor.role if actor else "owner",
        )
        if rpm is not None or inflight is not None:
            await conn.execute(
                "UPDATE api_keys SET rate_limit_rpm = $2, max_inflight_tasks = $3 WHERE id = $1", new.id, rpm, inflight
            )
        if period_budget is not None:
            await conn.execute(
                "UPDATE api_keys SET " + SET_BUDGET.format(amount=2, period=3, rolling=4) + " WHERE id = $1",
                new.id,
                *period_budget,
            )
        row = await conn.fetchrow(f"SELECT {KEY_ROWS.columns} FROM api_keys WHERE id = $1", new.id)
        assert row is not None
        view = KEY_ROWS.from_row(row)
        if actor is not None:
            await audit.record(conn, actor, "key.create", "api_key", new.id, after=view.public())
    return view, new.secret


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
    budget: BudgetInput | Unset | None = UNSET,
    actor: AccountActor | None = None,
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
    if isinstance(budget, BudgetInput):
        args.extend(check_budget(budget) or ())
        sets.append(SET_BUDGET.format(amount=len(args) - 2, period=len(args) - 1, rolling=len(args)))
    elif budget is None:
        sets.append(CLEAR_BUDGET)
    if not sets:
        return await get_key(db, account_id, key_id)
    async with db.transaction() as conn:
        before = await conn.fetchrow(
            f"SELECT {KEY_ROWS.columns} FROM api_keys WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL"
            " FOR UPDATE",
            parsed,
            account_id,
        )
        row = await conn.fetchrow(
            f"""
            UPDATE api_keys SET {", ".join(sets)}
            WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
            RETURNING {KEY_ROWS.columns}
            """,
            *args,
        )
        if row is None or before is None:
            raise _not_found(key_id)
        view = KEY_ROWS.from_row(row)
        if actor is not None:
            await _audit_change(conn, actor, "key.update", KEY_ROWS.from_row(before), view)
    await publish_invalidation(redis, f"key:{parsed}")
    return view


async def _audit_change(conn: Connection, actor: AccountActor, action: str, before: KeyView, after: KeyView) -> None:
    """Record what changed on a key (only the fields that changed)."""
    old, new = (msgspec.json.decode(to_json(view.public())) for view in (before, after))
    changed = [field for field in new if old.get(field) != new[field] and field not in ("last_used_at",)]
    await audit.record(
        conn, actor, action, "api_key", after.id,
        before={f: old.get(f) for f in changed}, after={f: new[f] for f in changed},
    )  # fmt: skip


async def revoke_key(
    db: Database, redis: Redis, account_id: uuid.UUID, key_id: str, *, actor: AccountActor | None = None
) -> KeyView:
    parsed = _key_id(key_id)
    async with db.transaction() as conn:
        row = await conn.fetchrow(
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
        if actor is not None:
            await audit.record(conn, actor, "key.revoke", "api_key", parsed)
    await publish_invalidation(redis, f"key:{parsed}")
    return KEY_ROWS.from_row(row)


async def delete_key(
    db: Database, redis: Redis, account_id: uuid.UUID, key_id: str, *, actor: AccountActor | None = None
) -> None:
    parsed = _key_id(key_id)
    async with db.transaction() as conn:
        deleted = await conn.fetchval(
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
        if actor is not None:
            await audit.record(conn, actor, "key.delete", "api_key", parsed)
    await publish_invalidation(redis, f"key:{parsed}")


async def rotate_key(
    db: Database, redis: Redis, account_id: uuid.UUID, key_id: str, *, actor: AccountActor | None = None
) -> tuple[KeyView, str]:
    """A new secret for the same key (name, limits, spend and history stay); the old secret stops at once."""
    parsed = _key_id(key_id)
    secret = generate_secret()
    async with db.transaction() as conn:
        row = await _rotate(conn, parsed, account_id, secret)
        if row is not None and actor is not None:
            await audit.record(conn, actor, "key.rotate", "api_key", parsed)
    if row is None:
        current = await get_key(db, account_id, key_id)  # raises 404 for a missing or deleted key
        raise Conflict(f"this key is {current.status} and cannot be rotated; create a new one", code="key_not_active")
    await publish_invalidation(redis, f"key:{parsed}")
    return KEY_ROWS.from_row(row), secret


async def _rotate(conn: Connection, parsed: uuid.UUID, account_id: uuid.UUID, secret: str) -> Record | None:
    return await conn.fetchrow(
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
