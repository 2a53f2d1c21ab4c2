"""Task state transitions. Each terminal transition is one transaction: a compare-and-set on the status,
the resolution of the credit hold, and the usage record. A transition that lost the race (the task was
canceled meanwhile, or a redelivered job already finished it) changes nothing and returns None/False.

Given ``slots``, a terminal transition gives back the task's in-flight slots (rate limits) once it committed;
a release that is lost (no ``slots``, a crash, Redis down) is repaired from the database, see
``shared.request_limits``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from shared.accounts.limits import settle_key_spend
from shared.catalog.pricing import Usage
from shared.db import Connection, Database, Record, to_json
from shared.errors import Conflict
from shared.ledger import post_hold, void_hold
from shared.metrics import METRICS
from shared.tasks import CANCELED, FAILED
from shared.tasks.queries import task_not_found
from shared.tasks.records import COLUMNS, TaskRecord
from shared.usage import record_usage
from shared.webhooks import TASK_CANCELED, TASK_FAILED, TASK_STARTED, TASK_SUCCEEDED
from shared.webhooks.outbox import has_destination_sql, record_task_event

if TYPE_CHECKING:
    from shared.request_limits import TaskSlots

_LATENCY = "(EXTRACT(EPOCH FROM (now() - created_at)) * 1000)::int AS latency_ms"


async def claim(db: Database, task_id: uuid.UUID, *, lease_s: float) -> TaskRecord | None:
    """queued -> running, or take over a running task whose lease ran out (its worker died).

    None when the task is terminal or another worker holds a live lease on it."""
    row = await db.fetchrow(
        f"""
        UPDATE tasks
        SET status = 'running', started_at = COALESCE(started_at, now()), attempts = attempts + 1,
            lease_expires_at = now() + make_interval(secs => $2)
        WHERE id = $1
          AND (status = 'queued' OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
        RETURNING {COLUMNS}, {has_destination_sql("$3", terminal=False)}
        """,
        task_id,
        float(lease_s),
        TASK_STARTED,
    )
    if row is None:
        return None
    if row["has_webhook"]:
        # webhooks: task.started (idempotent; a takeover after a crash records it if the first claim could not)
        await record_task_event(db, task_id, TASK_STARTED)
    return TaskRecord.from_row(row)


async def release_lease(db: Database, task_id: uuid.UUID) -> None:
    """Let the next delivery of the job claim the task at once (used before re-scheduling a poll)."""
    await db.execute("UPDATE tasks SET lease_expires_at = NULL WHERE id = $1 AND status = 'running'", task_id)


async def complete(
    db: Database,
    task: TaskRecord,
    *,
    outputs: list[dict[str, Any]],
    usage: Usage,
    charge: int,
    provider: str,
    slots: TaskSlots | None = None,
) -> bool:
    """running -> succeeded: charge ``charge`` (capped at the hold), release the rest, record usage."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE tasks
            SET status = 'succeeded', outputs = $2::jsonb, provider = $3,
                credits_charged = LEAST($4::bigint, credits_held), completed_at = now(),
                lease_expires_at = NULL, progress = NULL
            WHERE id = $1 AND status = 'running'
            RETURNING account_id, api_key_id, model, kind, credits_charged, {_LATENCY},
                      {has_destination_sql("$5", terminal=True)}
            """,
            task.id,
            to_json(outputs),
            provider,
            charge,
            TASK_SUCCEEDED,
        )
        if row is None:
            return False
        charged = row["credits_charged"]
        resolution = await post_hold(conn, task_id=task.id, charge=charged, description=f"{task.model} task")
        await settle_key_spend(conn, row["api_key_id"], resolution)  # the key's spent / spend cap
        await _record(conn, task.id, row, "succeeded", provider, usage.public(), row["credits_charged"])
        if row["has_webhook"]:
            await record_task_event(conn, task.id, TASK_SUCCEEDED)  # webhooks outbox, same transaction
    _count_finished(row, "succeeded", provider)
    METRICS.inc("conduit_credits_charged", {"model": row["model"]}, charged / 1_000_000)
    if slots is not None:
        await slots.release(row["account_id"], row["api_key_id"], task.id)
    return True


async def fail(
    db: Database,
    task_id: uuid.UUID,
    *,
    code: str,
    message: str,
    provider: str | None = None,
    slots: TaskSlots | None = None,
) -> bool:
    """queued|running -> failed, voiding the hold."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE tasks
            SET status = 'failed', error_code = $2, error_message = $3, provider = COALESCE($4, provider),
                completed_at = now(), lease_expires_at = NULL, progress = NULL
            WHERE id = $1 AND status IN ('queued', 'running')
            RETURNING account_id, api_key_id, model, kind, provider, {_LATENCY},
                      {has_destination_sql("$5", terminal=True)}
            """,
            task_id,
            code,
            message,
            provider,
            TASK_FAILED,
        )
        if row is None:
            return False
        await _void(conn, task_id, row, FAILED)
        if row["has_webhook"]:
            await record_task_event(conn, task_id, TASK_FAILED)  # webhooks outbox, same transaction
    _count_finished(row, "failed", row["provider"])
    if slots is not None:
        await slots.release(row["account_id"], row["api_key_id"], task_id)
    return True


async def cancel(
    db: Database, account_id: uuid.UUID, task_id: uuid.UUID, *, slots: TaskSlots | None = None
) -> TaskRecord:
    """queued|running -> canceled for the task's owner, voiding the hold. Returns the updated task."""
    current = None
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE tasks
            SET status = 'canceled', error_code = 'canceled', error_message = 'canceled by the client',
                completed_at = now(), lease_expires_at = NULL, progress = NULL
            WHERE id = $1 AND account_id = $2 AND status IN ('queued', 'running')
            RETURNING {COLUMNS}, {_LATENCY}, {has_destination_sql("$3", terminal=True)}
            """,
            task_id,
            account_id,
            TASK_CANCELED,
        )
        if row is not None:
            await _void(conn, task_id, row, CANCELED)
            if row["has_webhook"]:
                await record_task_event(conn, task_id, TASK_CANCELED)  # webhooks outbox, same transaction
        else:
            current = await conn.fetchval(
                "SELECT status FROM tasks WHERE id = $1 AND account_id = $2", task_id, account_id
            )
    if row is not None:
        _count_finished(row, "canceled", row["provider"])
        if slots is not None:
            await slots.release(row["account_id"], row["api_key_id"], task_id)
        return TaskRecord.from_row(row)
    if current is None:
        raise task_not_found(task_id)
    raise Conflict(f"task {task_id} is already {current} and cannot be canceled", code="task_not_cancelable")


async def _void(conn: Connection, task_id: uuid.UUID, row: Record, status: str) -> None:
    resolution = await void_hold(conn, task_id=task_id, description=f"{row['model']} task {status}")
    await settle_key_spend(conn, row["api_key_id"], resolution)  # releases the key's spend-cap reservation
    await _record(conn, task_id, row, status, row["provider"], {}, 0)


async def _record(
    conn: Connection,
    task_id: uuid.UUID,
    row: Record,
    status: str,
    provider: str | None,
    units: dict[str, Any],
    credits: int,
) -> None:
    await record_usage(
        conn,
        account_id=row["account_id"],
        api_key_id=row["api_key_id"],
        task_id=task_id,
        model=row["model"],
        provider=provider,
        kind=row["kind"],
        status=status,
        units=units,
        credits=credits,
        latency_ms=row["latency_ms"],
    )


def _count_finished(row: Record, status: str, provider: str | None) -> None:
    """metrics (issue 9): counted once the transition committed."""
    METRICS.inc("conduit_tasks_finished", {"model": row["model"], "provider": provider or "", "status": status})
