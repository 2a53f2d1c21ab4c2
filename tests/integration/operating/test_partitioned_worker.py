"""A worker cut off from PostgreSQL (a partition: its packets go nowhere, nothing is refused) while it runs a task
and while new tasks arrive. It had created an upstream job it could not save: the worker that takes the task over
resumes that job instead of creating a second one. It takes no new job while the database does not answer, so new
tasks go to the other workers at once rather than waiting for the partition to end; it takes jobs again after."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from shared.services import Services
from shared.settings import Settings
from shared.tasks.upstream import SUBMITTED_KEY, SubmittedJobs
from tests.conftest import AccountFactory
from tests.harness import Subprocess, free_port, wait_for
from tests.integration.helpers import balance, charge_count, submit, wait_terminal
from tests.integration.proxy import UnixProxy, embedded_sockets
from tests.simulators import Simulators
from tests.simulators.base import Fault
from worker.heartbeat import live_workers

DETECT_S = 3.0


@pytest.fixture
async def pg_proxy(settings: Settings) -> AsyncIterator[UnixProxy]:
    proxy = UnixProxy(embedded_sockets(settings)[0])
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.heal()
        await proxy.stop()


def _worker_env(env: dict[str, str], settings: Settings, proxy: UnixProxy | None) -> dict[str, str]:
    worker_env = {**env, "WORKER_DEATH_DETECT_S": str(DETECT_S), "TASK_JOB_TIMEOUT_S": "30", "WORKER_HEARTBEAT_S": "1"}
    if proxy is not None:
        database = urlsplit(settings.require_connections()[0]).path
        worker_env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{proxy.port}{database}"
    return worker_env


async def test_a_worker_cut_off_from_postgresql_hands_over_its_upstream_job_and_takes_no_new_work(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    settings: Settings,
    sims: Simulators,
    env: dict[str, str],
    pg_proxy: UnixProxy,
    tmp_path: Path,
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    # The prediction's creation takes 1.5 s: the partition begins while the upstream is creating it.
    sims.replicate.fail("create", Fault(status=None, delay_s=1.5))
    cut = Subprocess(["worker"], _worker_env(env, settings, pg_proxy), tmp_path / "cut.log")
    other: Subprocess | None = None
    try:
        created = await submit(client, account, "test-up-replicate", prompt="created once", num_images=1)
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        await wait_for(lambda: _creating(sims), timeout=30, what="the upstream create")
        pg_proxy.partition()
        # the worker keeps the job it created in Redis, then cannot save it in PostgreSQL
        await wait_for(lambda: services.redis.exists(SUBMITTED_KEY + task_id), timeout=10, what="the job kept")
        # its heartbeat (through Redis, which it still reaches) says it takes no job
        await wait_for(lambda: _accepting(services, cut, False), timeout=10, what="the cut worker pausing")

        other = Subprocess(["worker"], _worker_env(env, settings, None), tmp_path / "other.log")
        # new tasks while the partition lasts: the other worker runs them, none waits for the cut one
        more = [await submit(client, account, "sdxl", prompt=f"new {i}", width=256, height=256) for i in range(3)]
        done = await wait_terminal(client, account, task_id, timeout=30)
        news = [await wait_terminal(client, account, m.json()["id"], timeout=15) for m in more]
        assert cut.proc.poll() is None  # still running, still cut off
        row = await services.db.fetchrow("SELECT attempts FROM tasks WHERE id = $1", uuid.UUID(task_id))

        pg_proxy.heal()
        await wait_for(lambda: _accepting(services, cut, True), timeout=15, what="the cut worker resuming")
    finally:
        cut.stop()
        if other is not None:
            other.stop()
    logs = f"cut:\n{cut.output()[-3000:]}\nother:\n{other.output()[-3000:] if other else ''}"
    assert done["status"] == "succeeded", logs
    assert [n["status"] for n in news] == ["succeeded"] * 3, logs
    assert row is not None and row["attempts"] >= 2  # taken over from the cut worker
    # one upstream job, created by the cut worker and resumed by the other
    assert len(sims.replicate.calls_to("create")) == 1, logs
    assert len(sims.replicate.predictions) == 1
    assert not any(p.canceled for p in sims.replicate.predictions.values())
    assert await charge_count(services.db, task_id) == 1
    assert await balance(client, account) == (Decimal("10") - Decimal("0.75") - 3 * Decimal("0.4"), Decimal("0"))


async def _creating(sims: Simulators) -> bool:
    return bool(sims.replicate.calls_to("create"))


async def _accepting(services: Services, worker: Subprocess, accepting: bool) -> bool:
    records = [w for w in await live_workers(services.redis) if w["pid"] == worker.proc.pid]
    return bool(records) and records[0]["accepting_jobs"] is accepting


async def test_the_kept_upstream_job_lasts_until_the_deadline_and_redis_out_of_reach_only_loses_it(
    services: Services,
) -> None:
    task_id = uuid.uuid4()
    kept = SubmittedJobs(services.redis)
    assert await kept.recall(task_id) is None
    await kept.remember(task_id, "sim-replicate", "pred-1", ttl_s=30)
    assert await kept.recall(task_id) == ("sim-replicate", "pred-1")
    assert 25 <= await services.redis.ttl(SUBMITTED_KEY + str(task_id)) <= 30

    unreachable = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=5)
    lost = SubmittedJobs(unreachable, timeout_s=0.5)
    began = time.monotonic()
    await lost.remember(task_id, "sim-replicate", "pred-2", ttl_s=30)  # logged, not raised
    assert await lost.recall(task_id) is None
    assert time.monotonic() - began < 3
    await unreachable.aclose()
    assert await kept.recall(task_id) == ("sim-replicate", "pred-1")
