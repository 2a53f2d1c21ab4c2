"""Task completions group-committed in the worker, as the API group-commits the billing of synchronous requests
(``shared.ledger.request_holds``).

The jobs of one worker that finish at about the same time end their tasks in one transaction: each task's
statement (``lifecycle.complete_in``: the compare-and-set on the task, the settlement of its hold, the usage
record, the webhook event) runs in that transaction, in account order, so the batch pays one commit (one WAL
flush) and an account's row is locked once per batch instead of once per task: one busy account's tasks no
longer queue behind each other's commits. At low load (nothing else under way) a completion is its own
transaction, without the batching machinery. Commits stay durable: a caller hears of its completion only once
the batch committed.

A batch that PostgreSQL refuses (a deadlock, any error of one task's statement) changed nothing, so its tasks
are then completed one by one, each in its own transaction; an error that leaves the outcome unknown (the
connection lost) is every caller's error, as it would be without batching (a redelivered job finds the task
ended or ends it).
"""

from __future__ import annotations

import asyncpg

from shared.infra.db import Database, Record
from shared.infra.group_commit import GroupCommit
from shared.tasks.lifecycle import Completion, complete_in

MAX_BATCH = 32  # tasks per transaction: bounds how long a batch holds its accounts' rows


class TaskCompletions:
    """The group commit of one worker's task completions, bound to its pool and event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._group: GroupCommit[Completion, Record | None] = GroupCommit(self._batch, alone=self._alone)
        self.batches = 0  # batches of more than one task committed (tests, benchmarks)
        self.fallbacks = 0  # batches refused, their tasks then completed one by one

    async def complete(self, item: Completion) -> Record | None:
        """End ``item``'s task as succeeded: its row once committed, None when the transition lost its race."""
        return await self._group.submit(item)

    async def _alone(self, item: Completion) -> Record | None:
        async with self._db.transaction() as conn:
            return await complete_in(conn, item)

    async def _one(self, item: Completion) -> Record | Exception | None:
        try:
            return await self._alone(item)
        except Exception as exc:
            return exc

    async def _batch(self, items: list[Completion]) -> list[Record | Exception | None]:
        results: list[Record | Exception | None] = []
        for start in range(0, len(items), MAX_BATCH):
            results.extend(await self._chunk(items[start : start + MAX_BATCH]))
        return results

    async def _chunk(self, items: list[Completion]) -> list[Record | Exception | None]:
        if len(items) == 1:
            return [await self._one(items[0])]
        order = sorted(range(len(items)), key=lambda n: (items[n].task.account_id, items[n].task.id))
        rows: dict[int, Record | None] = {}
        try:
            async with self._db.transaction() as conn:
                for n in order:
                    rows[n] = await complete_in(conn, items[n])
        except asyncpg.PostgresError:
            self.fallbacks += 1
            return [await self._one(item) for item in items]
        self.batches += 1
        return [rows[n] for n in range(len(items))]
