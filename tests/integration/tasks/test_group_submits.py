"""Task submits group-committed (``shared.tasks.creation``): the concurrent submits of one process share one
transaction, each task gets exactly its hold, a hold the balance does not cover refuses that task only (and
leaves no task behind), and a batch that PostgreSQL refuses creates its tasks one by one."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from shared.infra.db import Database
from shared.infra.db.batching import BATCH_RETRIES
from shared.infra.errors import InsufficientCredits, PermissionDenied
from shared.services import Services
from shared.tasks import creation
from shared.tasks.creation import NewTask, TaskCreations, task_creations
from shared.tasks.records import TaskRecord
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import ApiServer
from tests.integration.helpers import balance, submit


def new_task(account_id: uuid.UUID, credits_held: int, number: int = 0) -> NewTask:
    return NewTask(
        account_id=account_id, api_key_id=None, model="sdxl", kind="image", params={"prompt": f"group {number}"},
        metadata={"n": str(number)}, webhook_url=None, credits_held=credits_held, max_runtime_s=60.0,
    )  # fmt: skip


async def create_all(creations: TaskCreations, tasks: list[NewTask]) -> list[Any]:
    return await asyncio.gather(*(creations.submit(task) for task in tasks), return_exceptions=True)


async def money(db: Database, account_id: uuid.UUID) -> tuple[int, int, int, int]:
    """credits_total, credits_held, the account's tasks and its pending holds."""
    row = await db.fetchrow(
        """
        SELECT a.credits_total, a.credits_held,
               (SELECT count(*) FROM tasks t WHERE t.account_id = a.id) AS tasks,
               (SELECT count(*) FROM holds h WHERE h.account_id = a.id AND h.status = 'pending') AS holds
        FROM accounts a WHERE a.id = $1
        """,
        account_id,
    )
    assert row is not None
    return row["credits_total"], row["credits_held"], row["tasks"], row["holds"]


async def test_one_accounts_concurrent_submits_share_commits_and_each_holds_its_price(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    account = await make_account(credits="10")
    creations = TaskCreations(db)
    tasks = [new_task(account.id, 100_000 + n, n) for n in range(40)]

    results = await create_all(creations, tasks)

    assert all(isinstance(r, TaskRecord) for r in results), results
    assert [r.id for r in results] == [t.id for t in tasks]  # each caller gets its own task
    assert all(r.status == "queued" and r.credits_held == t.credits_held for r, t in zip(results, tasks, strict=True))
    assert [r.metadata for r in results] == [{"n": str(n)} for n in range(40)]
    assert creations.counts["batches"] >= 1  # they did go together
    assert creations.counts["fallbacks"] == 0
    held = sum(t.credits_held for t in tasks)
    assert await money(db, account.id) == (10_000_000, held, 40, 40)
    hold_rows = await db.fetch("SELECT id, task_id, amount FROM holds WHERE account_id = $1", account.id)
    assert {(r["id"], r["task_id"], r["amount"]) for r in hold_rows} == {
        (t.hold_id, t.id, t.credits_held) for t in tasks
    }


async def test_submits_beyond_the_balance_create_exactly_the_tasks_it_covers(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    account = await make_account(credits="1")
    creations = TaskCreations(db)

    results = await create_all(creations, [new_task(account.id, 300_000, n) for n in range(40)])  # 3 fit

    created = [r for r in results if isinstance(r, TaskRecord)]
    refused = [r for r in results if not isinstance(r, TaskRecord)]
    assert len(created) == 3
    assert len(refused) == 37 and all(type(r) is InsufficientCredits for r in refused)
    assert creations.counts["batches"] >= 1
    # The refused tasks were removed with the batch: only the created ones exist, each with its hold.
    assert await money(db, account.id) == (1_000_000, 900_000, 3, 3)
    ids = await db.fetchval("SELECT array_agg(id) FROM tasks WHERE account_id = $1", account.id)
    assert set(ids) == {r.id for r in created}


async def test_a_batch_across_accounts_refuses_only_the_accounts_that_cannot_pay(
    services: Services, make_account: AccountFactory
) -> None:
    db = services.db
    rich, poor, suspended = [await make_account(credits=c) for c in ("5", "0.25", "5")]
    await db.execute("UPDATE accounts SET status = 'suspended' WHERE id = $1", suspended.id)
    creations = TaskCreations(db)
    tasks = [new_task(account.id, 100_000, n) for n in range(10) for account in (rich, poor, suspended)]

    results = await create_all(creations, tasks)

    outcome = {account.id: [r for t, r in zip(tasks, results, strict=True) if t.account_id == account.id]
               for account in (rich, poor, suspended)}  # fmt: skip
    assert all(isinstance(r, TaskRecord) for r in outcome[rich.id])
    assert sum(isinstance(r, TaskRecord) for r in outcome[poor.id]) == 2
    assert all(isinstance(r, TaskRecord | InsufficientCredits) for r in outcome[poor.id])
    assert all(isinstance(r, PermissionDenied) and r.code == "account_suspended" for r in outcome[suspended.id])
    assert await money(db, rich.id) == (5_000_000, 1_000_000, 10, 10)
    assert await money(db, poor.id) == (250_000, 200_000, 2, 2)
    assert await money(db, suspended.id) == (5_000_000, 0, 0, 0)


class DeadlockingHolds:
    """``place_holds``, but its first ``failures`` calls fail with a deadlock (after the tasks were inserted)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.place_holds = creation.place_holds

    async def __call__(self, conn: Any, holds: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await self.place_holds(conn, holds)


@pytest.mark.parametrize("failures", [1, 3])
async def test_a_refused_batch_is_retried_then_created_one_by_one(
    services: Services, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    db = services.db
    account = await make_account(credits="1")
    monkeypatch.setattr(creation, "place_holds", DeadlockingHolds(failures))
    creations = TaskCreations(db)
    # The first submit runs alone; the five that arrive meanwhile go together (and meet the deadlocks).
    tasks = [new_task(account.id, 150_000, n) for n in range(6)]

    results = await create_all(creations, tasks)

    assert sum(isinstance(r, TaskRecord) for r in results) == 6
    assert creations.counts["retries"] == min(failures, BATCH_RETRIES)
    assert creations.counts["fallbacks"] == (1 if failures > BATCH_RETRIES else 0)
    # The failed attempts rolled back their inserts: each task exists once, with one hold.
    assert await money(db, account.id) == (1_000_000, 900_000, 6, 6)


async def test_concurrent_http_submits_of_one_key_all_answer_and_hold_their_price(
    api: ApiServer, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account: Account = await make_account(credits="50")
    first = await submit(client, account, "sdxl", prompt="price", width=256, height=256)
    assert first.status_code == 202, first.text
    price = first.json(parse_float=Decimal)["credits"]["held"]
    batches = task_creations(api.services.db).counts["batches"]

    responses = await asyncio.gather(
        *(submit(client, account, "sdxl", prompt=f"busy {n}", width=256, height=256) for n in range(24))
    )

    assert [r.status_code for r in responses] == [202] * 24, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["id"] for r in responses}) == 24
    assert all(r.json(parse_float=Decimal)["credits"]["held"] == price for r in responses)
    assert task_creations(api.services.db).counts["batches"] > batches  # the API did group them
    assert await balance(client, account) == (Decimal(50) - 25 * price, 25 * price)  # no worker runs here
