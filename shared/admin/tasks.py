"""Operators on tasks: view any task, fail a stuck one (its hold voided) or hand it back to the queue."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

import msgspec

from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.errors import Conflict
from shared.infra.ids import parse_uuid
from shared.infra.queue import JobQueue
from shared.infra.storage import UrlSigner
from shared.staff import Actor, audit
from shared.tasks import lifecycle
from shared.tasks.cancellation import request_upstream_cancel
from shared.tasks.queries import task_not_found
from shared.tasks.records import TASK_ROWS, TaskRecord
from shared.tasks.views import Task, public_task

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots


async def load_task(db: Database, task_id: str) -> TaskRecord:
    parsed = parse_uuid(task_id)
    row = await db.fetchrow(f"SELECT {TASK_ROWS.columns} FROM tasks WHERE id = $1", parsed) if parsed else None
    if row is None:
        raise task_not_found(task_id)
    return TASK_ROWS.from_row(row)


class AdminTask(Task):
    """A task as operators see it: the owner's view and what the operator needs besides (``requeued``: after a
    retry, whether a job was enqueued)."""

    account_id: str
    api_key_id: str | None
    upstream_id: str | None
    attempts: int
    lease_expires_at: dt.datetime | None
    deadline_at: dt.datetime
    requeued: bool | msgspec.UnsetType = msgspec.UNSET


async def view_task(db: Database, signer: UrlSigner, task_id: str) -> AdminTask:
    """Any account's task, with what operators need besides the owner's view."""
    task = await load_task(db, task_id)
    return AdminTask(
        **msgspec.structs.asdict(public_task(task, signer)),
        account_id=str(task.account_id),
        api_key_id=str(task.api_key_id) if task.api_key_id else None,
        upstream_id=task.upstream_id,
        attempts=task.attempts,
        lease_expires_at=task.lease_expires_at,
        deadline_at=task.deadline_at,
    )


async def fail_task(
    db: Database,
    queue: JobQueue,
    signer: UrlSigner,
    task_id: str,
    *,
    reason: str,
    actor: Actor,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
) -> AdminTask:
    """queued|running -> failed (``failed_by_operator``), voiding the hold; the upstream job is cancelled. With
    ``events``, the task's event stream gets its ``task.failed``, as when a worker ends it."""
    reason = audit.check_reason(reason, required=False)
    task = await load_task(db, task_id)
    message = f"failed by an operator: {reason.strip()}" if reason.strip() else "failed by an operator"
    if not await lifecycle.fail(db, task.id, code="failed_by_operator", message=message[:500], slots=slots,
                                 events=events):  # fmt: skip
        raise Conflict(f"task {task.id} already finished ({task.status})", code="task_finished")
    await audit.record(db, actor, "task.fail", "task", task.id, reason=reason,
                       before={"status": task.status}, after={"status": "failed"})  # fmt: skip
    if task.upstream_id:
        await request_upstream_cancel(queue, task.id)
    return await view_task(db, signer, str(task.id))


async def retry_task(
    db: Database, queue: JobQueue, signer: UrlSigner, task_id: str, *, actor: Actor, reason: str = ""
) -> AdminTask:
    """Hand a stuck queued or running task back to the workers: its lease is dropped and its job enqueued
    (a no-op when the job exists; a worker still running it cannot settle twice)."""
    task = await load_task(db, task_id)
    released = await db.fetchval(
        "UPDATE tasks SET lease_expires_at = NULL WHERE id = $1 AND status IN ('queued', 'running') RETURNING id",
        task.id,
    )
    if released is None:
        raise Conflict(f"task {task.id} already finished ({task.status}); submit it again", code="task_finished")
    enqueued = await queue.enqueue(jobs.run_task(uuid.UUID(str(task.id)), batch_work=task.batch_work))
    await audit.record(db, actor, "task.retry", "task", task.id, reason=audit.check_reason(reason, required=False),
                       before={"status": task.status, "lease_expires_at": str(task.lease_expires_at)},
                       after={"requeued": enqueued})  # fmt: skip
    view = await view_task(db, signer, str(task.id))
    view.requeued = enqueued
    return view
