"""The account's audit trail: one row per member, role, key, budget or billing change, with who made it (the
person, or the API key), their role then, what changed (before and after), from which IP and channel, and
when. Kept apart from the staff audit log (``shared.staff.audit``), which records what staff do.

``record`` takes a connection, so that a change's entry is written in the change's own transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from shared.accounts.keys import Principal
from shared.infra.db import Connection, Database, to_json
from shared.infra.db.records import JSONB, RecordMapping
from shared.infra.ids import uuid7
from shared.infra.pagination import Page, page_cursor


@dataclass(frozen=True, slots=True)
class AccountActor:
    """Who makes a change to an account, as its audit trail records it."""

    account_id: uuid.UUID
    person_id: uuid.UUID | None  # None: an API key
    api_key_id: uuid.UUID | None
    role: str
    via: str  # "dashboard" (a person's session) or "api" (an API key)
    ip: str = ""

    @classmethod
    def of(cls, principal: Principal, ip: str) -> AccountActor:
        return cls(
            account_id=principal.account_id,
            person_id=principal.person_id,
            api_key_id=principal.api_key_id,
            role=principal.member_role,
            via="dashboard" if principal.via_session else "api",
            ip=ip,
        )


@dataclass(frozen=True, slots=True)
class AccountAuditEntry:
    id: uuid.UUID
    actor_id: uuid.UUID | None
    actor: str
    role: str
    action: str
    target_type: str
    target_id: str
    before: Annotated[Any, JSONB]
    after: Annotated[Any, JSONB]
    ip: str
    via: str
    created_at: dt.datetime


AUDIT_ROWS = RecordMapping(AccountAuditEntry, "account_audit_log")


async def record(
    conn: Connection | Database,
    actor: AccountActor,
    action: str,
    target_type: str,
    target_id: object,
    *,
    before: Any = None,
    after: Any = None,
) -> uuid.UUID:
    """Append one entry; the person's address (or the key's prefix) is read in the same statement."""
    entry_id = uuid7()
    await conn.execute(
        """
        INSERT INTO account_audit_log (id, account_id, actor_id, actor, role, action, target_type, target_id,
                                       before, after, ip, via)
        VALUES ($1, $2, $3,
                COALESCE((SELECT email FROM accounts WHERE id = $3),
                         (SELECT 'API key ' || prefix || '…' FROM api_keys WHERE id = $4), ''),
                $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12)
        """,
        entry_id, actor.account_id, actor.person_id, actor.api_key_id, actor.role, action, target_type,
        str(target_id)[:100], _json_or_null(before), _json_or_null(after), actor.ip[:64], actor.via,
    )  # fmt: skip
    return entry_id


def _json_or_null(value: Any) -> str | None:
    return None if value is None else to_json(value)


async def entries(
    db: Database, account_id: uuid.UUID, *, action: str | None = None, limit: int = 50, after: str | None = None
) -> Page[AccountAuditEntry]:
    """The account's entries, newest first; ``action``: an action or its prefix (``member.``)."""
    cursor = page_cursor(limit, after)
    prefix = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" if action else None
    rows = await db.fetch(
        f"""
        SELECT {AUDIT_ROWS.columns} FROM account_audit_log
        WHERE account_id = $1 AND ($2::text IS NULL OR action LIKE $2) AND ($3::uuid IS NULL OR id < $3)
        ORDER BY id DESC LIMIT $4
        """,
        account_id,
        prefix,
        cursor,
        limit + 1,
    )
    return Page.of(rows, limit, AUDIT_ROWS.from_row)
