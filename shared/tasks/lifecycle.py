"""Task state transitions. Each terminal transition is one transaction: a compare-and-set on the status,
the resolution of the credit hold, and the usage record. A transition that lost the race (the task was
canceled meanwhile, or a redelivered job already finished it) changes nothing and returns None/False.

Given ``slots``, a terminal transition gives back the task's in-flight slots (rate limits) once it committed;
a release that is lost (no ``slots``, a crash, Redis down) is repaired from the database, see
``shared.ratelimits.request_limits``. Given ``events``, it publishes the task's final event once it committed
(``shared.events``; a lost one is told from the database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.catalog.pricing import Usage
from shared.infra.db import Connection, Database, Record, to_json
from shared.infra.errors import Conflict
from shared.infra.metrics import METRICS
from shared.ledger import (
    succeeded_task_settlement_ids,
    succeeded_tasks_settlement_sql,
    task_settlement_params,
    task_settlement_sql,
)
from shared.ledger.money import MICRO
from shared.tasks import CANCELED, FAILED, SUCCEEDED
from shared.tasks.queries import task_not_found
from shared.tasks.records import TASK_ROWS, TaskRecord
from shared.tasks.settled import Settled, announce
from shared.webhooks import TASK_CANCELED, TASK_FAILED, TASK_STARTED, TASK_SUCCEEDED
from shared.webhooks.outbox import has_destination_sql, record_task_event

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots
    from shared.tasks.completions import TaskCompletions

_LATENCY = "(EXTRACT(EPOCH FROM (now() - created_at)) * 1000)::int AS latency_ms"


_CLAIM = """
UPDATE tasks
SET status = 'running', started_at = COALESCE(started_at, now()), attempts = attempts + 1,
    lease_expires_at = now() + make_interval(secs => $2)
WHERE {which}
  AND (status = 'queued' OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
RETURNING {columns}
"""
_CLAIM_COLUMNS = f"{TASK_ROWS.columns}, {has_destination_sql('$3', terminal=False)}"
_CLAIM_ONE = _CLAIM.format(which="id = $1", columns=_CLAIM_COLUMNS)
# Several tasks: their rows locked in id order first, so two statements claiming overlapping tasks cannot deadlock.
_CLAIM_MANY = "WITH picked AS (SELECT id FROM tasks WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE)" + (
    _CLAIM.format(which="id IN (SELECT id FROM picked)", columns=_CLAIM_COLUMNS)
)


async def claim(db: Database, task_id: uuid.UUID, *, lease_s: float) -> TaskRecord | None:
    """queued -> running, or take over a running task whose lease ran out (its worker died).

    None when the task is terminal or another worker holds a live lease on it."""
    row = await db.fetchrow(_CLAIM_ONE, task_id, float(lease_s), TASK_STARTED)
    return None if row is None else await _claimed(db, row)


async def claim_many(db: Database, task_ids: list[uuid.UUID], *, lease_s: float) -> dict[uuid.UUID, TaskRecord]:
    """``claim`` for several tasks in one statement (one commit): the tasks claimed, by id."""
    rows = await db.fetch(_CLAIM_MANY, sorted(set(task_ids)), float(lease_s), TASK_STARTED)
    return {row["id"]: await _claimed(db, row) for row in rows}


async def _claimed(db: Database, row: Record) -> TaskRecord:
    if row["has_webhook"]:
        # webhooks: task.started (idempotent; a takeover after a crash records it if the first claim could not)
        await record_task_event(db, row["id"], TASK_STARTED)
    return TASK_ROWS.from_row(row)


async def release_lease(db: Database, task_id: uuid.UUID, *, generation: int) -> None:
    """Let the next delivery of the job claim the task at once (a run handing its task back), unless another run
    claimed it since the run's own claim ``generation``."""
    await db.execute(
        "UPDATE tasks SET lease_expires_at = NULL WHERE id = $1 AND status = 'running' AND attempts = $2",
        task_id,
        generation,
    )


def _terminal_sql(update: str, *, params: int) -> str:
    """One statement for a terminal transition. ``update`` is the compare-and-set on the task (``$1`` is its id; it
    uses ``$2``..``$<params>`` and returns at least account_id, api_key_id, model, kind, provider, credits_charged,
    latency_ms). When it matched, the same statement settles the task's hold (``shared.ledger``: posted with the
    task's ``credits_charged`` when it succeeded, voided otherwise), counts it on the API key and writes the
    usage record. The parameters after the update's are ``task_settlement_params``'s."""
    return f"""
WITH t AS ({update}
), {task_settlement_sql(params + 1)}
SELECT t.* FROM t
"""


_TERMINAL_UPDATE = "completed_at = now(), lease_expires_at = NULL, progress = NULL"

_COMPLETE = _terminal_sql(
    f"""
    UPDATE tasks
    SET status = 'succeeded', outputs = $2::jsonb, provider = $3, credits_charged = LEAST($4::bigint, credits_held),
        {_TERMINAL_UPDATE}
    WHERE id = $1 AND status = 'running' AND attempts = $6
    RETURNING account_id, api_key_id, model, kind, provider, credits_charged, {_LATENCY},
              {has_destination_sql("$5", terminal=True)}""",
    params=6,
)

_FAIL = _terminal_sql(
    f"""
    UPDATE tasks
    SET status = 'failed', error_code = $2, error_message = $3, provider = COALESCE($4, provider), {_TERMINAL_UPDATE}
    WHERE id = $1 AND status IN ('queued', 'running') AND ($6::int IS NULL OR attempts = $6)
    RETURNING account_id, api_key_id, model, kind, provider, credits_charged, {_LATENCY},
              {has_destination_sql("$5", terminal=True)}""",
    params=6,
)

_CANCEL = _terminal_sql(
    f"""
    UPDATE tasks
    SET status = 'canceled', error_code = 'canceled', error_message = 'canceled by the client', {_TERMINAL_UPDATE}
    WHERE id = $1 AND account_id = $2 AND status IN ('queued', 'running')
    RETURNING {TASK_ROWS.columns}, {_LATENCY}, {has_destination_sql("$3", terminal=True)}""",
    params=3,
)


@dataclass(frozen=True, slots=True)
class Completion:
    """A task's run that succeeded: what ``complete`` writes."""

    task: TaskRecord
    outputs: list[dict[str, Any]]
    usage: Usage
    charge: int
    provider: str


async def complete_in(conn: Connection, item: Completion) -> Record | None:
    """The writes of running -> succeeded in the caller's transaction: the task's row (None when the transition
    lost its race), with its settlement and its webhook event."""
    row = await conn.fetchrow(
        _COMPLETE,
        item.task.id, to_json(item.outputs), item.provider, item.charge, TASK_SUCCEEDED, item.task.attempts,
        *task_settlement_params(SUCCEEDED, item.usage.public()),
    )  # fmt: skip
    if row is not None and row["has_webhook"]:
        await record_task_event(conn, item.task.id, TASK_SUCCEEDED)  # webhooks outbox, same transaction
    return row


# Many tasks of one worker's group commit: their rows locked in id order first (as claims lock them), then each
# compare-and-set, and the settlements of those that matched (``succeeded_tasks_settlement_sql``).
_COMPLETE_MANY = f"""
WITH runs AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::int[], $6::uuid[], $7::text[],
                         $8::uuid[], $9::uuid[])
        AS i(task_id, outputs, provider, charge, attempts, usage_id, units, charge_entry_id, release_entry_id)
), picked AS (
    SELECT id FROM tasks WHERE id IN (SELECT task_id FROM runs) ORDER BY id FOR NO KEY UPDATE
), t AS (
    UPDATE tasks
    SET status = 'succeeded', outputs = i.outputs::jsonb, provider = i.provider,
        credits_charged = LEAST(i.charge, tasks.credits_held), {_TERMINAL_UPDATE}
    FROM runs i
    WHERE tasks.id = i.task_id AND tasks.id IN (SELECT id FROM picked) AND tasks.status = 'running'
      AND tasks.attempts = i.attempts
    RETURNING tasks.id, tasks.account_id, tasks.api_key_id, tasks.model, tasks.kind, tasks.provider,
              tasks.credits_charged, {_LATENCY}, {has_destination_sql("$10", terminal=True)}, i.usage_id, i.units,
              i.charge_entry_id, i.release_entry_id
), {succeeded_tasks_settlement_sql()}
SELECT t.* FROM t
"""


async def complete_many_in(conn: Connection, items: list[Completion]) -> list[Record | None]:
    """``complete_in`` for many tasks in one statement (a group commit): each item's task row, in order (None for
    a transition that lost its race; a task named twice ends with its first item, the second finds it ended)."""
    first = list({item.task.id: item for item in reversed(items)}.values())  # the first item of each task
    ids = [succeeded_task_settlement_ids() for _ in first]
    rows = await conn.fetch(
        _COMPLETE_MANY,
        [item.task.id for item in first], [to_json(item.outputs) for item in first],
        [item.provider for item in first], [item.charge for item in first], [item.task.attempts for item in first],
        [usage_id for usage_id, _, _ in ids], [to_json(item.usage.public()) for item in first],
        [charge_id for _, charge_id, _ in ids], [release_id for _, _, release_id in ids], TASK_SUCCEEDED,
    )  # fmt: skip
    by_task = {row["id"]: row for row in rows}
    for task_id in sorted(task_id for task_id, row in by_task.items() if row["has_webhook"]):
        await record_task_event(conn, task_id, TASK_SUCCEEDED)  # webhooks outbox, same transaction
    ended = set(by_task)
    answers: list[Record | None] = []
    for item in items:
        answers.append(by_task[item.task.id] if item.task.id in ended else None)
        ended.discard(item.task.id)  # a second item of the same task: it found the task ended
    return answers


async def complete(
    db: Database,
    task: TaskRecord,
    *,
    outputs: list[dict[str, Any]],
    usage: Usage,
    charge: int,
    provider: str,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
    completions: TaskCompletions | None = None,
) -> bool:
    """running -> succeeded: charge ``charge`` (capped at the hold), release the rest, record usage. Given
    ``completions``, the transaction is shared with other tasks finishing meanwhile (a group commit). Only the run
    that claimed ``task`` may: a run whose lease lapsed and was taken over (``task.attempts`` is its fencing token)
    changes nothing."""
    item = Completion(task, outputs, usage, charge, provider)
    if completions is not None:  # its batch gives back the slots and publishes the events of all its tasks
        row = await completions.complete(item, slots=slots, events=events)
    else:
        async with db.transaction() as conn:
            row = await complete_in(conn, item)
        if row is not None:
            await announce(slots, events, [settled_of(item, row)])
    if row is None:
        return False
    _count_finished(row, "succeeded", provider)
    METRICS.inc("conduit_credits_charged", {"model": row["model"]}, row["credits_charged"] / MICRO)
    return True


def settled_of(item: Completion, row: Record) -> Settled:
    """What follows the commit of ``item``'s completion (``row``: what ``complete_in`` returned)."""
    return Settled(item.task.id, row["account_id"], row["api_key_id"], TASK_SUCCEEDED)


async def fail(
    db: Database,
    task_id: uuid.UUID,
    *,
    code: str,
    message: str,
    provider: str | None = None,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
    units: dict[str, Any] | None = None,
    generation: int | None = None,
) -> bool:
    """queued|running -> failed, voiding the hold. ``units``: what the upstream produced, for the usage record (an
    output the moderation policy blocked: not charged, but the operator's upstream cost is kept). ``generation``: the
    run's claim (``attempts``); given, a run that was taken over meanwhile changes nothing."""
    settlement = task_settlement_params(FAILED, units)
    async with db.transaction() as conn:
        row = await conn.fetchrow(_FAIL, task_id, code, message, provider, TASK_FAILED, generation, *settlement)
        if row is None:
            return False
        if row["has_webhook"]:
            await record_task_event(conn, task_id, TASK_FAILED)  # webhooks outbox, same transaction
    _count_finished(row, "failed", row["provider"])
    await announce(slots, events, [Settled(task_id, row["account_id"], row["api_key_id"], TASK_FAILED)])
    return True


async def cancel(
    db: Database,
    account_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    slots: TaskSlots | None = None,
    events: TaskEvents | None = None,
) -> TaskRecord:
    """queued|running -> canceled for the task's owner, voiding the hold. Returns the updated task."""
    current = None
    async with db.transaction() as conn:
        row = await conn.fetchrow(_CANCEL, task_id, account_id, TASK_CANCELED, *task_settlement_params(CANCELED))
        if row is not None:
            if row["has_webhook"]:
                await record_task_event(conn, task_id, TASK_CANCELED)  # webhooks outbox, same transaction
        else:
            current = await conn.fetchval(
                "SELECT status FROM tasks WHERE id = $1 AND account_id = $2", task_id, account_id
            )
    if row is not None:
        _count_finished(row, "canceled", row["provider"])
        await announce(slots, events, [Settled(task_id, row["account_id"], row["api_key_id"], TASK_CANCELED)])
        return TASK_ROWS.from_row(row)
    if current is None:
        raise task_not_found(task_id)
    raise Conflict(f"task {task_id} is already {current} and cannot be canceled", code="task_not_cancelable")


def _count_finished(row: Record, status: str, provider: str | None) -> None:
    """metrics: counted once the transition committed."""
    METRICS.inc("conduit_tasks_finished", {"model": row["model"], "provider": provider or "", "status": status})
