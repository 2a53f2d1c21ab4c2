"""A stopping process finishes its background work before it lets go of its connections, and a stopping worker
leaves arq's polling loop on its own."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import arq

from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, InProcessWorker, free_port, wait_for
from worker.heartbeat import live_workers


async def _slow_settlement(services: Services) -> int:
    """Work still running when the process is told to stop; it needs the database when it finishes."""
    await asyncio.sleep(0.3)
    value: int = await services.db.fetchval("SELECT 1")
    return value


async def test_the_api_drains_its_background_tasks_before_closing_its_connections(
    settings: Settings, services: Services
) -> None:
    async with ApiServer(replace(settings, port=free_port())) as server:
        api_services = server.services
        settlement = api_services.background.spawn(_slow_settlement(api_services), name="request settlement")
    assert settlement.done() and settlement.result() == 1
    assert api_services.background.running() == []


async def test_the_worker_drains_its_background_tasks_and_leaves_no_trace_in_redis(
    settings: Settings, services: Services
) -> None:
    await services.redis.flushdb()
    worker = InProcessWorker(settings)
    await worker.start()
    try:
        running = worker.process.running
        assert running is not None
        await wait_for(lambda: live_workers(services.redis), what="the worker's heartbeat")
        mail = running.services.background.spawn(_slow_settlement(running.services), name="mail")
    finally:
        await worker.stop()
    assert mail.done() and mail.result() == 1
    assert running.services.background.running() == []  # the heartbeat and the flusher ended too
    assert await live_workers(services.redis) == []
    assert not await services.redis.exists(running.worker.health_check_key)


async def test_stopping_a_worker_ends_arqs_polling_loop_between_iterations(
    settings: Settings, services: Services
) -> None:
    worker = InProcessWorker(settings)
    await worker.start()
    running = worker.process.running
    assert running is not None
    await asyncio.sleep(0.1)  # a few polling iterations

    async def idle() -> bool:  # the sweeps run at start-up take longer than that on a loaded machine
        return all(task.done() for task in running.worker.tasks.values())

    await wait_for(idle, timeout=30, what="the start-up sweeps to end")
    try:
        async with asyncio.timeout(30):
            await worker.stop()
    except TimeoutError:
        raise AssertionError(
            f"arq {arq.VERSION}'s Worker.main() no longer returns in burst mode with no jobs left to start "
            "(max_burst_jobs=0): worker/process.py must end the polling loop another way"
        ) from None
    # Idle, so no job was cancelled: the loop returned by itself, it was not cancelled inside an iteration.
    assert running.polling.done() and not running.polling.cancelled() and running.polling.result() is None
