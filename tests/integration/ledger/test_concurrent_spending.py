"""Concurrent submits can never spend more than the balance: PostgreSQL enforces it, not Python."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, wait_terminal


async def test_100_concurrent_submits_against_a_balance_for_40(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: object
) -> None:
    account = await make_account(credits="12")  # flux-schnell costs 0.3 per image: exactly 40 fit
    await services.redis.flushdb()
    lowest_available: list[int] = []
    stop = asyncio.Event()

    async def watch_balance() -> None:
        # Sample the balance from another connection while the burst runs.
        while not stop.is_set():
            row = await services.db.fetchrow(
                "SELECT credits_total - credits_held AS available, credits_held FROM accounts WHERE id = $1",
                account.id,
            )
            assert row is not None
            assert row["credits_held"] >= 0
            lowest_available.append(row["available"])
            await asyncio.sleep(0.002)

    async def one(n: int) -> httpx.Response:
        return await client.post(
            "/v1/tasks",
            json={"model": "flux-schnell", "input": {"prompt": f"burst {n}", "width": 256, "height": 256}},
            headers=account.headers,
        )

    watcher = asyncio.create_task(watch_balance())
    responses = await asyncio.gather(*(one(n) for n in range(100)))
    stop.set()
    await watcher

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 40
    assert statuses.count(402) == 60
    assert all(r.json()["error"]["code"] == "insufficient_credits" for r in responses if r.status_code == 402)
    assert min(lowest_available) >= 0
    assert await balance(client, account) == (Decimal("0"), Decimal("12"))
    count = await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id)
    assert count == 40  # refused submits left nothing behind

    # Run them all: every accepted task is charged exactly its price, and nothing is left on hold.
    worker = InProcessWorker(settings)  # type: ignore[arg-type]
    await worker.start()
    try:
        for response in responses:
            if response.status_code == 202:
                done = await wait_terminal(client, account, response.json()["id"])
                assert done["status"] == "succeeded"
    finally:
        await worker.stop()
    assert await balance(client, account) == (Decimal("0"), Decimal("0"))
    charged = await services.db.fetchval(
        "SELECT sum(amount) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'", account.id
    )
    assert charged == 12_000_000
