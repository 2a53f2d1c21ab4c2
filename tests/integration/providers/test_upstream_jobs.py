"""Long-running upstream jobs: submitted once, their id saved before polling, polled by re-scheduling,
resumed after a worker dies, cancelled upstream when the task is cancelled or runs past its deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

from shared.services import Services
from shared.settings import Settings
from shared.tasks.execution import TaskRuntime, execute_task
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, Subprocess, wait_for
from tests.integration.helpers import balance, charge_count, submit, task, wait_terminal
from tests.simulators import Simulators
from tests.simulators.base import Fault


async def upstream_id_of(services: Services, task_id: str) -> str | None:
    value: str | None = await services.db.fetchval("SELECT upstream_id FROM tasks WHERE id = $1", uuid.UUID(task_id))
    return value


async def test_an_upstream_job_that_never_finishes_fails_at_the_deadline_and_is_cancelled_there(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    account = await make_account(credits="5")
    response = await submit(client, account, "test-up-replicate-never", prompt="forever", width=256, height=256)
    task_id = response.json()["id"]
    done = await wait_terminal(client, account, task_id, timeout=40)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "deadline_exceeded"
    assert done["credits"]["charged"] == 0
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))
    prediction_id = await upstream_id_of(services, task_id)
    assert prediction_id in sims.replicate.predictions
    assert len(sims.replicate.calls_to("get")) >= 3  # it was polled meanwhile...
    await wait_for(lambda: _canceled(sims, prediction_id), what="the upstream cancel")  # ...and then stopped
    assert len(sims.replicate.calls_to("create")) == 1


async def _canceled(sims: Simulators, prediction_id: str | None) -> bool:
    return any(call.path == f"/v1/predictions/{prediction_id}/cancel" for call in sims.replicate.calls_to("cancel"))


async def test_a_worker_killed_while_polling_is_resumed_on_the_same_upstream_job(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    sims: Simulators,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    response = await submit(client, account, "test-up-replicate-slow", prompt="resume me", width=256, height=256)
    task_id = response.json()["id"]

    worker_env = {**env, "TASK_JOB_TIMEOUT_S": "3", "LOG_LEVEL": "INFO"}
    first = Subprocess(["worker"], worker_env, tmp_path / "worker1.log")
    try:
        prediction_id = await wait_for(
            lambda: upstream_id_of(services, task_id), timeout=30, what="the upstream job id to be saved"
        )
        await wait_for(lambda: _polled(sims), timeout=30, what="the first worker to poll")
        first.kill()  # SIGKILL while polling: no chance to clean up
    finally:
        first.stop()
    assert (await task(client, account, task_id))["status"] == "running"

    second = Subprocess(["worker"], worker_env, tmp_path / "worker2.log")
    try:
        done = await wait_terminal(client, account, task_id, timeout=60)
    finally:
        second.stop()
    assert done["status"] == "succeeded", (done, second.output())
    assert len(sims.replicate.calls_to("create")) == 1  # exactly one upstream job was paid for
    assert list(sims.replicate.predictions) == [prediction_id]
    assert {call.path for call in sims.replicate.calls_to("get")} == {f"/v1/predictions/{prediction_id}"}
    assert await charge_count(services.db, task_id) == 1
    assert await balance(client, account) == (Decimal("4.25"), Decimal("0"))


async def _polled(sims: Simulators) -> bool:
    return bool(sims.replicate.calls_to("get"))


async def test_cancelling_a_task_cancels_its_upstream_job(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    sims: Simulators,
    services: Services,
) -> None:
    account = await make_account(credits="5")
    replicate = (await submit(client, account, "test-up-replicate-slow", prompt="stop", width=256, height=256)).json()
    fal = (await submit(client, account, "test-up-fal-slow", prompt="stop", width=256, height=256)).json()
    prediction_id = await wait_for(lambda: upstream_id_of(services, replicate["id"]), what="the prediction id")
    request_id = await wait_for(lambda: upstream_id_of(services, fal["id"]), what="the fal request id")

    for created in (replicate, fal):
        response = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
        assert response.status_code == 200 and response.json()["status"] == "canceled"
    await wait_for(lambda: _canceled(sims, prediction_id), what="the Replicate cancel")

    async def fal_canceled() -> bool:
        return sims.fal.requests[str(request_id)].canceled

    await wait_for(fal_canceled, what="the fal cancel")
    [call] = sims.fal.calls_to("cancel")
    assert call.method == "PUT" and call.path == f"/fal-ai/flux/requests/{request_id}/cancel"
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))
    for created in (replicate, fal):
        final = await task(client, account, created["id"])
        assert (final["status"], final["outputs"]) == ("canceled", [])


async def test_a_task_cancelled_while_its_upstream_job_is_being_created_cancels_that_job(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, sims: Simulators
) -> None:
    await services.redis.flushdb()  # no worker: this test runs the job itself
    account = await make_account(credits="5")
    sims.replicate.fail("create", Fault(status=None, delay_s=1.0))  # the create answers after a second
    created = (await submit(client, account, "test-up-replicate", prompt="race")).json()
    rt = TaskRuntime(db=services.db, catalog=services.catalog, providers=services.providers,
                     storage=services.storage, lease_s=30)  # fmt: skip
    job = asyncio.create_task(execute_task(rt, uuid.UUID(created["id"])))

    async def creating() -> bool:
        return bool(sims.replicate.calls_to("create"))

    await wait_for(creating, what="the create call")
    response = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
    assert response.json()["status"] == "canceled"
    assert await job is None  # nothing to poll: the task is no longer ours
    [prediction_id] = sims.replicate.predictions
    assert await _canceled(sims, prediction_id)
    assert await upstream_id_of(services, created["id"]) is None
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_polling_is_not_limited_by_the_job_retry_count(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    settings: Settings,
    sims: Simulators,
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    running = InProcessWorker(dataclasses.replace(settings, task_max_tries=2))
    await running.start()
    try:
        response = await submit(client, account, "test-up-fal-slow", prompt="many polls", width=256, height=256)
        done = await wait_terminal(client, account, response.json()["id"], timeout=60)
    finally:
        await running.stop()
    assert done["status"] == "succeeded", done
    assert len(sims.fal.calls_to("status")) > 2  # far more runs of the job than its max_tries
