"""Periodic repairs, safe to run from every worker at once.

* re-enqueue tasks that are queued (or running with an expired lease) but may have lost their job,
  e.g. after Redis restarted empty, each on its queue (batch work on the batch queue); arq ignores a duplicate
  job id, so live jobs are not doubled; a running task's job that arq still holds in progress for a worker that
  died before re-scheduling it is released;
* fail tasks past their deadline and void their holds.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from arq.constants import in_progress_key_prefix

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
    """Enqueue the job of every task that may have lost it; a job that still exists is left alone, unless it is
    stalled (``release_stalled``). Returns how many jobs were enqueued or released."""
    rows = await db.fetch(
        """
        SELECT id, batch_work, status FROM tasks
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
    present: list[str] = []
    for row in rows:
        if await queue.enqueue(jobs.run_task(row["id"], batch_work=row["batch_work"])):
            enqueued += 1
        elif row["status"] == "running":
            present.append(str(row["id"]))
    if enqueued:
        log.info("sweep re-enqueued %d task(s) whose job was missing", enqueued)
    released = await release_stalled(queue, present, due_before_ms=int((time.time() - older_than_s) * 1000))
    return enqueued + released


async def release_stalled(queue: JobQueue, job_ids: list[str], *, due_before_ms: int) -> int:
    """Free the task jobs that arq holds "in progress" for a worker that died before it could claim their task or
    re-schedule them: a running task with no live lease, its job due since before ``due_before_ms`` and still in
    progress. A worker killed between handing a polled task back (its lease released) and arq re-scheduling the job
    leaves it so, and arq would only give it to another worker after the job timeout. Its in-progress key is
    dropped, so the next poll of any worker starts it. Returns how many were."""
    if not job_ids:
        return 0
    async with queue.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(in_progress_key_prefix + job_id)
            pipe.zscore(jobs.QUEUE, job_id)
            pipe.zscore(jobs.BATCH_QUEUE, job_id)
        answers = await pipe.execute()
    stalled = []
    for n, job_id in enumerate(job_ids):
        in_progress, *scores = answers[3 * n : 3 * n + 3]
        due = min((score for score in scores if score is not None), default=None)
        if in_progress and due is not None and due < due_before_ms:
            stalled.append(in_progress_key_prefix + job_id)
    if stalled:
        await queue.redis.delete(*stalled)
        log.info("sweep released %d task job(s) held in progress for a worker that stopped", len(stalled))
    return len(stalled)


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
