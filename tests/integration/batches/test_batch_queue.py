"""Batch work stays batch work: the tasks of a batch submit are handed to the batch queue by every path that hands
them over (the submit, the sweep after Redis lost their jobs or their worker's lease expired, an operator's
retry), never to the interactive queue; single submits stay on the interactive queue."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx

from shared.infra import jobs
from shared.services import Services
from shared.tasks.leases import take_over_lapsed
from shared.tasks.sweeps import requeue_orphans
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import submit, wait_terminal
from tests.simulators import Simulators

if TYPE_CHECKING:
    from tests.conftest import TestAccount


async def _queues(services: Services, task_id: str) -> tuple[bool, bool]:
    """Whether the task's job waits on (the batch queue, the interactive queue)."""
    on_batch = await services.redis.zscore(jobs.BATCH_QUEUE, task_id) is not None
    on_interactive = await services.redis.zscore(jobs.QUEUE, task_id) is not None
    return on_batch, on_interactive


async def _submit_batch(client: httpx.AsyncClient, account: TestAccount, n: int) -> list[str]:
    tasks = [{"model": "flux-schnell", "input": {"prompt": f"a fox number {i}"}} for i in range(n)]
    response = await client.post("/v1/tasks/batch", json={"tasks": tasks}, headers=account.headers)
    assert response.status_code == 202, response.text
    return [item["task"]["id"] for item in response.json()["data"]]


async def test_batch_tasks_are_handed_over_again_on_the_batch_queue_only(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account, admin = await make_account(credits="20"), await make_account(role="admin")
    queued, taken_over, retried = await _submit_batch(client, account, 3)
    single = (await submit(client, account, "flux-schnell", prompt="an interactive fox")).json()["id"]
    for task_id in (queued, taken_over, retried):
        assert await _queues(services, task_id) == (True, False)  # the submit: batch queue
    assert await _queues(services, single) == (False, True)

    # Redis loses every job; one batch task was running on a worker whose lease has expired since.
    await services.redis.flushdb()
    await services.db.execute(
        "UPDATE tasks SET status = 'running', started_at = now(), lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        uuid.UUID(taken_over),
    )
    assert await requeue_orphans(services.db, services.queue, older_than_s=0) >= 4  # other tests' tasks too
    for task_id in (queued, taken_over, retried):
        assert await _queues(services, task_id) == (True, False), task_id
    assert await _queues(services, single) == (False, True)

    # Its worker died: the lease keeper of another worker hands the task over, to the batch queue again.
    await services.redis.flushdb()
    await services.db.execute(
        "UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(taken_over)
    )
    assert await take_over_lapsed(services.db, services.queue) >= 1
    assert await _queues(services, taken_over) == (True, False)

    # An operator hands a stuck batch task back to the workers: the batch queue again.
    await services.redis.flushdb()
    response = await client.post(f"/v1/admin/tasks/{retried}/retry", headers=admin.headers)
    assert response.status_code == 200 and response.json()["requeued"] is True, response.text
    assert await _queues(services, retried) == (True, False)
    await services.redis.flushdb()


async def test_a_batch_task_polling_its_upstream_job_is_rescheduled_on_the_batch_queue(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, worker: InProcessWorker,
    sims: Simulators,
) -> None:  # fmt: skip
    """A task whose upstream job takes seconds is polled by re-scheduling its job (arq's Retry): every time, on the
    batch queue it came from."""
    account = await make_account(credits="5")
    tasks = [{"model": "test-up-replicate-slow", "input": {"prompt": "a slow fox", "width": 256, "height": 256}}]
    response = await client.post("/v1/tasks/batch", json={"tasks": tasks}, headers=account.headers)
    assert response.status_code == 202, response.text
    task_id = response.json()["data"][0]["task"]["id"]

    seen: list[tuple[bool, bool]] = []

    async def polled_twice() -> bool:
        seen.append(await _queues(services, task_id))
        return len(sims.replicate.calls_to("get")) >= 2

    await wait_for(polled_twice, timeout=30, interval=0.1, what="the upstream job to be polled twice")
    assert (True, False) in seen and all(not on_interactive for _, on_interactive in seen), seen
    done = await wait_terminal(client, account, task_id, timeout=60)
    assert done["status"] == "succeeded"
