"""Reading tasks. Another account's task is "not found", never "forbidden"."""

from __future__ import annotations

import uuid

from shared.infra.db import Database
from shared.infra.errors import NotFound
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, page_cursor
from shared.tasks import STATUSES
from shared.tasks.records import TASK_ROWS, TaskRecord


def task_not_found(task_id: object) -> NotFound:
    return NotFound(f"task {task_id} not found", code="task_not_found")


async def get_task(db: Database, account_id: uuid.UUID, task_id: str | uuid.UUID) -> TaskRecord:
    parsed = task_id if isinstance(task_id, uuid.UUID) else parse_uuid(task_id)
    if parsed is None:
        raise task_not_found(task_id)
    row = await db.fetchrow(
        f"SELECT {TASK_ROWS.columns} FROM tasks WHERE id = $1 AND account_id = $2", parsed, account_id
    )
    if row is None:
        raise task_not_found(task_id)
    return TASK_ROWS.from_row(row)


async def list_tasks(
    db: Database,
    account_id: uuid.UUID,
    *,
    limit: int = 20,
    after: str | None = None,
    status: str | None = None,
    model: str | None = None,
) -> Page[TaskRecord]:
    """Newest first. ``after`` is the ``next_cursor`` of the previous page (a task id)."""
    cursor = page_cursor(limit, after)
    choice_filter(status, STATUSES, "status")
    rows = await db.fetch(
        f"""
        SELECT {TASK_ROWS.columns} FROM tasks
        WHERE account_id = $1
          AND ($2::uuid IS NULL OR id < $2)
          AND ($3::text IS NULL OR status = $3)
          AND ($4::text IS NULL OR model = $4)
        ORDER BY id DESC
        LIMIT $5
        """,
        account_id,
        cursor,
        status,
        model,
        limit + 1,
    )
    return Page.of(rows, limit, TASK_ROWS.from_row)
