"""API rate limits: requests per minute and in-flight tasks, per key and per account, with headers;
held across two API processes; slots released when tasks end and repaired when a release is lost; Redis
unavailable (fail open or closed)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.embedded import EmbeddedServices
from shared.accounts.keys import create_api_key
from shared.infra.errors import ServiceUnavailable
from shared.ratelimits.limiter import Rate, RateLimiter
from shared.ratelimits.request_limits import set_account_limits
from shared.services import Services
from shared.settings import Settings
from shared.tasks import lifecycle
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import (
    ApiServer,
    InProcessWorker,
    Subprocess,
    free_port,
    wait_for,
)
from tests.harness import TestServers as Servers
from tests.harness import test_env as conduit_env
from tests.integration.helpers import wait_terminal

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a limited lighthouse", "width": 256, "height": 256}}


async def limited(
    make_account: AccountFactory,
    services: Services,
    *,
    rpm: int | None = None,
    inflight: int | None = None,
    key_rpm: int | None = None,
    key_inflight: int | None = None,
) -> Account:
    """A fresh account (its key not yet cached by any API process) with its own limits."""
    account = await make_account(credits="100")
    await set_account_limits(services.db, services.redis, account.id, rpm=rpm, max_inflight=inflight)
    await services.db.execute(
        "UPDATE api_keys SET rate_limit_rpm = $2, max_inflight_tasks = $3 WHERE account_id = $1",
        account.id,
        key_rpm,
        key_inflight,
    )
    return account


async def cancel_all(services: Services, account_id: uuid.UUID) -> None:
    """End the account's queued tasks properly (holds voided, slots released)."""
    rows = await services.db.fetch("SELECT id FROM tasks WHERE account_id = $1 AND status = 'queued'", account_id)
    for row in rows:
        await lifecycle.cancel(services.db, account_id, row["id"], slots=services.request_limits.slots)


def slot_key(services: Services, scope: str, ident: object) -> str:
    return f"{services.limiter.prefix}tasks:{scope}:{ident}"


async def test_headers_and_the_429(client: httpx.AsyncClient, make_account: AccountFactory, services: Services) -> None:
    account = await limited(make_account, services, rpm=5)
    for remaining in (4, 3, 2, 1, 0):
        response = await client.get("/v1/account", headers=account.headers)
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "5"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    refused = await client.get("/v1/account", headers=account.headers)
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "message": "this account's rate limit (5 requests per minute) is reached; slow down",
        "param": None,
    }
    assert 11 <= int(refused.headers["Retry-After"]) <= 12  # one request every 12 s
    assert refused.headers["RateLimit-Limit"] == "5" and refused.headers["RateLimit-Remaining"] == "0"
    assert 55 <= int(refused.headers["RateLimit-Reset"]) <= 60
    # Other routes count too, and errors carry the headers as well.
    missing = await client.get(f"/v1/tasks/{uuid.uuid4()}", headers=account.headers)
    assert missing.status_code == 429 and missing.headers["RateLimit-Remaining"] == "0"
    # Routes without a caller (the catalog) are not limited, and carry no headers.
    public = await client.get("/v1/models")
    assert public.status_code == 200 and "RateLimit-Limit" not in public.headers


async def test_key_limit_and_shared_account_limit(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await limited(make_account, services, rpm=4, key_rpm=3)
    async with services.db.transaction() as conn:
        other = await create_api_key(conn, account_id=account.id, name="other")
    other_headers = {"Authorization": f"Bearer {other.secret}"}
    first = await client.get("/v1/account", headers=account.headers)
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("3", "2")  # the key's
    assert (await client.get("/v1/account", headers=account.headers)).status_code == 200
    assert (await client.get("/v1/account", headers=account.headers)).status_code == 200
    key_refused = await client.get("/v1/account", headers=account.headers)
    assert key_refused.status_code == 429 and "API key's rate limit (3" in key_refused.json()["error"]["message"]
    # The other key has its own key limit (the default), but shares the account's: one request left.
    last = await client.get("/v1/account", headers=other_headers)
    assert last.status_code == 200
    assert (last.headers["RateLimit-Limit"], last.headers["RateLimit-Remaining"]) == ("4", "0")
    account_refused = await client.get("/v1/account", headers=other_headers)
    assert account_refused.status_code == 429 and "account's rate limit" in account_refused.json()["error"]["message"]

    described = await client.get("/v1/rate-limits", headers=other_headers)
    assert described.status_code == 429  # asking counts as a request too


async def test_rate_limits_endpoint(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await limited(make_account, services, rpm=50, inflight=3, key_inflight=2)
    await services.redis.flushdb()  # no worker: tasks stay queued
    assert (await client.post("/v1/tasks", json=IMAGE, headers=account.headers)).status_code == 202
    body = (await client.get("/v1/rate-limits", headers=account.headers)).json()
    assert body["object"] == "rate_limits" and body["on_redis_error"] == "open"
    assert body["account"]["requests_per_minute"]["limit"] == 50
    assert body["account"]["requests_per_minute"]["remaining"] == 48  # the submit and this request
    assert body["account"]["max_inflight_tasks"] == {"limit": 3, "in_flight": 1}
    assert body["key"]["max_inflight_tasks"] == {"limit": 2, "in_flight": 1}
    assert body["key"]["requests_per_minute"]["limit"] == 100000  # the (test) default for keys
    await cancel_all(services, account.id)


async def test_in_flight_cap_and_its_headers(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()  # no worker: tasks stay queued, in flight
    account = await limited(make_account, services, inflight=2)
    first = await client.post("/v1/tasks", json=IMAGE, headers=account.headers)
    second = await client.post("/v1/tasks", json=IMAGE, headers=account.headers)
    assert (first.status_code, second.status_code) == (202, 202)
    assert (first.headers["X-Concurrency-Limit"], first.headers["X-Concurrency-Remaining"]) == ("2", "1")
    assert second.headers["X-Concurrency-Remaining"] == "0"
    refused = await client.post("/v1/tasks", json=IMAGE, headers=account.headers)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_concurrent_tasks")
    assert "2 tasks in flight" in error["message"]
    assert refused.headers["Retry-After"] == "1"
    assert (refused.headers["RateLimit-Limit"], refused.headers["RateLimit-Remaining"]) == ("2", "0")
    assert refused.headers["RateLimit-Reset"] == "1"
    tasks = (await client.get("/v1/tasks", headers=account.headers)).json()["data"]
    assert len(tasks) == 2  # the refused submit created nothing and held nothing
    assert (await client.get("/v1/account", headers=account.headers)).json()["balance"]["held"] == 0.6

    # Cancelling a task frees its slot at once.
    assert (await client.post(f"/v1/tasks/{first.json()['id']}/cancel", headers=account.headers)).status_code == 200
    assert await services.redis.zcard(slot_key(services, "account", account.id)) == 1
    assert (await client.post("/v1/tasks", json=IMAGE, headers=account.headers)).status_code == 202
    await cancel_all(services, account.id)


async def test_refused_and_replayed_submits_do_not_keep_slots(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await limited(make_account, services, key_inflight=1)
    for body, status in (
        ({"model": "no-such-model", "input": {}}, 404),
        ({"model": "flux-schnell", "input": {"width": 3}}, 400),
        ({"model": "flux-schnell", "input": {"prompt": "x", "num_images": 4, "width": 1024, "height": 1024}}, 202),
    ):
        response = await client.post("/v1/tasks", json=body, headers=account.headers)
        assert response.status_code == status, response.text
    assert await services.redis.zcard(slot_key(services, "key", (await _key_id(services, account)))) == 1
    await cancel_all(services, account.id)
    # At the cap: a retry of the submit that created a task (same Idempotency-Key) still gets its task.
    poor = await limited(make_account, services, key_inflight=1)
    headers = {**poor.headers, "Idempotency-Key": "order-1"}
    created = await client.post("/v1/tasks", json=IMAGE, headers=headers)
    assert created.status_code == 202
    replay = await client.post("/v1/tasks", json=IMAGE, headers=headers)
    assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == created.json()["id"]
    assert (await client.post("/v1/tasks", json=IMAGE, headers=poor.headers)).status_code == 429
    # A hold that cannot be placed (not enough credits) gives its slot back.
    broke = await make_account(credits="0.1")
    await set_account_limits(services.db, services.redis, broke.id, max_inflight=1)
    for _ in range(3):
        assert (await client.post("/v1/tasks", json=IMAGE, headers=broke.headers)).status_code == 402
    assert await services.redis.zcard(slot_key(services, "account", broke.id)) == 0
    await cancel_all(services, poor.id)


async def _key_id(services: Services, account: Account) -> uuid.UUID:
    key_id: uuid.UUID = await services.db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account.id)
    return key_id


async def test_slots_are_released_when_tasks_end(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, worker: InProcessWorker
) -> None:
    account = await limited(make_account, services, inflight=1)
    key = slot_key(services, "account", account.id)

    async def slot_free() -> bool:
        return await services.redis.zcard(key) == 0

    for body, outcome in (
        (IMAGE, "succeeded"),
        ({"model": "test-refusing", "input": {"prompt": "no"}}, "failed"),
        ({"model": "test-slow-image", "input": {"prompt": "slow", "width": 256, "height": 256}}, "canceled"),
    ):
        response = await client.post("/v1/tasks", json=body, headers=account.headers)
        assert response.status_code == 202, response.text
        assert await services.redis.zcard(key) == 1
        if outcome == "canceled":
            await client.post(f"/v1/tasks/{response.json()['id']}/cancel", headers=account.headers)
        assert (await wait_terminal(client, account, response.json()["id"]))["status"] == outcome
        await wait_for(slot_free, timeout=10, what=f"the slot of the {outcome} task to be released")


async def test_a_lost_release_never_refuses_a_submit(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await limited(make_account, services, inflight=1)
    task = (await client.post("/v1/tasks", json=IMAGE, headers=account.headers)).json()
    # The task ends without giving its slot back (as if its process died right after the commit).
    await lifecycle.cancel(services.db, account.id, uuid.UUID(task["id"]))
    assert await services.redis.zcard(slot_key(services, "account", account.id)) == 1
    again = await client.post("/v1/tasks", json=IMAGE, headers=account.headers)
    assert again.status_code == 202  # the refusal was checked against the database first
    assert await services.redis.zrange(slot_key(services, "account", account.id), 0, -1) == [
        again.json()["id"].encode()
    ]
    await cancel_all(services, account.id)


async def test_the_sweep_repairs_slots_after_redis_lost_them(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await limited(make_account, services, inflight=2)
    ids = [(await client.post("/v1/tasks", json=IMAGE, headers=account.headers)).json()["id"] for _ in range(2)]
    await services.redis.flushdb()  # Redis restarted empty: the slots are gone, the tasks are still queued
    repaired = await services.request_limits.slots.repair(services.db)
    assert repaired["slots_added"] >= 4  # two tasks, each on its key and its account
    members = await services.redis.zrange(slot_key(services, "account", account.id), 0, -1)
    assert sorted(m.decode() for m in members) == sorted(ids)
    assert (await client.post("/v1/tasks", json=IMAGE, headers=account.headers)).status_code == 429
    # And a finished task's slot, left behind, is removed by the next sweep.
    await lifecycle.cancel(services.db, account.id, uuid.UUID(ids[0]))
    assert (await services.request_limits.slots.repair(services.db))["slots_removed"] >= 2
    assert await services.redis.zcard(slot_key(services, "account", account.id)) == 1
    await lifecycle.cancel(services.db, account.id, uuid.UUID(ids[1]), slots=services.request_limits.slots)
    await services.request_limits.slots.repair(services.db)
    index = await services.redis.smembers(services.limiter.slot_index)  # type: ignore[misc]
    assert slot_key(services, "account", account.id).encode() not in index


@pytest.fixture
async def second_api(servers: Servers, storage_dir: Path, tmp_path: Path) -> Any:
    """``conduit web`` in its own process, on the same database and Redis as the in-process API."""
    port = free_port()
    proc = Subprocess(
        ["web", "--port", str(port)], conduit_env(servers, port=port, storage_dir=storage_dir), tmp_path / "web.log"
    )
    base_url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(f"{base_url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_for(healthy, timeout=60, what="the second API process")
        yield base_url
    finally:
        proc.stop()


async def test_limits_hold_across_two_api_processes(
    client: httpx.AsyncClient, second_api: str, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await limited(make_account, services, key_rpm=20, inflight=5)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=second_api, timeout=60, limits=limits) as other:
        clients = [client, other]
        started = time.monotonic()
        first = [await client.get("/v1/account", headers=account.headers) for _ in range(5)]
        assert [r.status_code for r in first] == [200] * 5  # what one process admits counts in the other
        responses = await asyncio.gather(
            *(clients[n % 2].get("/v1/account", headers=account.headers) for n in range(120))
        )
        elapsed = time.monotonic() - started
        statuses = Counter(r.status_code for r in responses)
        # A limiter call that Redis does not answer within its timeout fails open: the request is admitted
        # without rate-limit headers (and may not have been counted). On a loaded machine that happens.
        uncounted = sum(1 for r in first + responses if r.status_code == 200 and "RateLimit-Limit" not in r.headers)
        # 20 at once, then one more every 3 s: never more than that, whichever process answered.
        assert 15 <= statuses[200] <= 15 + math.ceil(elapsed / 3) + uncounted, (statuses, elapsed, uncounted)
        assert statuses[200] + statuses[429] == 120
        assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"rate_limited"}
        for http in clients:  # both processes now refuse
            assert (await http.get("/v1/account", headers=account.headers)).status_code == 429

        # In-flight tasks: a fresh key (its own rate limit is the default), the same account cap of 5.
        async with services.db.transaction() as conn:
            fresh = await create_api_key(conn, account_id=account.id, name="fresh")
        headers = {"Authorization": f"Bearer {fresh.secret}"}
        submits = await asyncio.gather(
            *(clients[n % 2].post("/v1/tasks", json=IMAGE, headers=headers) for n in range(40))
        )
        codes = Counter(r.status_code for r in submits)
        assert codes == {202: 5, 429: 35}, codes
        assert {r.json()["error"]["code"] for r in submits if r.status_code == 429} == {"too_many_concurrent_tasks"}
        queued = await services.db.fetchval(
            "SELECT count(*) FROM tasks WHERE account_id = $1 AND status = 'queued'", account.id
        )
        assert queued == 5
    await cancel_all(services, account.id)


async def test_redis_errors_fail_open_or_closed_as_configured() -> None:
    from redis.asyncio import Redis

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        open_limiter = RateLimiter(dead, fail_open=True)
        decision = await open_limiter.hit("test:dead", Rate(1, 60))
        assert decision.allowed and decision.degraded
        admitted = await open_limiter.admit([("test:dead", Rate(1, 60))])
        assert admitted.allowed and admitted.degraded
        with pytest.raises(ServiceUnavailable):
            await RateLimiter(dead, fail_open=False).hit("test:dead", Rate(1, 60))
    finally:
        await dead.aclose()


async def test_api_with_redis_gone(
    servers: Servers, storage_dir: Path, make_account: AccountFactory, services: Services, tmp_path: Path
) -> None:
    """Two API processes on a Redis that then stops: one fails open (serves, without limits), one closed (503)."""
    own_redis = EmbeddedServices(tmp_path / "redis", durable=False)
    own_redis.start(need_postgres=False, need_redis=True)
    apis: list[ApiServer] = []
    try:
        for mode in ("open", "closed"):
            port = free_port()
            env = conduit_env(servers, port=port, storage_dir=storage_dir, RATE_LIMIT_ON_REDIS_ERROR=mode)
            env["REDIS_URL"] = own_redis.urls.redis_url
            apis.append(ApiServer(Settings.from_env(env)))
            await apis[-1].start()
        account = await limited(make_account, services, rpm=100)
        async with httpx.AsyncClient(timeout=30) as http:
            for api in apis:
                ok = await http.get(f"{api.base_url}/v1/account", headers=account.headers)
                assert ok.status_code == 200 and ok.headers["RateLimit-Limit"] == "100"
            own_redis.stop(["redis"])
            fail_open = await http.get(f"{apis[0].base_url}/v1/account", headers=account.headers)
            assert fail_open.status_code == 200
            assert "RateLimit-Limit" not in fail_open.headers  # nothing was counted
            submitted = await http.post(f"{apis[0].base_url}/v1/tasks", json=IMAGE, headers=account.headers)
            assert submitted.status_code == 202  # queued in PostgreSQL; the sweep enqueues it later
            fail_closed = await http.get(f"{apis[1].base_url}/v1/account", headers=account.headers)
            assert fail_closed.status_code == 503
            assert fail_closed.json()["error"]["type"] == "service_unavailable_error"
            assert fail_closed.json()["error"]["code"] == "service_unavailable"
    finally:
        for api in apis:
            await api.stop()
        own_redis.stop()
    await cancel_all(services, account.id)


async def test_operators_set_account_limits_and_roles_with_the_cli(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, env: dict[str, str]
) -> None:
    account = await make_account()
    cli = [sys.executable, "-m", "cli.main", "accounts"]
    run_env = {**os.environ, **env, "PYTHONWARNINGS": "ignore"}
    done = await asyncio.to_thread(
        subprocess.run,
        [*cli, "limits", account.email, "--rpm", "3", "--max-inflight", "7"],
        env=run_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rate_limit_rpm"] == 3 and json.loads(done.stdout)["max_inflight_tasks"] == 7
    assert (await client.get("/v1/account", headers=account.headers)).headers["RateLimit-Limit"] == "3"
    limits = (await client.get("/v1/rate-limits", headers=account.headers)).json()["account"]
    assert limits["max_inflight_tasks"]["limit"] == 7

    bad = await asyncio.to_thread(
        subprocess.run, [*cli, "limits", account.email, "--rpm", "lots"], env=run_env, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "positive integer or 'default'" in bad.stderr
    role = await asyncio.to_thread(
        subprocess.run, [*cli, "role", str(account.id), "support"], env=run_env, capture_output=True, text=True
    )
    assert role.returncode == 0, role.stderr
    assert await services.db.fetchval("SELECT role FROM accounts WHERE id = $1", account.id) == "support"


async def test_limits_survive_redis_forgetting_its_scripts(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await limited(make_account, services, rpm=10)
    assert (await client.get("/v1/account", headers=account.headers)).headers["RateLimit-Remaining"] == "9"
    await services.redis.script_flush()  # as after a Redis restart
    again = await client.get("/v1/account", headers=account.headers)
    assert again.status_code == 200 and again.headers["RateLimit-Remaining"] == "8"
