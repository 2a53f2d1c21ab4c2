"""The worker's arq ``Worker`` does not examine again, at every poll, the jobs it is running itself (each such
check was a WATCH and two reads in Redis); a job it is not running is still examined and started once."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import func
from arq.worker import Worker

from shared.services import Services
from worker.main import ConduitWorker

QUEUE = "test:polling"


async def watches(services: Services) -> int:
    stats: dict[str, Any] = await services.redis.info("commandstats")
    return int(stats.get("cmdstat_watch", {}).get("calls", 0))


async def started_twice(services: Services, worker_class: type[Worker]) -> tuple[int, int]:
    """Start a job that runs until released, then offer its id to the worker again (as the next poll does, the job
    being still in the queue). Returns the WATCHes that second offer cost, and how many times the job ran."""
    release = asyncio.Event()
    runs = 0

    async def hold(ctx: dict[str, Any]) -> None:
        nonlocal runs
        runs += 1
        await release.wait()

    worker = worker_class(functions=[func(hold, name="hold")], redis_pool=services.redis, queue_name=QUEUE,
                          handle_signals=False, keep_result=0, max_jobs=10)  # fmt: skip
    job = await services.redis.enqueue_job("hold", _queue_name=QUEUE)
    assert job is not None
    await worker.start_jobs([job.job_id.encode()])
    assert job.job_id in worker.tasks
    before = await watches(services)
    await worker.start_jobs([job.job_id.encode()])
    second_offer = await watches(services) - before
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(*worker.tasks.values())
    return second_offer, runs


async def test_a_running_job_is_not_examined_again(services: Services) -> None:
    await services.redis.flushdb()
    assert await started_twice(services, ConduitWorker) == (0, 1)
    # arq's own worker pays a WATCH for it (and does not start it twice either)
    assert await started_twice(services, Worker) == (1, 1)
