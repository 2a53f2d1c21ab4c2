"""Idempotency-Key: a retried submit returns the first task; a different body with the same key is a 409."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.helpers import balance

BODY = {"model": "sdxl", "input": {"prompt": "same request", "width": 256, "height": 256}}


async def test_replay_returns_the_first_task_and_holds_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    headers = {**account.headers, "Idempotency-Key": "order-123"}
    first = await client.post("/v1/tasks", json=BODY, headers=headers)
    second = await client.post("/v1/tasks", json=BODY, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await balance(client, account) == (Decimal("4.6"), Decimal("0.4"))


async def test_same_key_with_a_different_body_is_a_conflict(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    headers = {**account.headers, "Idempotency-Key": "k-1"}
    assert (await client.post("/v1/tasks", json=BODY, headers=headers)).status_code == 202
    other = {"model": "sdxl", "input": {"prompt": "something else", "width": 256, "height": 256}}
    response = await client.post("/v1/tasks", json=other, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "conflict_error",
        "code": "idempotency_key_reused",
        "message": "this Idempotency-Key was already used with a different request body",
        "param": "Idempotency-Key",
    }
    assert await balance(client, account) == (Decimal("4.6"), Decimal("0.4"))


async def test_concurrent_replays_create_one_task(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="5")
    headers = {**account.headers, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(*(client.post("/v1/tasks", json=BODY, headers=headers) for _ in range(10)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    count = await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id)
    assert count == 1
    assert await balance(client, account) == (Decimal("4.6"), Decimal("0.4"))


async def test_keys_are_scoped_to_the_account_and_refused_submits_do_not_burn_them(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    poor, rich = await make_account(credits="0.1"), await make_account(credits="5")
    refused = await client.post("/v1/tasks", json=BODY, headers={**poor.headers, "Idempotency-Key": "shared"})
    assert refused.status_code == 402
    accepted = await client.post("/v1/tasks", json=BODY, headers={**rich.headers, "Idempotency-Key": "shared"})
    assert accepted.status_code == 202
    # After a top-up the poor account can retry with the same key: the refused attempt left nothing.
    from shared.ledger import grant

    async with services.db.transaction() as conn:
        await grant(conn, account_id=poor.id, amount=1_000_000, source="manual", idempotency_key=f"topup:{poor.id}")
    retried = await client.post("/v1/tasks", json=BODY, headers={**poor.headers, "Idempotency-Key": "shared"})
    assert retried.status_code == 202
    assert retried.json()["id"] != accepted.json()["id"]
