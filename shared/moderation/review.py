"""What staff see and do about moderation: the events (newest first, filtered by account, category, action, and
whether they were cleared), clearing an event (a false positive: it stops counting as a strike), and lifting a
suspension (the account's strikes cleared and the account reinstated). Each action is in the staff audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.accounts.erasure import find_account
from shared.admin import standing
from shared.admin.views import AccountStanding
from shared.infra.db import Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import Conflict, NotFound
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, page_cursor
from shared.moderation.categories import BLOCKED, CATEGORIES, FLAGGED
from shared.staff import Actor, audit


class ModerationEventView(msgspec.Struct):
    """One moderation event as staff see it (``excerpt`` is null once purged)."""

    id: str
    object: str
    created_at: dt.datetime
    account_id: str
    api_key_id: str | None
    source: str
    stage: str
    category: str
    action: str
    checker: str
    model: str
    task_id: str | None
    policy_version: int
    excerpt: str | None
    excerpt_purged_at: dt.datetime | None
    cleared_at: dt.datetime | None
    cleared_reason: str | None


class ModerationEventList(msgspec.Struct):
    object: str
    data: list[ModerationEventView]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ModerationEventRecord:
    id: uuid.UUID
    created_at: dt.datetime
    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    source: str
    stage: str
    category: str
    action: str
    checker: str
    model: str
    task_id: uuid.UUID | None
    policy_version: int
    excerpt: str | None
    excerpt_purged_at: dt.datetime | None
    cleared_at: dt.datetime | None
    cleared_reason: str | None

    def view(self) -> ModerationEventView:
        return ModerationEventView(
            id=str(self.id), object="moderation_event", created_at=self.created_at, account_id=str(self.account_id),
            api_key_id=str(self.api_key_id) if self.api_key_id else None, source=self.source, stage=self.stage,
            category=self.category, action=self.action, checker=self.checker, model=self.model,
            task_id=str(self.task_id) if self.task_id else None, policy_version=self.policy_version,
            excerpt=self.excerpt, excerpt_purged_at=self.excerpt_purged_at, cleared_at=self.cleared_at,
            cleared_reason=self.cleared_reason,
        )  # fmt: skip


EVENT_ROWS = RecordMapping(ModerationEventRecord, "moderation_events")


@dataclass(frozen=True, slots=True)
class EventFilters:
    account: str | None = None  # an account id or address
    category: str | None = None
    action: str | None = None
    cleared: bool | None = None


class LiftedSuspension(AccountStanding):
    """The account's standing after its suspension was lifted, and how many of its blocks were cleared."""

    strikes_cleared: int


async def list_events(
    db: Database, filters: EventFilters, *, limit: int = 50, after: str | None = None
) -> Page[ModerationEventView]:
    cursor = page_cursor(limit, after)
    choice_filter(filters.category, CATEGORIES, "category")
    choice_filter(filters.action, (BLOCKED, FLAGGED), "action")
    conditions: list[tuple[str, Any]] = []
    if filters.account is not None:
        conditions.append(("account_id =", await find_account(db, filters.account)))
    for condition, value in (("category =", filters.category), ("action =", filters.action), ("id <", cursor)):
        if value is not None:
            conditions.append((condition, value))
    clauses = [f"{condition} ${n}" for n, (condition, _) in enumerate(conditions, 1)] or ["TRUE"]
    args: list[Any] = [value for _, value in conditions]
    if filters.cleared is not None:
        clauses.append("cleared_at IS NOT NULL" if filters.cleared else "cleared_at IS NULL")
    args.append(limit + 1)
    rows = await db.fetch(
        f"SELECT {EVENT_ROWS.columns} FROM moderation_events WHERE {' AND '.join(clauses)} "
        f"ORDER BY id DESC LIMIT ${len(args)}",
        *args,
    )
    events = [EVENT_ROWS.from_row(row).view() for row in rows]
    more = len(events) > limit
    return Page(events[:limit], events[limit - 1].id if more else None)


async def clear_event(db: Database, event_id: str, *, actor: Actor, reason: str) -> ModerationEventView:
    """Mark an event a false positive: it no longer counts as a strike."""
    reason = audit.check_reason(reason)
    parsed = parse_uuid(event_id)
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE moderation_events SET cleared_at = now(), cleared_by = $2, cleared_reason = $3
            WHERE id = $1 AND cleared_at IS NULL RETURNING {EVENT_ROWS.columns}
            """,
            parsed,
            actor.account_id,
            reason,
        )
        if row is None:
            exists = parsed is not None and await conn.fetchval("SELECT 1 FROM moderation_events WHERE id = $1", parsed)
            if exists:
                raise Conflict("this event was cleared already", code="already_cleared")
            raise NotFound(f"no moderation event {event_id}", code="moderation_event_not_found")
        event = EVENT_ROWS.from_row(row)
        before = {"category": event.category, "action": event.action}
        await audit.record(conn, actor, "moderation.clear", "moderation_event", event.id, reason=reason,
                           before=before, after={"cleared": True})  # fmt: skip
    return event.view()


async def lift_suspension(db: Database, redis: Redis, ident: str, *, actor: Actor, reason: str) -> LiftedSuspension:
    """Reinstate an account suspended for its strikes: its uncleared blocks are cleared (so the next block does
    not suspend it again at once), then it is reinstated as ``unsuspend`` does."""
    reason = audit.check_reason(reason)
    account_id = await find_account(db, ident)
    cleared = await db.fetchval(
        """
        WITH cleared AS (
            UPDATE moderation_events SET cleared_at = now(), cleared_by = $2, cleared_reason = $3
            WHERE account_id = $1 AND action = 'blocked' AND cleared_at IS NULL RETURNING 1
        )
        SELECT count(*) FROM cleared
        """,
        account_id,
        actor.account_id,
        f"suspension lifted: {reason}",
    )
    result = await standing.set_suspended(db, redis, str(account_id), suspended=False, actor=actor, reason=reason)
    return LiftedSuspension(
        account_id=result.account_id,
        status=result.status,
        suspension_reason=result.suspension_reason,
        strikes_cleared=int(cleared or 0),
    )
