"""A worker's jobs that start together claim their tasks in one statement: each task is claimed once (a job
delivered twice at once runs once), a task another worker holds or that has ended is not claimed, and a batch that
PostgreSQL refuses is claimed one task at a time."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from shared.services import Services
from shared.tasks import lifecycle
from shared.tasks.claims import TaskClaims
from tests.conftest import AccountFactory
from tests.integration.helpers import queued_tasks


async def test_jobs_starting_together_claim_their_tasks_in_one_statement(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    ids = await queued_tasks(client, account, 8, label="claim")
    held_elsewhere, ended = ids[6], ids[7]
    assert await lifecycle.claim(services.db, held_elsewhere, lease_s=60) is not None  # another worker's live lease
    await lifecycle.fail(services.db, ended, code="test", message="ended before its job ran")
    claims = TaskClaims(services.db, lease_s=30)
    asked = [*ids, ids[0]]  # the first task's job delivered twice at once
    records = await asyncio.gather(*(claims.claim(task_id) for task_id in asked))
    assert claims.counts["batches"] >= 1 and claims.counts["fallbacks"] == 0
    claimed = [record for record in records if record is not None]
    assert sorted(record.id for record in claimed) == sorted(ids[:6])  # each once; not the held or ended ones
    assert {(record.status, record.attempts) for record in claimed} == {("running", 1)}
    rows = await services.db.fetch(
        "SELECT id, status, attempts, lease_expires_at > now() + interval '20 seconds' AS leased FROM tasks "
        "WHERE id = ANY($1::uuid[])",
        ids,
    )
    state = {row["id"]: (row["status"], row["attempts"], row["leased"]) for row in rows}
    assert all(state[task_id] == ("running", 1, True) for task_id in ids[:6])
    assert state[held_elsewhere][:2] == ("running", 1) and state[ended][0] == "failed"
    for task_id in ids[:7]:
        await lifecycle.fail(services.db, task_id, code="test_cleanup", message="cleanup")


async def test_a_refused_claim_batch_claims_its_tasks_one_by_one(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.redis.flushdb()
    account = await make_account(credits="10")
    ids = await queued_tasks(client, account, 4, label="claim")

    async def deadlocked(*args: object, **kwargs: object) -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(lifecycle, "claim_many", deadlocked)
    claims = TaskClaims(services.db, lease_s=30)
    records = await asyncio.gather(*(claims.claim(task_id) for task_id in ids))
    assert claims.counts["fallbacks"] >= 1 and claims.counts["batches"] == 0
    assert sorted(record.id for record in records if record is not None) == sorted(ids)
    for task_id in ids:
        await lifecycle.fail(services.db, task_id, code="test_cleanup", message="cleanup")
