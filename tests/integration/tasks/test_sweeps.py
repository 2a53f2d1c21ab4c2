"""The sweep repairs what a lost queue or a stuck task leaves behind."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import httpx
from arq.constants import in_progress_key_prefix

from shared.infra import jobs
from shared.services import Services
from shared.tasks import lifecycle
from shared.tasks.sweeps import fail_overdue, requeue_orphans
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, submit, task, wait_terminal


async def test_a_task_whose_job_was_lost_is_requeued_and_runs(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: object
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    created = (await submit(client, account, "sdxl", prompt="lost", width=256, height=256)).json()
    await services.redis.flushdb()  # Redis restarted empty: the job is gone, the task is still queued
    assert await requeue_orphans(services.db, services.queue, older_than_s=0) >= 1
    assert await requeue_orphans(services.db, services.queue, older_than_s=0) == 0  # the job exists now

    worker = InProcessWorker(settings)  # type: ignore[arg-type]
    await worker.start()
    try:
        done = await wait_terminal(client, account, created["id"])
    finally:
        await worker.stop()
    assert done["status"] == "succeeded"
    assert await balance(client, account) == (Decimal("4.6"), Decimal("0"))


async def test_a_task_past_its_deadline_is_failed_and_its_hold_voided(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    created = (await submit(client, account, "sdxl", prompt="stuck")).json()
    await services.db.execute(
        "UPDATE tasks SET deadline_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(created["id"])
    )
    assert await fail_overdue(services.db) >= 1
    final = await task(client, account, created["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "deadline_exceeded"
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_a_job_held_in_progress_for_a_worker_that_died_between_polls_is_released_and_runs(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: object
) -> None:
    """A worker handed a polled task back (lease released) and died before arq re-scheduled the job: arq holds the
    job "in progress" until the job timeout. The sweep frees it; a job that only just became due is left alone."""
    await services.redis.flushdb()
    account = await make_account(credits="5")
    ids = [(await submit(client, account, "sdxl", prompt=f"p{i}", width=256, height=256)).json()["id"] for i in (0, 1)]
    now_ms = int(time.time() * 1000)
    for task_id, due_ms in zip(ids, (now_ms - 60_000, now_ms), strict=True):
        claim = await lifecycle.claim(services.db, uuid.UUID(task_id), lease_s=60)
        assert claim is not None
        await lifecycle.release_lease(services.db, claim.id, generation=claim.attempts)  # as a poll hands it back
        await services.redis.set(in_progress_key_prefix + task_id, b"1", px=120_000)  # the dead worker's arq
        await services.redis.zadd(jobs.QUEUE, {task_id: due_ms})
    assert await requeue_orphans(services.db, services.queue, older_than_s=30) >= 1  # other tests' orphans too
    assert not await services.redis.exists(in_progress_key_prefix + ids[0])
    assert await services.redis.exists(in_progress_key_prefix + ids[1])  # due just now: a live worker's, maybe

    await services.redis.delete(in_progress_key_prefix + ids[1])
    worker = InProcessWorker(settings)  # type: ignore[arg-type]
    await worker.start()
    try:
        done = [await wait_terminal(client, account, task_id) for task_id in ids]
    finally:
        await worker.stop()
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
