"""Steps the webhook tests share: make tasks that emit events, read the deliveries they created."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shared.services import Services
from tests.conftest import TestAccount

IMAGE = {"prompt": "a lighthouse", "width": 256, "height": 256}


async def submit(
    client: httpx.AsyncClient, account: TestAccount, *, model: str = "sdxl", webhook_url: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": IMAGE}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    response = await client.post("/v1/tasks", json=body, headers=account.headers)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


async def canceled_task(client: httpx.AsyncClient, account: TestAccount, *, webhook_url: str | None = None) -> str:
    """A task that ends at once (canceled while queued: no worker needed), emitting ``task.canceled``."""
    task = await submit(client, account, webhook_url=webhook_url)
    response = await client.post(f"/v1/tasks/{task['id']}/cancel", headers=account.headers)
    assert response.status_code == 200, response.text
    return str(task["id"])


async def delivery_ids(services: Services, task_id: str) -> list[uuid.UUID]:
    rows = await services.db.fetch(
        "SELECT id FROM webhook_deliveries WHERE task_id = $1 ORDER BY id", uuid.UUID(task_id)
    )
    return [row["id"] for row in rows]


async def only_delivery(services: Services, task_id: str) -> uuid.UUID:
    ids = await delivery_ids(services, task_id)
    assert len(ids) == 1, ids
    return ids[0]


async def create_endpoint(client: httpx.AsyncClient, account: TestAccount, url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/webhooks/endpoints", json={"url": url, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def account_secret(client: httpx.AsyncClient, account: TestAccount) -> str:
    response = await client.get("/v1/webhooks/secret", headers=account.headers)
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def delivery(client: httpx.AsyncClient, account: TestAccount, delivery_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    shaped: dict[str, Any] = response.json()
    return shaped
