"""Cancelling voids the hold; a canceled task is never charged, even if its worker finishes later."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.helpers import balance, submit, task, wait_terminal


async def test_cancel_a_queued_task_voids_its_hold(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()  # no worker: the task stays queued
    account = await make_account(credits="5")
    created = (await submit(client, account, "flux-dev", prompt="never drawn")).json()
    assert await balance(client, account) == (Decimal("2.5"), Decimal("2.5"))

    response = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
    assert response.status_code == 200
    canceled = response.json()
    assert canceled["status"] == "canceled"
    assert canceled["error"]["code"] == "canceled"
    assert canceled["credits"] == {"held": 2.5, "charged": 0}
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))

    ledger = (await client.get("/v1/account/ledger", headers=account.headers)).json()["data"]
    assert [e["type"] for e in ledger[:2]] == ["void", "hold"]

    # A second cancel is a clear conflict, not a second refund.
    again = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "task_not_cancelable"
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


async def test_cancel_a_running_task_discards_its_result(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, worker: InProcessWorker
) -> None:
    account = await make_account(credits="5")
    created = (await submit(client, account, "test-slow-image", prompt="slow", width=256, height=256)).json()

    async def running() -> bool:
        return (await task(client, account, created["id"]))["status"] == "running"

    await wait_for(running, what="the task to start")
    response = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
    assert response.status_code == 200
    await asyncio.sleep(2.0)  # the provider call finishes meanwhile
    final = await task(client, account, created["id"])
    assert final["status"] == "canceled"
    assert final["outputs"] == []
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))
    assert not (services.storage.root / "outputs" / created["id"]).exists()


async def test_a_finished_task_cannot_be_canceled(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="5")
    created = (await submit(client, account, "sdxl", prompt="done", width=256, height=256)).json()
    await wait_terminal(client, account, created["id"])
    response = await client.post(f"/v1/tasks/{created['id']}/cancel", headers=account.headers)
    assert response.status_code == 409
    assert await balance(client, account) == (Decimal("4.6"), Decimal("0"))


async def test_another_accounts_task_is_not_found(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    owner, other = await make_account(credits="5"), await make_account(credits="5")
    created = (await submit(client, owner, "sdxl", prompt="mine")).json()
    for method, path in (("GET", f"/v1/tasks/{created['id']}"), ("POST", f"/v1/tasks/{created['id']}/cancel")):
        response = await client.request(method, path, headers=other.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "task_not_found"
    listed = (await client.get("/v1/tasks", headers=other.headers)).json()
    assert listed["data"] == []
    assert (await task(client, owner, created["id"]))["status"] == "queued"
    unknown = await client.get(f"/v1/tasks/{uuid.uuid4()}", headers=owner.headers)
    assert unknown.status_code == 404
    garbage = await client.get("/v1/tasks/not-a-task-id", headers=owner.headers)
    assert garbage.status_code == 404
