"""The worker's arq ``Worker`` does not examine again, at every poll, the jobs it is running itself (each such
check was a WATCH and two reads in Redis); a job it is not running is still examined and started once."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import func
from arq.worker import Worker

from shared.services import Services
from worker.arq_worker import ConduitWorker

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


async def command_calls(services: Services, *commands: str) -> dict[str, int]:
    stats: dict[str, Any] = await services.redis.info("commandstats")
    return {command: int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in commands}


async def test_one_poll_claims_its_jobs_in_one_round_trip_and_their_finishes_share_one(services: Services) -> None:
    await services.redis.flushdb()
    release = asyncio.Event()
    ran: list[int] = []

    async def hold(ctx: dict[str, Any], n: int) -> None:
        ran.append(n)
        await release.wait()

    worker = ConduitWorker(functions=[func(hold, name="hold")], redis_pool=services.redis, queue_name=QUEUE,
                           handle_signals=False, keep_result=0, max_jobs=12)  # fmt: skip
    jobs = [await services.redis.enqueue_job("hold", n, _queue_name=QUEUE) for n in range(16)]
    ids = [job.job_id for job in jobs if job is not None]
    # Another worker runs job 0; job 1 is deferred (not due); job 2 has left the queue.
    await services.redis.psetex(f"arq:in-progress:{ids[0]}", 60_000, b"1")
    await services.redis.zadd(QUEUE, {ids[1]: 2**50})
    await services.redis.zrem(QUEUE, ids[2])
    before = await command_calls(services, "evalsha", "watch", "multi")
    await worker.start_jobs([job_id.encode() for job_id in ids])
    claimed = await command_calls(services, "evalsha", "watch", "multi")
    assert (claimed["evalsha"] - before["evalsha"], claimed["watch"] - before["watch"]) == (1, 0)
    # Room for 12: jobs 3..14 start; job 15 waits in the queue, unclaimed.
    assert sorted(worker.tasks) == sorted(ids[3:15])
    assert not await services.redis.exists(f"arq:in-progress:{ids[15]}")
    await asyncio.sleep(0.05)
    assert sorted(ran) == list(range(3, 15))
    release.set()
    await asyncio.gather(*worker.tasks.values())
    finished = await command_calls(services, "multi")
    # 12 jobs ended together: arq's one MULTI/EXEC each became a handful (the first goes alone, the rest together;
    # arq's per-job fetch at the start is a MULTI each too)
    assert finished["multi"] - claimed["multi"] - 12 <= 3
    for job_id in ids[3:15]:
        assert not await services.redis.exists(f"arq:in-progress:{job_id}", f"arq:job:{job_id}", f"arq:retry:{job_id}")
    remaining = {member.decode() for member in await services.redis.zrange(QUEUE, 0, -1)}
    assert remaining == {ids[0], ids[1], ids[15]}
    assert await services.redis.exists(f"arq:in-progress:{ids[0]}")  # the other worker's claim is left alone
