"""Work of a worker's concurrent jobs group-committed: many tasks of one account ending together share one
transaction, each is charged once, and a batch that PostgreSQL refuses is completed one task at a time; the
attempts of runs ending together are recorded together, each on its own task."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx

from shared.catalog.pricing import Usage
from shared.providers.routing import Attempt
from shared.services import Services
from shared.tasks import lifecycle
from shared.tasks.attempts import record_attempts
from shared.tasks.completions import TaskCompletions
from shared.tasks.lifecycle import Completion
from shared.tasks.records import TaskRecord
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.integration.helpers import balance, queued_tasks, task


async def running_tasks(client: httpx.AsyncClient, services: Services, account: Account, n: int) -> list[TaskRecord]:
    claimed = []
    for task_id in await queued_tasks(client, account, n, label="batch"):
        record = await lifecycle.claim(services.db, task_id, lease_s=30)
        assert record is not None
        claimed.append(record)
    return claimed


def succeeded(record: TaskRecord, charge: int) -> Completion:
    return Completion(record, [], Usage(images=1), charge, "local")


async def test_tasks_ending_together_share_a_transaction_and_are_charged_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    one, other = await make_account(credits="10"), await make_account(credits="10")
    records = await running_tasks(client, services, one, 5) + await running_tasks(client, services, other, 3)
    completions = TaskCompletions(services.db)
    # Every task once, and the first one a second time (a redelivered job): it is charged once.
    items = [succeeded(record, 300_000) for record in records] + [succeeded(records[0], 300_000)]
    rows = await asyncio.gather(*(completions.complete(item) for item in items))
    assert completions.counts["batches"] >= 1 and completions.counts["fallbacks"] == 0
    assert sum(row is not None for row in rows) == len(records)
    for record in records:
        owner = one if record.account_id == one.id else other
        assert (await task(client, owner, str(record.id)))["status"] == "succeeded"
    charges = await services.db.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE kind = 'charge' AND task_id = ANY($1::uuid[])",
        [record.id for record in records],
    )
    assert charges == len(records)
    assert await balance(client, one) == (Decimal("8.5"), Decimal("0"))
    assert await balance(client, other) == (Decimal("9.1"), Decimal("0"))


async def test_a_refused_batch_completes_its_tasks_one_by_one(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    """One task's statement fails (a negative charge, which the ledger refuses): the batch changes nothing, then
    every other task is completed alone and only the bad one reports its error."""
    await services.redis.flushdb()
    account = await make_account(credits="10")
    records = await running_tasks(client, services, account, 4)
    completions = TaskCompletions(services.db)
    items = [succeeded(records[0], 300_000), *(succeeded(r, 300_000) for r in records[1:3]), succeeded(records[3], -1)]
    outcomes = await asyncio.gather(*(completions.complete(item) for item in items), return_exceptions=True)
    assert completions.counts["fallbacks"] == 1
    assert all(outcome is not None and not isinstance(outcome, BaseException) for outcome in outcomes[:3])
    assert isinstance(outcomes[3], Exception)
    statuses = [(await task(client, account, str(record.id)))["status"] for record in records]
    assert statuses == ["succeeded", "succeeded", "succeeded", "running"]
    held = Decimal(records[3].credits_held) / 1_000_000  # the failed task's hold is still pending
    assert await balance(client, account) == (Decimal("9.1") - held, held)


async def test_attempts_of_runs_ending_together_are_each_recorded_on_their_task(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    records = await running_tasks(client, services, account, 3)
    now = time.time()
    runs = {
        records[0].id: [
            Attempt("first", "failed", now, 5, "upstream_error", "boom"),
            Attempt("second", "succeeded", now),
        ],
        records[1].id: [Attempt("only", "succeeded", now, 7)],
        records[2].id: [Attempt("refuser", "refused", now, 1, "invalid_request", "no")],
    }
    await asyncio.gather(*(record_attempts(services.db, task_id, attempts) for task_id, attempts in runs.items()))
    rows = await services.db.fetch(
        "SELECT task_id, provider, outcome, error_code FROM task_attempts WHERE task_id = ANY($1::uuid[]) ORDER BY id",
        list(runs),
    )
    recorded = {task_id: [(r["provider"], r["outcome"], r["error_code"]) for r in rows if r["task_id"] == task_id]
                for task_id in runs}  # fmt: skip
    assert recorded == {
        task_id: [(a.provider, a.outcome, a.error_code) for a in attempts] for task_id, attempts in runs.items()
    }


async def test_tasks_ending_in_one_batch_record_their_webhook_events_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    records = await running_tasks(client, services, account, 4)
    hooked = [records[1].id, records[3].id]
    await services.db.execute(
        "UPDATE tasks SET webhook_url = 'https://hooks.example.com/conduit' WHERE id = ANY($1::uuid[])", hooked
    )
    completions = TaskCompletions(services.db)
    rows = await asyncio.gather(*(completions.complete(succeeded(record, 100_000)) for record in records))
    assert all(row is not None for row in rows) and completions.counts["batches"] >= 1
    events = await services.db.fetch(
        "SELECT task_id, count(*) AS n FROM webhook_events WHERE type = 'task.succeeded' AND task_id = ANY($1::uuid[])"
        " GROUP BY task_id",
        [record.id for record in records],
    )
    assert {row["task_id"]: row["n"] for row in events} == {task_id: 1 for task_id in hooked}
