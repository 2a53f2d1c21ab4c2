"""POST /v1/tasks/batch: many tasks in one request, one hold each, all or nothing; per-item results."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from shared.infra import jobs
from shared.ledger import grant
from shared.services import Services
from shared.tasks import lifecycle
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, wait_terminal

if TYPE_CHECKING:
    from tests.conftest import TestAccount

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a batch", "width": 256, "height": 256}}  # holds 0.3


async def submit_batch(
    client: httpx.AsyncClient, account: TestAccount, tasks: list[dict[str, Any]], **extra: Any
) -> httpx.Response:
    return await client.post("/v1/tasks/batch", json={"tasks": tasks, **extra}, headers=account.headers)


async def task_count(services: Services, account: TestAccount) -> int:
    count: int = await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id)
    return count


async def fail_queued(services: Services, account: TestAccount) -> None:
    """End the test's queued tasks (their holds voided) so that no later worker runs them."""
    rows = await services.db.fetch("SELECT id FROM tasks WHERE account_id = $1 AND status = 'queued'", account.id)
    for row in rows:
        await lifecycle.fail(services.db, row["id"], code="test_cleanup", message="cleanup")


async def test_a_batch_runs_every_task_and_charges_each_exactly(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    account = await make_account(credits="10")
    tasks = [IMAGE, {"model": "test-per-request", "input": {"messages": [{"role": "user", "content": "hi"}]}}]
    response = await submit_batch(client, account, tasks)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["object"] == "list" and body["created"] == 2 and body["failed"] == 0
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert all(item["status"] == 202 and item["task"]["status"] == "queued" for item in body["data"])
    assert [item["task"]["credits"]["held"] for item in body["data"]] == [0.3, 0.25]
    for item in body["data"]:
        done = await wait_terminal(client, account, item["task"]["id"])
        assert done["status"] == "succeeded" and done["credits"]["charged"] == done["credits"]["held"]
    assert await balance(client, account) == (Decimal("9.45"), Decimal("0"))


async def test_a_balance_for_999_of_1000_tasks_refuses_the_lot_and_holds_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="299.7")  # 999 x 0.3
    response = await submit_batch(client, account, [IMAGE] * 1000)
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_credits" and "300" in error["message"]
    assert await task_count(services, account) == 0
    assert await balance(client, account) == (Decimal("299.7"), Decimal("0"))

    richer = await make_account(credits="300")
    response = await submit_batch(client, richer, [IMAGE] * 1000)
    assert response.status_code == 202, response.text
    created = [item["task"]["id"] for item in response.json()["data"]]
    assert response.json()["created"] == 1000 and len(set(created)) == 1000
    assert await task_count(services, richer) == 1000
    assert await balance(client, richer) == (Decimal("0"), Decimal("300"))
    # every task handed to the workers, as batch work (interactive tasks do not wait behind it); other tests'
    # jobs may share the queue, so this looks for these tasks' own
    scores = await services.redis.zmscore(jobs.BATCH_QUEUE, created)
    assert all(score is not None for score in scores)
    await fail_queued(services, richer)
    await services.redis.delete(jobs.BATCH_QUEUE)
    assert await balance(client, richer) == (Decimal("300"), Decimal("0"))


async def test_invalid_items_refuse_an_atomic_batch_or_get_their_own_errors(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    bad = {"model": "flux-schnell", "input": {"prompt": "x", "width": 7}}
    unknown = {"model": "no-such-model", "input": {}}
    refused = await submit_batch(client, account, [IMAGE, bad, unknown])
    assert refused.status_code == 400
    assert refused.json()["error"]["param"].startswith("tasks[1].input")
    assert await task_count(services, account) == 0

    partial = await submit_batch(client, account, [IMAGE, bad, unknown], atomic=False)
    assert partial.status_code == 207, partial.text
    body = partial.json()
    assert body["created"] == 1 and body["failed"] == 2
    first, second, third = body["data"]
    assert first["status"] == 202 and first["task"]["model"] == "flux-schnell"
    assert second["status"] == 400 and second["error"]["param"].startswith("tasks[1].input")
    assert third["status"] == 404 and third["error"]["code"] == "model_not_found"
    assert third["error"]["param"] == "tasks[2].model"
    assert await task_count(services, account) == 1
    assert await balance(client, account) == (Decimal("9.7"), Decimal("0.3"))
    await fail_queued(services, account)

    too_many = await submit_batch(client, account, [IMAGE] * 1001)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "tasks"
    empty = await submit_batch(client, account, [])
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "tasks"


async def test_per_item_idempotency_keys_replay_their_tasks(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="10")
    tasks = [{**IMAGE, "idempotency_key": "a"}, {**IMAGE, "idempotency_key": "b"}]
    first = await submit_batch(client, account, tasks)
    assert first.status_code == 202
    ids = [item["task"]["id"] for item in first.json()["data"]]

    # The same keys again, plus a new one: the first two answer their tasks (200), only the third is created.
    again = await submit_batch(client, account, [*tasks, {**IMAGE, "idempotency_key": "c"}])
    assert again.status_code == 202, again.text
    data = again.json()["data"]
    assert [item["status"] for item in data] == [200, 200, 202]
    assert [item["task"]["id"] for item in data[:2]] == ids
    assert await task_count(services, account) == 3
    assert await balance(client, account) == (Decimal("9.1"), Decimal("0.9"))

    # A key reused with another body: the batch is refused (atomic) or that item is (not atomic).
    other = {"model": "flux-schnell", "input": {"prompt": "other", "width": 256, "height": 256}, "idempotency_key": "a"}
    conflict = await submit_batch(client, account, [other])
    assert conflict.status_code == 409 and conflict.json()["error"]["param"] == "tasks[0].idempotency_key"
    mixed = await submit_batch(client, account, [other, {**IMAGE, "idempotency_key": "d"}], atomic=False)
    assert mixed.status_code == 207
    assert [item["status"] for item in mixed.json()["data"]] == [409, 202]
    duplicate = await submit_batch(client, account, [{**IMAGE, "idempotency_key": "e"}] * 2)
    assert duplicate.status_code == 400 and duplicate.json()["error"]["param"] == "tasks[1].idempotency_key"
    assert await task_count(services, account) == 4

    # Keys are the account's own: another account's "a" creates its own task.
    stranger = await make_account(credits="1")
    theirs = await submit_batch(client, stranger, [tasks[0]])
    assert theirs.status_code == 202 and theirs.json()["data"][0]["task"]["id"] not in ids
    await fail_queued(services, account)
    await fail_queued(services, stranger)
    assert uuid.UUID(ids[0])


async def test_holds_span_lots_soonest_expiry_first_and_settle_per_task(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """Three lots (one expiring soon, one later, one never): a batch's holds take the soonest first, a hold may
    straddle two lots, and cancelling one task gives exactly its share back (the invariants check the lots)."""
    account = await make_account(credits="0.5")  # never expires
    async with services.db.transaction() as conn:
        for days, amount in ((2, 400_000), (1, 500_000)):
            await grant(conn, account_id=account.id, amount=amount, source="promo",
                        idempotency_key=f"lot-{account.id}-{days}",
                        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=days))  # fmt: skip
    response = await submit_batch(client, account, [IMAGE] * 4)  # 4 x 0.3 = 1.2 of 1.4
    assert response.status_code == 202, response.text
    rows = await services.db.fetch(
        """
        SELECT l.expires_at, sum(a.amount) AS taken FROM hold_allocations a JOIN credit_lots l ON l.id = a.lot_id
        WHERE l.account_id = $1 GROUP BY l.expires_at ORDER BY l.expires_at NULLS LAST
        """,
        account.id,
    )
    assert [row["taken"] for row in rows] == [500_000, 400_000, 300_000]
    task_id = response.json()["data"][1]["task"]["id"]  # its 0.3 straddles the first two lots
    assert (await client.post(f"/v1/tasks/{task_id}/cancel", headers=account.headers)).status_code == 200
    assert await balance(client, account) == (Decimal("0.5"), Decimal("0.9"))
    await fail_queued(services, account)
