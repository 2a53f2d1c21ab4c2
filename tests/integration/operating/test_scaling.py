"""Several workers, rolling restarts and lost queues: every task ends, and is charged once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

import httpx

from shared.services import Services
from shared.tasks.sweeps import requeue_orphans
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import ROOT, InProcessWorker, Subprocess, free_port, wait_for
from tests.integration.helpers import balance, charge_count, submit, task, wait_terminal
from tests.integration.operating.test_platform import conduit
from worker.heartbeat import live_workers

TERMINAL = ("succeeded", "failed", "canceled")
SLOW_TEXT = {"messages": [{"role": "user", "content": "take your time"}], "max_tokens": 16}


async def _status_is(client: httpx.AsyncClient, account: Account, task_id: str, status: str) -> bool:
    return (await task(client, account, task_id))["status"] == status


async def _exited(worker: Subprocess) -> bool:
    return worker.proc.poll() is not None


async def _beating(services: Services, worker: Subprocess) -> bool:
    return any(w["pid"] == worker.proc.pid for w in await live_workers(services.redis))


async def _all_charged_once(client: httpx.AsyncClient, account: Account, services: Services, ids: list[str]) -> None:
    for task_id in ids:
        done = await wait_terminal(client, account, task_id, timeout=90)
        assert done["status"] == "succeeded", done
        assert await charge_count(services.db, task_id) == 1
        voids = await services.db.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE task_id = $1 AND kind = 'void'", uuid.UUID(task_id)
        )
        assert voids == 0


async def test_sigterm_lets_the_running_job_finish_and_takes_no_new_one(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    first = (await submit(client, account, "test-slow-image", prompt="finish me", width=256, height=256)).json()
    worker = Subprocess(["worker"], {**env, "WORKER_SHUTDOWN_GRACE_S": "30"}, tmp_path / "worker.log")
    try:
        await wait_for(lambda: _status_is(client, account, first["id"], "running"), timeout=30, what="the job to start")
        worker.proc.send_signal(signal.SIGTERM)
        later = (await submit(client, account, "sdxl", prompt="not for you", width=256, height=256)).json()
        await wait_for(lambda: _exited(worker), timeout=30, what="the worker to exit")
        assert worker.proc.returncode == 0, worker.output()
    finally:
        worker.stop()
    done = await task(client, account, first["id"])
    assert done["status"] == "succeeded", worker.output()  # finished within the grace period
    assert await charge_count(services.db, first["id"]) == 1
    assert (await task(client, account, later["id"]))["status"] == "queued"  # a stopping worker takes no job

    replacement = Subprocess(["worker"], env, tmp_path / "worker2.log")
    try:
        assert (await wait_terminal(client, account, later["id"], timeout=60))["status"] == "succeeded"
    finally:
        replacement.stop()
    assert await balance(client, account) == (Decimal("8.1"), Decimal("0"))


async def test_sigterm_past_the_grace_period_hands_the_task_back_at_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="100")
    created = await client.post(
        "/v1/tasks", json={"model": "test-very-slow-text", "input": SLOW_TEXT}, headers=account.headers
    )
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    # A long job timeout: without the hand-back, the next worker would wait ~125 s for the lease to end.
    worker_env = {**env, "WORKER_SHUTDOWN_GRACE_S": "0.5", "TASK_JOB_TIMEOUT_S": "120"}
    worker = Subprocess(["worker"], worker_env, tmp_path / "worker.log")
    try:
        await wait_for(lambda: _status_is(client, account, task_id, "running"), timeout=30, what="the job to start")
        worker.proc.send_signal(signal.SIGTERM)
        await wait_for(lambda: _exited(worker), timeout=30, what="the worker to exit")
    finally:
        worker.stop()
    row = await services.db.fetchrow("SELECT status, lease_expires_at FROM tasks WHERE id = $1", uuid.UUID(task_id))
    assert row is not None and row["status"] == "running" and row["lease_expires_at"] is None, worker.output()

    started = time.monotonic()
    replacement = Subprocess(["worker"], worker_env, tmp_path / "worker2.log")
    try:
        done = await wait_terminal(client, account, task_id, timeout=60)
    finally:
        replacement.stop()
    assert done["status"] == "succeeded", replacement.output()
    assert time.monotonic() - started < 45  # taken over at once, not after the 125 s lease
    assert await charge_count(services.db, task_id) == 1


async def test_rolling_restart_of_workers_under_load_charges_each_task_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="200")
    worker_env = {**env, "WORKER_SHUTDOWN_GRACE_S": "1"}
    workers = [Subprocess(["worker"], worker_env, tmp_path / f"w{i}.log") for i in range(2)]
    ids: list[str] = []
    try:
        for round_ in range(4):
            for worker in workers:  # up and running (a worker killed while it starts up just dies: no job lost)
                await wait_for(lambda w=worker: _beating(services, w), timeout=30, what="the worker's heartbeat")  # type: ignore[misc]
            for i in range(6):
                model = "test-slow-image" if i % 2 else "sdxl"
                response = await submit(client, account, model, prompt=f"load {round_}-{i}", width=256, height=256)
                ids.append(response.json()["id"])
            # Replace one worker (SIGTERM, then a new one), as a rolling deploy does.
            old = workers.pop(0)
            old.proc.send_signal(signal.SIGTERM)
            await wait_for(lambda old=old: _exited(old), timeout=30, what="a worker to exit")  # type: ignore[misc]
            assert old.stop() == 0, old.output()
            workers.append(Subprocess(["worker"], worker_env, tmp_path / f"w{round_ + 2}.log"))
        await _all_charged_once(client, account, services, ids)
    finally:
        for worker in workers:
            worker.stop()
    spent = await services.db.fetchval(
        "SELECT sum(credits_charged) FROM tasks WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids]
    )
    assert spent == 12 * 400_000 + 12 * 1_500_000
    assert await balance(client, account) == (Decimal("200") - Decimal(spent) / 1_000_000, Decimal("0"))


async def test_redis_restarted_empty_mid_run_loses_no_task(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: object
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="50")
    ids = [
        (await submit(client, account, "test-slow-image", prompt=f"r{i}", width=256, height=256)).json()["id"]
        for i in range(6)
    ]
    async with InProcessWorker(settings, max_jobs=2):  # type: ignore[arg-type]
        await wait_for(lambda: _status_is(client, account, ids[0], "running"), timeout=30, what="work to start")
        await services.redis.flushdb()  # the queue is gone: queued tasks have no job any more
        # The sweep (every 15 s on some worker) puts them back; here it is called at once.
        assert await requeue_orphans(services.db, services.queue, older_than_s=0) >= 1
        await _all_charged_once(client, account, services, ids)


async def test_honcho_runs_the_procfile_with_four_workers(
    env: dict[str, str], services: Services, tmp_path: Path, make_account: AccountFactory
) -> None:
    """``honcho start -c worker=4`` (the Procfile runner documented in the README): four live workers."""
    await services.redis.flushdb()
    port = str(free_port())
    proc, log = _start_honcho(env, port, tmp_path / "honcho.log")

    async def four_alive() -> bool:
        result = await asyncio.to_thread(conduit, ["workers", "--check"], env)
        return result.returncode == 0 and json.loads(result.stdout)["alive"] >= 4

    try:
        await wait_for(four_alive, timeout=90, interval=1, what="four workers to report")
        account = await make_account(credits="5")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await wait_for(lambda: _ready(http), timeout=60, interval=0.5, what="the web process")
            created = (await submit(http, account, "sdxl", prompt="via honcho", width=256, height=256)).json()
            assert (await wait_terminal(http, account, created["id"], timeout=60))["status"] == "succeeded"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    gone = await asyncio.to_thread(conduit, ["workers", "--check"], env)
    assert gone.returncode == 1, (gone.stdout, (tmp_path / "honcho.log").read_text())  # they deregistered


def _start_honcho(env: dict[str, str], port: str, log_path: Path) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    log = log_path.open("wb")
    bin_dir = ROOT / ".venv" / "bin"
    proc_env = {**os.environ, **env, "PORT": port, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    proc_env.update(PYTHONWARNINGS="ignore", PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    command = [str(bin_dir / "honcho"), "start", "-p", port, "-c", "worker=4", "web", "worker"]
    proc = subprocess.Popen(
        command, env=proc_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return proc, log


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False
