"""The task jobs: ids in, a call to the shared runner, arq's Retry for "run me again later"."""

from __future__ import annotations

import asyncio
import logging
import uuid

from arq import Retry
from arq.constants import retry_key_prefix

from shared.infra.logs import task_id as task_id_context
from shared.tasks.cancellation import cancel_upstream
from shared.tasks.execution import execute_task
from worker.context import WorkerContext

log = logging.getLogger(__name__)


async def run_task(ctx: WorkerContext, task_id: str) -> None:
    task_id_context.set(task_id)  # every log line of this job names the task (shared.infra.logs)
    try:
        delay = await execute_task(ctx["runtime"], uuid.UUID(task_id))
    except asyncio.CancelledError:
        # Shutting down (SIGTERM after the grace period), or this worker could not renew its leases: the run
        # dropped its lease (``execute_task``) and arq re-queues the job.
        log.warning("task job interrupted; task handed back to the queue")
        raise
    log.info("task job run ended", extra={"poll_again_in_s": delay})
    if delay is not None:
        # Re-scheduled to poll an upstream job. arq counts each Retry against max_tries; polls are progress,
        # not failures, so the count restarts (the task's deadline bounds the polling instead).
        await ctx["redis"].delete(retry_key_prefix + ctx["job_id"])
        raise Retry(defer=delay)


async def cancel_upstream_job(ctx: WorkerContext, task_id: str) -> bool:
    task_id_context.set(task_id)
    return await cancel_upstream(ctx["runtime"], uuid.UUID(task_id))
