"""The OpenAI Batch API job: a batch id in, its lines run (``shared.batches.runner``), arq's Retry to go on."""

from __future__ import annotations

import uuid

from arq import Retry
from arq.constants import retry_key_prefix

from shared.batches.runner import BatchRuntime, run_batch
from shared.services import Services
from worker.context import WorkerContext


def batch_runtime(services: Services) -> BatchRuntime:
    """What running a batch needs, from the worker's services."""
    return BatchRuntime(
        db=services.db,
        storage=services.storage,
        catalog=services.catalog,
        providers=services.providers,
        background=services.background,
        settings=services.settings.batches,
        run_budget_s=min(services.settings.retry_budget_s, services.settings.task_job_timeout_s / 2),
        moderator=services.moderator,
    )


async def run_openai_batch(ctx: WorkerContext, batch_id: str) -> None:
    if await run_batch(batch_runtime(ctx["services"]), uuid.UUID(batch_id)):
        # Lines are left: the next run goes on at once. Runs are progress, not failures: the count restarts.
        await ctx["redis"].delete(retry_key_prefix + ctx["job_id"])
        raise Retry(defer=0)
