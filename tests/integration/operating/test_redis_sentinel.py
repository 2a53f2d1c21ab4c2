"""Redis behind Sentinel (REDIS_SENTINELS): the API and a worker find the primary through a Sentinel, and keep
working after a failover (the primary demoted, then killed): tasks submitted after it are queued on the new primary
and run (what the old primary had that its replica did not is put back by the sweep from PostgreSQL:
``test_scaling.test_redis_restarted_empty_mid_run_loses_no_task``)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, free_port, wait_for
from tests.integration.helpers import charge_count, submit, wait_terminal
from tests.integration.operating.external import ServerProcess, redis_sentinel, redis_server

SERVICE = "conduit-test"


async def _primary_port(sentinel: Redis) -> int:
    _, port = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
    return int(port)


async def _knows_the_replica(sentinel: Redis) -> bool:
    return bool(await sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE))


async def _in_sync(replica: Redis) -> bool:
    info = await replica.info("replication")
    return info.get("master_link_status") == "up"


async def test_web_and_worker_follow_a_sentinel_failover(
    make_account: AccountFactory, services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "redis"
    primary = redis_server(folder, "primary")
    replica = redis_server(folder, "replica", f"replicaof 127.0.0.1 {primary.port}")
    sentinel_proc = redis_sentinel(folder, "sentinel", SERVICE, primary.port)
    processes: list[ServerProcess] = [primary, replica, sentinel_proc]
    sentinel = Redis(port=sentinel_proc.port)
    replica_client = Redis(port=replica.port)
    port = free_port()
    settings = Settings.from_env({
        **{name: value for name, value in env.items() if name != "REDIS_URL"},
        "REDIS_SENTINELS": f"127.0.0.1:{sentinel_proc.port}", "REDIS_SENTINEL_SERVICE": SERVICE,
        "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    })  # fmt: skip
    try:
        await wait_for(lambda: _in_sync(replica_client), timeout=30, what="the replica to sync")
        await wait_for(lambda: _knows_the_replica(sentinel), timeout=30, what="the Sentinel to find the replica")
        account = await make_account(credits="10")
        async with (
            ApiServer(settings) as api,
            InProcessWorker(settings),
            httpx.AsyncClient(base_url=api.base_url, timeout=30) as client,
        ):
            before = (await submit(client, account, "sdxl", prompt="before", width=256, height=256)).json()
            assert (await wait_terminal(client, account, before["id"]))["status"] == "succeeded"

            # The primary is demoted by a failover, then dies; the replica is the primary now.
            await sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)

            async def promoted() -> bool:
                return await _primary_port(sentinel) == replica.port

            await wait_for(promoted, timeout=30, what="the Sentinel to promote the replica")
            primary.stop(hard=True)
            started = time.monotonic()
            after = await submit(client, account, "sdxl", prompt="after", width=256, height=256)
            assert after.status_code == 202, after.text  # the API's rate limiter and queue reach the new primary
            done = await wait_terminal(client, account, after.json()["id"], timeout=60)
            assert done["status"] == "succeeded"  # the worker polls the new primary
            assert time.monotonic() - started < 30
            assert await charge_count(services.db, after.json()["id"]) == 1
    finally:
        await sentinel.aclose()
        await replica_client.aclose()
        for process in processes:
            process.stop()
