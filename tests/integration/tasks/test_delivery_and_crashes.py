"""arq delivers at least once and workers die: tasks still end terminal, charged exactly once."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

from shared.services import Services
from shared.tasks.execution import TaskRuntime, execute_task
from tests.conftest import AccountFactory
from tests.harness import Subprocess, wait_for
from tests.integration.helpers import balance, submit, task, wait_terminal


def runtime(services: Services, lease_s: float = 30) -> TaskRuntime:
    return TaskRuntime(
        db=services.db,
        catalog=services.catalog,
        providers=services.providers,
        storage=services.storage,
        lease_s=lease_s,
    )


async def charges_for(services: Services, task_id: str) -> int:
    count: int = await services.db.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE task_id = $1 AND kind = 'charge'", uuid.UUID(task_id)
    )
    return count


async def test_worker_killed_mid_task_is_recovered_and_charged_once(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    response = await submit(client, account, "test-slow-image", prompt="slow one", width=256, height=256)
    task_id = response.json()["id"]

    # A short job timeout makes arq hand the job to another worker ~12 s after the first one vanished.
    worker_env = {**env, "TASK_JOB_TIMEOUT_S": "2", "LOG_LEVEL": "INFO"}
    first = Subprocess(["worker"], worker_env, tmp_path / "worker1.log")
    try:
        await wait_for(
            lambda: _status_is(client, account, task_id, "running"),
            timeout=30,
            what="the first worker to start the task",
        )
        first.kill()  # SIGKILL: no chance to clean up
    finally:
        first.stop()
    assert (await task(client, account, task_id))["status"] == "running"

    second = Subprocess(["worker"], worker_env, tmp_path / "worker2.log")
    try:
        done = await wait_terminal(client, account, task_id, timeout=60)
    finally:
        second.stop()
    assert done["status"] == "succeeded", (done, second.output())
    assert await charges_for(services, task_id) == 1
    attempts = await services.db.fetchval("SELECT attempts FROM tasks WHERE id = $1", uuid.UUID(task_id))
    assert attempts == 2
    assert await balance(client, account) == (Decimal("8.5"), Decimal("0"))


async def _status_is(client: httpx.AsyncClient, account: object, task_id: str, status: str) -> bool:
    return (await task(client, account, task_id))["status"] == status  # type: ignore[arg-type]


async def test_the_same_job_delivered_twice_at_once_charges_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    response = await submit(client, account, "sdxl", prompt="twice", width=256, height=256)
    task_id = uuid.UUID(response.json()["id"])
    rt = runtime(services)
    await asyncio.gather(execute_task(rt, task_id), execute_task(rt, task_id))
    await execute_task(rt, task_id)  # and once more after it finished
    done = await task(client, account, str(task_id))
    assert done["status"] == "succeeded"
    assert await charges_for(services, str(task_id)) == 1
    assert await balance(client, account) == (Decimal("9.6"), Decimal("0"))


async def test_a_redelivery_after_the_lease_expired_cannot_settle_twice(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """The first run is still working when its lease runs out and a second run takes over: both finish,
    one settles, the other's settlement finds the task no longer running."""
    await services.redis.flushdb()
    account = await make_account(credits="10")
    response = await submit(client, account, "test-slow-image", prompt="race", width=256, height=256)
    task_id = uuid.UUID(response.json()["id"])
    rt = runtime(services, lease_s=0.2)  # the lease ends long before the 1.5 s provider call
    first = asyncio.create_task(execute_task(rt, task_id))
    await asyncio.sleep(0.5)
    second = asyncio.create_task(execute_task(rt, task_id))
    await asyncio.gather(first, second)
    done = await task(client, account, str(task_id))
    assert done["status"] == "succeeded"
    assert await charges_for(services, str(task_id)) == 1
    assert await balance(client, account) == (Decimal("8.5"), Decimal("0"))
