"""The sweep repairs what a lost queue or a stuck task leaves behind."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx

from shared.services import Services
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
