"""A worker that dies outright (SIGKILL) mid-task: another worker takes the task over within
WORKER_DEATH_DETECT_S, resumes the upstream job already created, and the task is charged once. A run whose lease
lapsed and was taken over (a worker presumed dead that comes back) cannot write or settle anything."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

from shared.catalog.pricing import Usage
from shared.services import Services
from shared.tasks import lifecycle, upstream
from shared.tasks.leases import LeaseKeeper, take_over_lapsed
from shared.tasks.records import TaskRecord
from tests.conftest import AccountFactory
from tests.harness import Subprocess, wait_for
from tests.integration.helpers import balance, charge_count, queued_tasks, submit, task, wait_terminal
from tests.simulators import Simulators
from tests.simulators.base import Fault
from worker.heartbeat import live_workers

DETECT_S = 3.0


async def _beating(services: Services, worker: Subprocess) -> bool:
    return any(w["pid"] == worker.proc.pid for w in await live_workers(services.redis))


async def test_a_sigkilled_worker_s_task_is_taken_over_within_the_detection_time(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    sims: Simulators,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    # The first poll of the prediction hangs for a minute: the worker is killed while it waits for it.
    sims.replicate.fail("get", Fault(status=None, delay_s=60))
    # A job timeout of 30 s: without the lease renewals, the next worker would wait ~40 s for arq to hand it over.
    worker_env = {**env, "WORKER_DEATH_DETECT_S": str(DETECT_S), "TASK_JOB_TIMEOUT_S": "30"}
    doomed = Subprocess(["worker"], worker_env, tmp_path / "doomed.log")
    survivor: Subprocess | None = None
    try:
        created = await submit(client, account, "test-up-replicate", prompt="survive me", num_images=1)
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        await wait_for(lambda: _polling(sims), timeout=30, what="the first poll of the prediction")
        survivor = Subprocess(["worker"], worker_env, tmp_path / "survivor.log")
        await wait_for(lambda: _beating(services, survivor), timeout=30, what="the second worker")
        row = await services.db.fetchrow("SELECT status, lease_expires_at FROM tasks WHERE id = $1", uuid.UUID(task_id))
        assert row is not None and row["status"] == "running" and row["lease_expires_at"] is not None

        doomed.kill()
        killed_at = time.monotonic()
        done = await wait_terminal(client, account, task_id, timeout=60)
        taken_over_in = time.monotonic() - killed_at
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
    assert done["status"] == "succeeded", (doomed.output(), survivor.output() if survivor else "")
    # the lease lapses within DETECT_S; the rest is picking the job up, one poll and storing the output
    assert taken_over_in < DETECT_S + 4, taken_over_in
    assert len(sims.replicate.calls_to("create")) == 1  # the taker-over resumed the upstream job, no second one
    assert len(sims.replicate.predictions) == 1
    assert await charge_count(services.db, task_id) == 1
    assert await balance(client, account) == (Decimal("9.25"), Decimal("0"))


async def _polling(sims: Simulators) -> bool:
    return bool(sims.replicate.calls_to("get"))


async def _claim_then_lapse(services: Services, task_id: uuid.UUID) -> tuple[TaskRecord, TaskRecord]:
    """A first run claims the task; its lease lapses (its worker stopped renewing it); a second run takes over."""
    stale = await lifecycle.claim(services.db, task_id, lease_s=60)
    assert stale is not None
    await services.db.execute("UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1", task_id)
    taker = await lifecycle.claim(services.db, task_id, lease_s=60)
    assert taker is not None and taker.attempts == stale.attempts + 1  # the fencing token moved on
    assert await lifecycle.claim(services.db, task_id, lease_s=60) is None  # the taker-over's lease is live
    return stale, taker


async def test_a_run_that_was_taken_over_cannot_write_or_settle(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    created = await submit(client, account, "sdxl", prompt="fenced", width=256, height=256)
    task_id = uuid.UUID(created.json()["id"])
    stale, current = await _claim_then_lapse(services, task_id)
    settle = functools.partial(
        lifecycle.complete, services.db, outputs=[{"type": "image"}], usage=Usage(images=1), charge=400_000,
        provider="local",
    )  # fmt: skip

    # the stale run (its worker came back after a partition): every write is refused
    assert not await upstream.save_submitted(
        services.db, task_id, provider="sim-replicate", upstream_id="stale", progress={}, generation=stale.attempts
    )
    assert not await upstream.save_progress(services.db, task_id, {"status": "x"}, generation=stale.attempts)
    assert not await settle(stale)
    assert not await lifecycle.fail(services.db, task_id, code="stale", message="stale", generation=stale.attempts)
    await lifecycle.release_lease(services.db, task_id, generation=stale.attempts)
    row = await services.db.fetchrow("SELECT status, lease_expires_at, upstream_id FROM tasks WHERE id = $1", task_id)
    assert row is not None and row["status"] == "running" and row["lease_expires_at"] is not None
    assert row["upstream_id"] is None
    assert await charge_count(services.db, str(task_id)) == 0

    # the taker-over settles, once
    assert await settle(current)
    assert (await task(client, account, str(task_id)))["status"] == "succeeded"
    assert await charge_count(services.db, str(task_id)) == 1
    assert await balance(client, account) == (Decimal("9.6"), Decimal("0"))


async def test_leases_are_renewed_for_the_runs_own_claim_and_a_run_that_cannot_renew_stops(
    make_account: AccountFactory, client: httpx.AsyncClient, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    ids = await queued_tasks(client, account, 2, label="l")
    keeper = LeaseKeeper(services.db, lease_s=30, renew_s=10)
    claims = [await lifecycle.claim(services.db, task_id, lease_s=1) for task_id in ids]
    assert all(claim is not None for claim in claims)
    hold = asyncio.Event()

    async def run(claim: TaskRecord) -> None:
        with keeper.holding(claim.id, claim.attempts):
            await hold.wait()

    runs = [asyncio.create_task(run(claim)) for claim in claims if claim is not None]
    await asyncio.sleep(0.05)
    # the second task was taken over by another worker meanwhile: its lease is not ours to renew
    await services.db.execute("UPDATE tasks SET attempts = attempts + 1 WHERE id = $1", ids[1])
    assert await keeper.renew() == 1  # one statement for all, only the run's own claim
    rows = await services.db.fetch(
        "SELECT id, lease_expires_at > now() + interval '20 seconds' AS renewed FROM tasks WHERE id = ANY($1)", ids
    )
    assert {row["id"]: row["renewed"] for row in rows} == {ids[0]: True, ids[1]: False}

    assert keeper.check() == 0  # renewed just now
    keeper.last_renewed -= 25  # no renewal reached the database for most of a lease (a partition) ...
    assert keeper.check() == 0  # ... but the claims themselves are recent
    for run_ in keeper.runs.values():
        run_.claimed -= 25
    assert keeper.check() == 2
    results = await asyncio.gather(*runs, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert keeper.runs == {}


async def test_take_over_hands_a_lapsed_task_s_job_to_the_workers_at_once(
    make_account: AccountFactory, client: httpx.AsyncClient, services: Services
) -> None:
    """arq keeps a dead worker's job "in progress" until its timeout: the take-over releases it."""
    await services.redis.flushdb()
    account = await make_account(credits="10")
    task_id = uuid.UUID((await submit(client, account, "sdxl", prompt="x", width=256, height=256)).json()["id"])
    assert await lifecycle.claim(services.db, task_id, lease_s=60) is not None
    await services.redis.set(f"arq:in-progress:{task_id}", b"1", px=60_000)  # as the dead worker's arq left it
    assert await take_over_lapsed(services.db, services.queue) == 0  # the lease is live: nothing to do
    await services.db.execute("UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1", task_id)
    assert await take_over_lapsed(services.db, services.queue) == 1
    assert not await services.redis.exists(f"arq:in-progress:{task_id}")
    assert await services.redis.zscore("arq:queue", str(task_id)) is not None  # queued for any worker
    await lifecycle.fail(services.db, task_id, code="test_cleanup", message="cleanup")


async def test_a_renewal_neither_waits_for_nor_deadlocks_with_a_transaction_changing_a_task(
    make_account: AccountFactory, client: httpx.AsyncClient, services: Services
) -> None:
    """Another transaction holds one running task's row (a completion, a claim): the renewal of all the worker's
    leases goes on without it instead of waiting, and renews it the next time."""
    await services.redis.flushdb()
    account = await make_account(credits="10")
    ids = await queued_tasks(client, account, 2, label="r")
    keeper = LeaseKeeper(services.db, lease_s=30, renew_s=10)
    claims = [await lifecycle.claim(services.db, task_id, lease_s=30) for task_id in ids]
    with contextlib.ExitStack() as holding:
        for claim in claims:
            assert claim is not None
            holding.enter_context(keeper.holding(claim.id, claim.attempts))
        async with services.db.transaction() as conn:
            await conn.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", ids[0])
            async with asyncio.timeout(5):
                assert await keeper.renew() == 1
        assert await keeper.renew() == 2
    for task_id in ids:
        await lifecycle.fail(services.db, task_id, code="test_cleanup", message="cleanup")
