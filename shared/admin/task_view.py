"""What the console shows of tasks: a search over every account's tasks, and one task's timeline (submitted,
held, each route tried with its provider, upstream id, error and duration, settlement, webhook deliveries).
Read only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.accounts.erasure import find_account
from shared.infra.db import Database
from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, page_cursor
from shared.ledger.money import Credits
from shared.tasks import STATUSES
from shared.tasks.records import TASK_ROWS, TaskRecord


@dataclass(frozen=True, slots=True)
class TaskSearch:
    task: str | None = None  # a task id: that task alone
    account: str | None = None  # an account id or email
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def parse_time(value: str | None, param: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{param} must be an ISO 8601 date or time", param=param) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


async def search_tasks(
    db: Database, search: TaskSearch, *, limit: int = 50, after: str | None = None
) -> Page[TaskRecord]:
    """Every account's tasks matching the filters, newest first."""
    cursor = page_cursor(limit, after)
    choice_filter(search.status, STATUSES, "status")
    task_id = None
    if search.task:
        task_id = parse_uuid(search.task)
        if task_id is None:
            raise InvalidInput("task must be a task id", param="task")
    account_id = await find_account(db, search.account) if search.account else None
    rows = await db.fetch(
        f"""
        SELECT {TASK_ROWS.columns} FROM tasks
        WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR account_id = $2)
          AND ($3::text IS NULL OR model = $3) AND ($4::text IS NULL OR provider = $4)
          AND ($5::text IS NULL OR status = $5) AND ($6::timestamptz IS NULL OR created_at >= $6)
          AND ($7::timestamptz IS NULL OR created_at < $7) AND ($8::uuid IS NULL OR id < $8)
        ORDER BY id DESC LIMIT $9
        """,
        task_id, account_id, search.model, search.provider, search.status, search.since, search.until, cursor,
        limit + 1,
    )  # fmt: skip
    return Page.of(rows, limit, TASK_ROWS.from_row)


async def timeline(db: Database, task: TaskRecord) -> list[dict[str, Any]]:
    """The task's events in time order: ``{at, event, detail}``."""
    events: list[dict[str, Any]] = [{"at": task.created_at, "event": "submitted", "detail": f"model {task.model}"}]
    hold = await db.fetchrow("SELECT amount, charged, status, created_at, resolved_at FROM holds WHERE task_id = $1",
                             task.id)  # fmt: skip
    if hold is not None:
        events.append({"at": hold["created_at"], "event": "held", "detail": f"{Credits(hold['amount'])} credits"})
    if task.started_at:
        events.append({"at": task.started_at, "event": "started", "detail": f"run {task.attempts}"})
    for a in await db.fetch(
        """
        SELECT provider, outcome, error_code, error_message, upstream_id, duration_ms, started_at FROM task_attempts
        WHERE task_id = $1 ORDER BY started_at, id
        """,
        task.id,
    ):
        detail = f"{a['provider']}: {a['outcome']} in {a['duration_ms']} ms"
        if a["upstream_id"]:
            detail += f", upstream id {a['upstream_id']}"
        if a["error_code"]:
            detail += f", {a['error_code']}: {a['error_message'] or ''}"
        events.append({"at": a["started_at"], "event": "attempt", "detail": detail, "outcome": a["outcome"]})
    if task.completed_at:
        why = f": {task.error_code} ({task.error_message})" if task.error_code else ""
        events.append({"at": task.completed_at, "event": task.status, "detail": f"{task.provider or ''}{why}"})
    for entry in await db.fetch(
        "SELECT kind, amount, created_at FROM ledger_entries WHERE hold_id = (SELECT id FROM holds WHERE task_id = $1)"
        " AND kind IN ('charge', 'release', 'void') ORDER BY id",
        task.id,
    ):
        events.append({"at": entry["created_at"], "event": f"settlement: {entry['kind']}",
                       "detail": f"{Credits(entry['amount'])} credits"})  # fmt: skip
    for d in await db.fetch(
        """
        SELECT event_type, url, status, attempts, last_status_code, last_error, created_at, delivered_at
        FROM webhook_deliveries WHERE task_id = $1 ORDER BY id
        """,
        task.id,
    ):
        detail = f"{d['event_type']} to {d['url']}: {d['status']} after {d['attempts']} attempt(s)"
        if d["last_status_code"] or d["last_error"]:
            detail += f" (last: {d['last_status_code'] or ''} {d['last_error'] or ''})"
        events.append({"at": d["delivered_at"] or d["created_at"], "event": "webhook", "detail": detail})
    return sorted(events, key=lambda e: e["at"])
