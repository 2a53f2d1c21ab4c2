"""Periodic repairs, safe to run from every worker at once.

* re-enqueue tasks that are queued (or running with an expired lease) but may have lost their job,
  e.g. after Redis restarted empty, each on its queue (batch work on the batch queue); arq ignores a duplicate
  job id, so live jobs are not doubled;
* fail tasks past their deadline and void their holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.infra import jobs
from shared.infra.db import Database
from shared.infra.queue import JobQueue
from shared.tasks import lifecycle
from shared.tasks.cancellation import request_upstream_cancel

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots

log = logging.getLogger(__name__)


async def requeue_orphans(db: Database, queue: JobQueue, *, older_than_s: float = 30, limit: int = 500) -> int:
    rows = await db.fetch(
        """
        SELECT id, batch_work FROM tasks
        WHERE status IN ('queued', 'running') AND deadline_at > now()
          AND ((status = 'queued' AND created_at < now() - make_interval(secs => $1))
               OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
        ORDER BY created_at
        LIMIT $2
        """,
        float(older_than_s),
        limit,
    )
    enqueued = 0
    for row in rows:
        if await queue.enqueue(jobs.run_task(row["id"], batch_work=row["batch_work"])):
            enqueued += 1
    if enqueued:
        log.info("sweep re-enqueued %d task(s) whose job was missing", enqueued)
    return enqueued


async def fail_overdue(
    db: Database,
    *,
    limit: int = 500,
    queue: JobQueue | None = None,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
) -> int:
    """Fail tasks past their deadline (voiding their holds); with ``queue``, also have their upstream jobs
    cancelled; with ``slots``, give back their in-flight slots (rate limits); with ``events``, publish their
    ``task.failed``."""
    rows = await db.fetch(
        """
        SELECT id, upstream_id FROM tasks WHERE status IN ('queued', 'running') AND deadline_at <= now()
        ORDER BY deadline_at LIMIT $1
        """,
        limit,
    )
    failed = 0
    for row in rows:
        if await lifecycle.fail(
            db, row["id"], code="deadline_exceeded", message="the task ran past its deadline", slots=slots,
            events=events,
        ):  # fmt: skip
            failed += 1
            if queue is not None and row["upstream_id"]:
                await request_upstream_cancel(queue, row["id"])
    if failed:
        log.info("sweep failed %d task(s) past their deadline", failed)
    return failed
