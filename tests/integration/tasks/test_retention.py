"""Retention and pruning sweeps, and every sweep run by many workers at the same moment."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from decimal import Decimal
from typing import Any

import httpx

from shared.accounts.tokens import issue_token, prune_account_tokens
from shared.services import Services
from shared.settings import Settings
from shared.tasks.retention import prune_idempotency_records, purge_task_data
from shared.tasks.sweeps import fail_overdue, requeue_orphans
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, submit, task, wait_terminal
from worker.jobs.sweeps import housekeeping

WORKERS = 4  # sweeps started at once, as when every worker's cron fires in the same second


async def _finished_tasks(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: Settings, n: int
) -> tuple[Account, list[dict[str, Any]]]:
    await services.redis.flushdb()
    account = await make_account(credits="20")
    created = [
        (await submit(client, account, "sdxl", prompt=f"keep {i}", width=256, height=256)).json() for i in range(n)
    ]
    async with InProcessWorker(settings):
        done = [await wait_terminal(client, account, c["id"]) for c in created]
    return account, done


async def test_task_inputs_and_files_are_purged_after_the_retention_period_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: Settings
) -> None:
    account, done = await _finished_tasks(client, make_account, services, settings, 5)
    old, recent = done[:4], done[4]
    urls = [t["outputs"][0]["url"] for t in done]
    assert [(await client.get(url)).status_code for url in urls] == [200] * 5
    await services.db.execute(
        "UPDATE tasks SET completed_at = now() - interval '31 days' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(str(t["id"])) for t in old],
    )
    assert await purge_task_data(services.db, services.storage, retention_days=0) == 0  # 0: keep forever

    purged = await asyncio.gather(
        *(purge_task_data(services.db, services.storage, retention_days=30, limit=2) for _ in range(WORKERS))
    )
    assert sum(purged) >= 2 and max(purged) <= 2  # several sweeps at once share the work, no row twice
    while await purge_task_data(services.db, services.storage, retention_days=30):
        pass
    rows = await services.db.fetch(
        "SELECT id, input, outputs, purged_at FROM tasks WHERE account_id = $1 AND purged_at IS NOT NULL",
        account.id,
    )
    assert sorted(str(r["id"]) for r in rows) == sorted(str(t["id"]) for t in old)
    for url in urls[:4]:
        assert (await client.get(url)).status_code == 404
    assert (await client.get(urls[4])).status_code == 200
    view = await task(client, account, str(old[0]["id"]))
    assert view["status"] == "succeeded" and view["input"] == {} and view["outputs"] == []
    assert view["credits"]["charged"] == 0.4  # the history stays
    kept = await task(client, account, str(recent["id"]))
    assert kept["input"]["prompt"] == "keep 4" and kept["outputs"]
    assert await balance(client, account) == (Decimal("18"), Decimal("0"))


async def test_old_idempotency_records_and_tokens_are_pruned(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="5")
    headers = {**account.headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"model": "sdxl", "input": {"prompt": "once", "width": 256, "height": 256}}
    first = (await client.post("/v1/tasks", json=body, headers=headers)).json()
    assert (await client.post("/v1/tasks", json=body, headers=headers)).json()["id"] == first["id"]
    async with services.db.transaction() as conn:
        stale = await issue_token(conn, account_id=account.id, email=account.email, purpose="verify_email", ttl_s=60)
        fresh = await issue_token(
            conn, account_id=account.id, email=account.email, purpose="reset_password", ttl_s=3600
        )
    assert stale and fresh
    await services.db.execute(
        "UPDATE idempotency_records SET created_at = now() - interval '25 hours' WHERE account_id = $1", account.id
    )
    await services.db.execute(
        "UPDATE account_tokens SET expires_at = now() - interval '2 days' WHERE account_id = $1 AND purpose = $2",
        account.id,
        "verify_email",
    )
    pruned = await asyncio.gather(*(prune_idempotency_records(services.db, ttl_h=24) for _ in range(WORKERS)))
    assert sum(pruned) >= 1
    tokens = await asyncio.gather(*(prune_account_tokens(services.db) for _ in range(WORKERS)))
    assert sum(tokens) >= 1
    left = await services.db.fetch("SELECT purpose FROM account_tokens WHERE account_id = $1", account.id)
    assert [r["purpose"] for r in left] == ["reset_password"]
    # After the record is gone, the same key creates a new task (like Stripe's 24-hour window).
    again = (await client.post("/v1/tasks", json=body, headers=headers)).json()
    assert again["id"] != first["id"]


async def test_ended_sessions_are_pruned_from_the_session_index(
    make_account: AccountFactory, services: Services
) -> None:
    account = await make_account()
    _, alive = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="test")
    token, _ = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="test")
    await services.redis.delete(f"conduit:session:{hashlib.sha256(token.encode()).hexdigest()}")  # expired by TTL
    index_key = f"conduit:account-sessions:{account.id}"
    assert await services.redis.hlen(index_key) == 2  # type: ignore[misc]
    pruned = await asyncio.gather(*(services.sessions.prune_indexes() for _ in range(WORKERS)))
    assert sum(pruned) == 1  # HDEL counts only the removal that happened
    assert [s.id for s in await services.sessions.list(account.id)] == [alive.id]
    assert await services.redis.hlen(index_key) == 1  # type: ignore[misc]


async def test_deadline_and_requeue_sweeps_run_by_every_worker_at_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    overdue = [(await submit(client, account, "sdxl", prompt=f"late {i}")).json()["id"] for i in range(5)]
    orphans = [(await submit(client, account, "sdxl", prompt=f"lost {i}")).json()["id"] for i in range(5)]
    await services.db.execute(
        "UPDATE tasks SET deadline_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(i) for i in overdue],
    )
    await services.redis.flushdb()
    failed, requeued = await asyncio.gather(
        asyncio.gather(*(fail_overdue(services.db, queue=services.queue) for _ in range(WORKERS))),
        asyncio.gather(*(requeue_orphans(services.db, services.queue, older_than_s=0) for _ in range(WORKERS))),
    )
    # (other tests' leftovers may be swept too) each task is failed by exactly one sweep: one void each below
    assert sum(failed) >= 5
    assert sum(requeued) >= 5  # each lost job enqueued once (arq job ids are the task ids)
    for task_id in overdue:
        assert (await task(client, account, task_id))["error"]["code"] == "deadline_exceeded"
        voids = await services.db.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE task_id = $1 AND kind = 'void'", uuid.UUID(task_id)
        )
        assert voids == 1
    for task_id in orphans:
        assert await services.redis.exists(f"arq:job:{task_id}")
        assert await services.redis.zscore("arq:queue", task_id) is not None
    assert await balance(client, account) == (Decimal("8"), Decimal("2"))


async def test_housekeeping_job_reports_what_it_did(services: Services) -> None:
    result = await housekeeping({"services": services})  # type: ignore[typeddict-item]
    assert set(result) == {
        "tasks_purged",
        "idempotency_records_pruned",
        "account_tokens_pruned",
        "session_index_entries_pruned",
        "uploads_purged",
        "batch_files_purged",
        "moderation_evidence_purged",
    }
