"""Every job the workers run: its name, its queue, and the id that makes handing it over idempotent.

A producer builds the ``Job`` here and hands it to the workers with ``JobQueue.enqueue``
(``shared.infra.queue``) once the state it refers to is committed; ``worker/main.py`` registers each name
with the function that runs it. Jobs carry ids only. Enqueueing a job whose id is already queued or running
does nothing, so a producer, a retry and a sweep that hand over the same work never double it:

* a task's job id is the task id;
* a webhook delivery's is ``webhook:<delivery id>:<attempts so far>:<due time in ms>``: the outbox listener,
  the previous attempt and the sweep all name the same job for the same pending attempt.

Periodic jobs are arq cron jobs: each worker enqueues them itself, one per tick (``unique``), under these names.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from arq.constants import default_queue_name

QUEUE = default_queue_name  # interactive work: every job but batch work
# Batch work (tasks of a batch submit, OpenAI Batch API lines): a queue of its own that the same workers consume
# with a job limit of their own, so interactive jobs never wait behind it
BATCH_QUEUE = f"{default_queue_name}:batch"

# Jobs handed over by producers
RUN_TASK = "run_task"
CANCEL_UPSTREAM = "cancel_upstream"
DELIVER_WEBHOOK = "deliver_webhook"
PROCESS_STRIPE_EVENT = "process_stripe_event"
RUN_OPENAI_BATCH = "run_openai_batch"

# Periodic jobs (arq cron), under arq's default names (``cron:<function>``): a worker of the previous release
# names them the same, so during a rolling deploy the workers still share one job per tick
SWEEP = "cron:sweep"
WEBHOOK_SWEEP = "cron:webhook_sweep"
BILLING_SWEEP = "cron:billing_sweep"
HOUSEKEEPING = "cron:housekeeping"


@dataclass(frozen=True, slots=True)
class Job:
    """One job to hand to the workers: the function ``name`` runs with ``args``, under ``job_id``, not before
    ``defer_ms`` from now, from ``queue``. ``trace`` is the trace context the job continues
    (``shared.infra.tracing``): passed as the job's ``trace`` keyword argument, which the worker's tracing
    wrapper takes off."""

    name: str
    job_id: str
    args: tuple[str, ...]
    defer_ms: int = 0
    trace: Mapping[str, str] | None = None
    queue: str = QUEUE


def run_task(task_id: uuid.UUID, *, batch_work: bool = False) -> Job:
    """Run (or poll again) the task. A batch submit's task (``batch_work``, as its row says) is batch work: every
    hand-over of it (the submit, the sweep, an operator's retry) goes to ``BATCH_QUEUE``, and arq's own re-runs
    (polls, retries, jobs cut off by a shutdown) stay on the queue the job came from."""
    return Job(RUN_TASK, str(task_id), (str(task_id),), queue=BATCH_QUEUE if batch_work else QUEUE)


def run_openai_batch(batch_id: str) -> Job:
    """Run the pending lines of an OpenAI Batch API batch, then finish it (batch work)."""
    return Job(RUN_OPENAI_BATCH, f"{RUN_OPENAI_BATCH}:{batch_id}", (batch_id,), queue=BATCH_QUEUE)


def cancel_upstream(task_id: uuid.UUID) -> Job:
    """Cancel the upstream job of a canceled or failed task."""
    return Job(CANCEL_UPSTREAM, f"{CANCEL_UPSTREAM}:{task_id}", (str(task_id),))


def delivery_job_id(delivery_id: uuid.UUID, attempts: int, due_ms: int) -> str:
    return f"webhook:{delivery_id}:{attempts}:{due_ms}"


def deliver_webhook(
    delivery_id: uuid.UUID, *, attempts: int, due_ms: int, now_ms: int, trace: Mapping[str, str] | None = None
) -> Job:
    """The delivery's next attempt (``attempts`` made so far), due at ``due_ms`` (epoch ms; ``now_ms`` is now),
    continuing ``trace`` (the event's, when it came with one)."""
    job_id = delivery_job_id(delivery_id, attempts, due_ms)
    return Job(DELIVER_WEBHOOK, job_id, (str(delivery_id),), defer_ms=max(0, due_ms - now_ms), trace=trace)


def process_stripe_event(event_row_id: uuid.UUID) -> Job:
    """Process a stored Stripe event."""
    return Job(PROCESS_STRIPE_EVENT, f"stripe-event:{event_row_id}", (str(event_row_id),))
