"""The staff audit log: append-only (the database refuses UPDATE, DELETE and TRUNCATE), one row per staff
action or refused attempt: who (account and address, role), what (``action``), on what (``target_type``,
``target_id``), why (``reason``), the state before and after, the outcome, the client's IP, the channel
(``api``, ``console``, ``cli``) and when.

``record`` takes a connection, so that an action's entry is written in the action's own transaction where it
has one; ``entries`` lists the log for the console; ``csv_lines`` streams it as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from shared.infra.db import Connection, Database, to_json
from shared.infra.db.records import JSONB, RecordMapping
from shared.infra.errors import InvalidInput
from shared.infra.ids import uuid7
from shared.infra.pagination import Page, page_cursor
from shared.staff import Actor

MAX_REASON = 500
CSV_COLUMNS = ("id", "created_at", "actor", "actor_id", "role", "action", "target_type", "target_id", "reason",
               "outcome", "ip", "via", "before", "after")  # fmt: skip


class AuditTarget(msgspec.Struct):
    type: str
    id: str


class StaffAuditEntry(msgspec.Struct):
    """An entry of the staff audit log: who did what to which target, why, and the state before and after
    (any JSON)."""

    id: str
    object: Literal["staff_audit_entry"]
    actor: str
    actor_id: str | None
    role: str
    action: str
    target: AuditTarget
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    outcome: str
    ip: str
    via: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: uuid.UUID
    actor_id: uuid.UUID | None
    actor: str
    role: str
    action: str
    target_type: str
    target_id: str
    reason: str
    before: Annotated[Any, JSONB]
    after: Annotated[Any, JSONB]
    outcome: str
    ip: str
    via: str
    created_at: dt.datetime

    def public(self) -> StaffAuditEntry:
        return StaffAuditEntry(
            id=str(self.id),
            object="staff_audit_entry",
            actor=self.actor,
            actor_id=str(self.actor_id) if self.actor_id else None,
            role=self.role,
            action=self.action,
            target=AuditTarget(type=self.target_type, id=self.target_id),
            reason=self.reason,
            before=self.before,
            after=self.after,
            outcome=self.outcome,
            ip=self.ip,
            via=self.via,
            created_at=self.created_at,
        )


AUDIT_ROWS = RecordMapping(AuditEntry, "staff_audit_log")


def check_reason(reason: str | None, *, required: bool = True) -> str:
    """A staff member's reason: required for what changes an account's money or standing."""
    text = (reason or "").strip()
    if required and not text:
        raise InvalidInput("say why (reason): it is kept in the staff audit log", param="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason must be at most {MAX_REASON} characters", param="reason")
    return text


async def record(
    conn: Connection | Database,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    *,
    reason: str = "",
    before: Any = None,
    after: Any = None,
    outcome: str = "done",
) -> uuid.UUID:
    """Append one entry; the actor's address is read in the same statement."""
    entry_id = uuid7()
    await conn.execute(
        """
        INSERT INTO staff_audit_log (id, actor_id, actor, role, action, target_type, target_id, reason, before,
                                     after, outcome, ip, via)
        VALUES ($1, $2, COALESCE((SELECT email FROM accounts WHERE id = $2), NULLIF($3, ''), $2::text, ''), $4,
                $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11, $12, $13)
        """,
        entry_id, actor.account_id, actor.name, actor.role, action, target_type, str(target_id)[:100],
        reason[:MAX_REASON], _json_or_null(before), _json_or_null(after), outcome, actor.ip[:64], actor.via,
    )  # fmt: skip
    return entry_id


@dataclass(frozen=True, slots=True)
class AuditFilters:
    target_type: str | None = None
    target_id: str | None = None
    actor: str | None = None  # part of the actor's address
    action: str | None = None  # an action or its prefix ("credits." matches grants and deductions)

    def sql(self) -> tuple[str, list[Any]]:
        actor = f"%{_like(self.actor.lower())}%" if self.actor else None
        action = f"{_like(self.action)}%" if self.action else None
        where = """($1::text IS NULL OR target_type = $1) AND ($2::text IS NULL OR target_id = $2)
                   AND ($3::text IS NULL OR lower(actor) LIKE $3) AND ($4::text IS NULL OR action LIKE $4)"""
        return where, [self.target_type, self.target_id, actor, action]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def entries(
    db: Database, filters: AuditFilters, *, limit: int = 50, after: str | None = None
) -> Page[AuditEntry]:
    """Newest first."""
    cursor = page_cursor(limit, after)
    where, args = filters.sql()
    rows = await db.fetch(
        f"""
        SELECT {AUDIT_ROWS.columns} FROM staff_audit_log
        WHERE {where} AND ($5::uuid IS NULL OR id < $5) ORDER BY id DESC LIMIT $6
        """,
        *args,
        cursor,
        limit + 1,
    )
    return Page.of(rows, limit, AUDIT_ROWS.from_row)


async def csv_lines(db: Database, filters: AuditFilters, *, batch: int = 500) -> AsyncIterator[str]:
    """The whole (filtered) log as CSV, oldest first, read in batches."""
    yield _csv_row(CSV_COLUMNS)
    where, args = filters.sql()
    last: uuid.UUID | None = None
    while True:
        rows = await db.fetch(
            f"""
            SELECT {AUDIT_ROWS.columns} FROM staff_audit_log
            WHERE {where} AND ($5::uuid IS NULL OR id > $5) ORDER BY id LIMIT $6
            """,
            *args,
            last,
            batch,
        )
        for row in rows:
            e = AUDIT_ROWS.from_row(row)
            when = e.created_at.isoformat()
            before, after = _json_cell(e.before), _json_cell(e.after)
            cells = (e.id, when, e.actor, e.actor_id or "", e.role, e.action, e.target_type, e.target_id, e.reason,
                     e.outcome, e.ip, e.via, before, after)  # fmt: skip
            yield _csv_row(cells)
        if len(rows) < batch:
            return
        last = rows[-1]["id"]


def _json_or_null(value: Any) -> str | None:
    return None if value is None else to_json(value)


def _json_cell(value: Any) -> str:
    return _json_or_null(value) or ""


def _csv_row(values: tuple[object, ...]) -> str:
    out = io.StringIO()
    # Cells a spreadsheet would run as a formula are prefixed with a quote (CSV injection).
    csv.writer(out).writerow([_safe_cell(str(v)) for v in values])
    return out.getvalue()


def _safe_cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
