"""Small helpers for integration tests that talk to the API over HTTP."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx

from shared.infra.db import Database
from tests.conftest import TestAccount
from tests.harness import wait_for


async def submit(client: httpx.AsyncClient, account: TestAccount, model: str, **input: Any) -> httpx.Response:
    return await client.post("/v1/tasks", json={"model": model, "input": input}, headers=account.headers)


async def queued_tasks(
    client: httpx.AsyncClient, account: TestAccount, n: int, *, label: str = "task"
) -> list[uuid.UUID]:
    """Submit ``n`` small image tasks for ``account``; their ids."""
    ids = []
    for number in range(n):
        response = await submit(client, account, "sdxl", prompt=f"{label} {number}", width=256, height=256)
        assert response.status_code == 202, response.text
        ids.append(uuid.UUID(response.json()["id"]))
    return ids


async def task(client: httpx.AsyncClient, account: TestAccount, task_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tasks/{task_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_terminal(
    client: httpx.AsyncClient, account: TestAccount, task_id: str, timeout: float = 30
) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = await task(client, account, task_id)
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    result: dict[str, Any] = await wait_for(done, timeout=timeout, what=f"task {task_id} to finish")
    return result


async def balance(client: httpx.AsyncClient, account: TestAccount) -> tuple[Decimal, Decimal]:
    """(available, held) as exact decimals parsed from the JSON text."""
    response = await client.get("/v1/account", headers=account.headers)
    assert response.status_code == 200, response.text
    data = response.json(parse_float=Decimal)
    return Decimal(data["balance"]["available"]), Decimal(data["balance"]["held"])


async def charge_count(db: Database, task_id: str) -> int:
    """How many charge entries the ledger holds for a task (exactly one for a succeeded task)."""
    count: int = await db.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE task_id = $1 AND kind = 'charge'", uuid.UUID(task_id)
    )
    return count
