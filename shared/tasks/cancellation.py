"""Cancelling a task reaches its upstream job too.

The client's cancel is settled at once in PostgreSQL (``lifecycle.cancel``: canceled, hold voided). If the
task had already been submitted upstream (its upstream id is saved), a small ``cancel_upstream`` job asks
a worker to cancel it there, with retries, so no one pays for work nobody will collect. A task canceled in
the instant between the upstream submit and the saving of its id is handled by the worker that submitted
it (it finds the task no longer running and cancels what it just created).
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from shared.infra import jobs
from shared.infra.db import Database, from_json
from shared.infra.queue import JobQueue
from shared.providers import route_for
from shared.providers.base import GenerationRequest, PermanentError, ProviderError
from shared.providers.retry import RetryPolicy, with_retries
from shared.tasks import lifecycle
from shared.tasks.execution import TaskRuntime
from shared.tasks.records import TaskRecord

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots

log = logging.getLogger(__name__)

CANCEL_RETRIES = RetryPolicy(max_attempts=4, budget_s=30)


async def cancel_task(
    db: Database,
    queue: JobQueue,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
) -> TaskRecord:
    """Cancel the caller's task (voiding its hold) and, if it runs upstream, have the upstream job cancelled.
    With ``slots``, its in-flight slots (rate limits) are given back; with ``events``, task.canceled is published."""
    task = await lifecycle.cancel(db, account_id, task_id, slots=slots, events=events)
    if task.upstream_id:
        await request_upstream_cancel(queue, task.id)
    return task


async def request_upstream_cancel(queue: JobQueue, task_id: uuid.UUID) -> None:
    try:
        await queue.enqueue(jobs.cancel_upstream(task_id))
    except (OSError, RedisError) as exc:  # the task is canceled either way; the upstream job just runs out
        log.warning("could not enqueue the upstream cancel of task %s: %s", task_id, exc)


async def cancel_upstream(rt: TaskRuntime, task_id: uuid.UUID) -> bool:
    """Cancel a finished task's upstream job. True when the provider accepted (or had nothing to cancel)."""
    row = await rt.db.fetchrow(
        "SELECT status, model, provider, upstream_id, input FROM tasks WHERE id = $1",
        task_id,
    )
    if row is None or row["status"] not in ("canceled", "failed") or not row["upstream_id"] or not row["provider"]:
        return False
    model = rt.catalog.get(row["model"])
    provider = rt.providers.get(row["provider"])
    if model is None or provider is None:
        log.warning("task %s: cannot cancel upstream job %s (provider gone)", task_id, row["upstream_id"])
        return False
    request = GenerationRequest(
        task_id=task_id, model=model, route=route_for(model, provider.name), params=from_json(row["input"])
    )
    try:
        await with_retries(functools.partial(provider.cancel, request, row["upstream_id"]), CANCEL_RETRIES)
    except PermanentError:
        return True
    except ProviderError as exc:
        log.warning("task %s: cancelling upstream job %s failed: %s", task_id, row["upstream_id"], exc.code)
        return False
    log.info("task %s: upstream job %s at %s canceled", task_id, row["upstream_id"], provider.name)
    return True
