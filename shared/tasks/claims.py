"""Task claims group-committed in the worker, as its completions are (``shared.tasks.completions``).

The jobs of one worker that start at about the same time claim their tasks in one statement
(``lifecycle.claim_many``: the same compare-and-set with a lease as ``lifecycle.claim``, for every task at once), so
they pay one commit (one WAL flush) instead of one each. At low load a claim is its own statement, without the
batching machinery. A batch that PostgreSQL refuses (a deadlock, after two retries) changed nothing: its tasks are
then claimed one by one. An error that leaves the outcome unknown (the connection lost) is every caller's error, as
it would be without batching (the task's lease then lapses and the task is taken over).
"""

from __future__ import annotations

import uuid

from shared.infra.db import Database
from shared.infra.db.batching import refusable
from shared.infra.group_commit import GroupCommit
from shared.tasks import lifecycle
from shared.tasks.records import TaskRecord


class TaskClaims:
    """The group commit of one worker's task claims, bound to its pool, event loop and lease length."""

    def __init__(self, db: Database, *, lease_s: float) -> None:
        self._db = db
        self.lease_s = lease_s
        self._group: GroupCommit[uuid.UUID, TaskRecord | None] = GroupCommit(self._batch, alone=self._alone)
        # claims of more than one task in one statement; deadlocked ones retried; refused ones, claimed one by one
        self.counts = {"batches": 0, "retries": 0, "fallbacks": 0}  # for tests and benchmarks

    async def claim(self, task_id: uuid.UUID) -> TaskRecord | None:
        """``lifecycle.claim`` of ``task_id``, in one statement with the claims made at about the same time."""
        return await self._group.submit(task_id)

    async def _alone(self, task_id: uuid.UUID) -> TaskRecord | None:
        return await lifecycle.claim(self._db, task_id, lease_s=self.lease_s)

    async def _one(self, task_id: uuid.UUID) -> TaskRecord | Exception | None:
        try:
            return await self._alone(task_id)
        except Exception as exc:
            return exc

    async def _batch(self, task_ids: list[uuid.UUID]) -> list[TaskRecord | Exception | None]:
        if len(task_ids) == 1:
            return [await self._one(task_ids[0])]
        claimed = await refusable(lambda: lifecycle.claim_many(self._db, task_ids, lease_s=self.lease_s), self.counts)
        if claimed is None:
            return [await self._one(task_id) for task_id in task_ids]
        self.counts["batches"] += 1
        # A task asked for twice in one batch (its job delivered twice at once) is claimed once: the first asker
        # runs it, as the second claim's compare-and-set would have failed.
        return [claimed.pop(task_id, None) for task_id in task_ids]
