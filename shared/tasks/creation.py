"""Inserting new tasks with their credit holds.

* ``insert_task_and_hold(conn, task)``: one task and its hold in one statement (the insert and
  ``ledger_place_hold`` together): atomic on its own, or part of the caller's transaction (a submit with an
  idempotency key or a key's spend cap).
* ``insert_tasks(conn, tasks)``: many tasks in one statement, in the caller's transaction, which then places
  their holds (a batch submit; the group commit below).
* ``task_creations(db).submit(task)``: the group commit of the submits one API process serves at the same time.
  At low load a submit runs ``insert_task_and_hold`` on its own; while one is under way, the submits that arrive
  meanwhile go together in one transaction: their tasks inserted in one statement, their holds placed in one
  (``shared.ledger.place_holds``: one update of an account's row for all its tasks of the batch, a refusal the
  outcome of that task only), the tasks whose hold was refused removed again, one commit. So one busy
  account's submits no longer queue on its row one commit at a time. A batch PostgreSQL refuses changed nothing;
  its tasks are then created one by one (``shared.infra.db.batching``).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.infra import tracing
from shared.infra.db import Connection, Database, to_json
from shared.infra.db.batching import PerPool, in_chunks, refusable
from shared.infra.group_commit import GroupCommit
from shared.infra.ids import uuid7
from shared.ledger import NewHold, fetchrow_with_hold, hold_call_sql, place_holds
from shared.tasks.records import TASK_ROWS, TaskRecord


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to insert, queued, with a hold of ``credits_held`` (its worst-case price) on its account."""

    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    model: str
    kind: str
    params: dict[str, Any]
    metadata: dict[str, str]
    webhook_url: str | None
    credits_held: int
    max_runtime_s: float
    batch_work: bool = False  # a batch submit's task (its job goes on the batch queue)
    id: uuid.UUID = field(default_factory=uuid7)
    hold_id: uuid.UUID = field(default_factory=uuid7)
    hold_entry_id: uuid.UUID = field(default_factory=uuid7)  # the hold's ledger entry

    @property
    def hold(self) -> NewHold:
        return NewHold(self.account_id, self.credits_held, task_id=self.id, description=f"{self.model} task",
                       id=self.hold_id, entry_id=self.hold_entry_id)  # fmt: skip


_INSERT_TASK_AND_HOLD = f"""
WITH task AS (
    INSERT INTO tasks (id, account_id, api_key_id, model, kind, status, input, metadata, webhook_url,
                       credits_held, deadline_at, batch_work)
    VALUES ($1, $2, $3, $4, $5, 'queued', $6::jsonb, $7::jsonb, $8, $9, now() + make_interval(secs => $10), $11)
    RETURNING {TASK_ROWS.columns}
)
SELECT task.*, {hold_call_sql(12)} FROM task
"""

_INSERT_TASKS = f"""
INSERT INTO tasks (id, account_id, api_key_id, model, kind, status, input, metadata, webhook_url, credits_held,
                   deadline_at, batch_work)
SELECT id, account_id, api_key_id, model, kind, 'queued', input, metadata, webhook_url, credits_held,
       now() + make_interval(secs => runtime_s), batch_work
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::text[],
            $9::bigint[], $10::float8[], $11::bool[])
    AS i(id, account_id, api_key_id, model, kind, input, metadata, webhook_url, credits_held, runtime_s, batch_work)
RETURNING {TASK_ROWS.columns}
"""

_REMOVE_REFUSED = "DELETE FROM tasks WHERE id = ANY($1::uuid[])"


async def insert_task_and_hold(conn: Connection | asyncpg.Pool, task: NewTask) -> TaskRecord:
    """Insert the task and place its hold in one statement (``ledger_place_hold`` runs inside it, once the task
    row exists). Raises the hold's refusal (``InsufficientCredits``, ``PermissionDenied``)."""
    hold = task.hold
    with tracing.span("hold", task_id=task.id, model=task.model, credits_micro=hold.amount):
        row = await fetchrow_with_hold(
            conn, _INSERT_TASK_AND_HOLD,
            task.id, task.account_id, task.api_key_id, task.model, task.kind, to_json(task.params),
            to_json(task.metadata), task.webhook_url, task.credits_held, task.max_runtime_s, task.batch_work,
            hold=hold,
        )  # fmt: skip
    assert row is not None
    return TASK_ROWS.from_row(row)


async def insert_tasks(conn: Connection, tasks: list[NewTask]) -> dict[uuid.UUID, TaskRecord]:
    """Insert the tasks (no holds: the caller's transaction places them); the new rows by task id."""
    rows = await conn.fetch(
        _INSERT_TASKS,
        [t.id for t in tasks], [t.account_id for t in tasks], [t.api_key_id for t in tasks],
        [t.model for t in tasks], [t.kind for t in tasks], [to_json(t.params) for t in tasks],
        [to_json(t.metadata) for t in tasks], [t.webhook_url for t in tasks], [t.credits_held for t in tasks],
        [t.max_runtime_s for t in tasks], [t.batch_work for t in tasks],
    )  # fmt: skip
    return {row["id"]: TASK_ROWS.from_row(row) for row in rows}


class TaskCreations:
    """The group commit of one process's task submits, bound to one pool and event loop (``task_creations(db)``)."""

    def __init__(self, db: Database) -> None:
        self.pool = db.pool
        self.inserts: GroupCommit[NewTask, TaskRecord] = GroupCommit(self._create_many, alone=self._create_one)
        self.counts = {"batches": 0, "retries": 0, "fallbacks": 0}  # for tests and benchmarks

    async def submit(self, task: NewTask) -> TaskRecord:
        """Create the task with its hold, with the other submits under way; raises its hold's refusal."""
        return await self.inserts.submit(task)

    async def _create_one(self, task: NewTask) -> TaskRecord:
        return await insert_task_and_hold(self.pool, task)

    async def _create_caught(self, task: NewTask) -> TaskRecord | Exception:
        try:
            return await self._create_one(task)
        except Exception as exc:
            return exc

    async def _create_many(self, tasks: list[NewTask]) -> list[TaskRecord | Exception]:
        if len(tasks) == 1:
            return [await self._create_caught(tasks[0])]
        return await in_chunks(tasks, self._create_chunk)

    async def _create_chunk(self, tasks: list[NewTask]) -> list[TaskRecord | Exception]:
        created = await refusable(lambda: self._insert_with_holds(tasks), self.counts)
        if created is None:
            return list(await asyncio.gather(*(self._create_caught(task) for task in tasks)))
        self.counts["batches"] += 1
        return created

    async def _insert_with_holds(self, tasks: list[NewTask]) -> list[TaskRecord | Exception]:
        with tracing.span("holds", tasks=len(tasks)):
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await insert_tasks(conn, tasks)
                placed = await place_holds(conn, [task.hold for task in tasks])
                refused = [
                    task.id for task, outcome in zip(tasks, placed, strict=True) if isinstance(outcome, Exception)
                ]
                if refused:  # never seen outside this transaction
                    await conn.execute(_REMOVE_REFUSED, refused)
        return [
            outcome if isinstance(outcome, Exception) else rows[task.id]
            for task, outcome in zip(tasks, placed, strict=True)
        ]


task_creations = PerPool(TaskCreations)  # task_creations(db): the process's group commit of submits on db
