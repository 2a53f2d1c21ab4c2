"""The task jobs: ids in, a call to the shared runner, arq's Retry for "run me again later"."""

from __future__ import annotations

import uuid

from arq import Retry
from arq.constants import retry_key_prefix

from shared.tasks.cancellation import cancel_upstream
from shared.tasks.execution import execute_task
from worker.context import WorkerContext


async def run_task(ctx: WorkerContext, task_id: str) -> None:
    delay = await execute_task(ctx["runtime"], uuid.UUID(task_id))
    if delay is not None:
        # Re-scheduled to poll an upstream job. arq counts each Retry against max_tries; polls are progress,
        # not failures, so the count restarts (the task's deadline bounds the polling instead).
        await ctx["redis"].delete(retry_key_prefix + ctx["job_id"])
        raise Retry(defer=delay)


async def cancel_upstream_job(ctx: WorkerContext, task_id: str) -> bool:
    return await cancel_upstream(ctx["runtime"], uuid.UUID(task_id))
