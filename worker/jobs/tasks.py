"""The task job: ids in, a call to the shared runner, arq's Retry for "run me again later"."""

from __future__ import annotations

import uuid

from arq import Retry

from shared.tasks.execution import execute_task
from worker.context import WorkerContext


async def run_task(ctx: WorkerContext, task_id: str) -> None:
    delay = await execute_task(ctx["runtime"], uuid.UUID(task_id))
    if delay is not None:
        raise Retry(defer=delay)
