"""Task completions group-committed in the worker, as the API group-commits the billing of synchronous requests
(``shared.ledger.request_holds``).

The jobs of one worker that finish at about the same time end their tasks in one transaction, with one statement
(``lifecycle.complete_many_in``: the compare-and-set on each task, the settlements of their holds with each account's
row and each lot updated once, the usage records; then the webhook events of those that have a destination), so the
batch pays one round trip and one commit (one WAL flush) and an account's row is locked once per batch, for one
statement, instead of once per task: one busy account's tasks no longer queue behind each other's commits. At low load
(nothing else under way) a completion is its own transaction, without the batching machinery. Commits stay durable: a
caller hears of its completion only once the batch committed. After the commit, the batch gives back its tasks'
in-flight slots and publishes their ``task.succeeded`` events in one Redis round trip (``shared.tasks.settled``), not
one or two per task.

A batch that PostgreSQL refuses (a deadlock, after two retries; an error of any of its tasks, e.g. a charge the ledger
refuses) changed nothing, so its tasks are then completed one by one, each in its own transaction; an error that leaves
the outcome unknown (the connection lost) is every caller's error, as it would be without batching (a redelivered job
finds the task ended or ends it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.infra.db import Database, Record
from shared.infra.db.batching import refusable
from shared.infra.group_commit import GroupCommit
from shared.tasks.lifecycle import Completion, complete_in, complete_many_in, settled_of
from shared.tasks.settled import Settled, announce

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots

MAX_BATCH = 32  # tasks per transaction: bounds how long a batch holds its accounts' rows


@dataclass(frozen=True, slots=True)
class _Entry:
    """A completion with where its slots go back and its final event goes (the same for every job of a worker)."""

    item: Completion
    slots: TaskSlots | None
    events: TaskEvents | None


class TaskCompletions:
    """The group commit of one worker's task completions, bound to its pool and event loop."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._group: GroupCommit[_Entry, Record | None] = GroupCommit(self._batch, alone=self._alone)
        # batches of more than one task committed; deadlocked ones retried; refused ones, completed one by one
        self.counts = {"batches": 0, "retries": 0, "fallbacks": 0}  # for tests and benchmarks

    async def complete(
        self, item: Completion, *, slots: TaskSlots | None = None, events: TaskEvents | None = None
    ) -> Record | None:
        """End ``item``'s task as succeeded: its row once committed, None when the transition lost its race. Once
        its batch committed, the slots of every task the batch ended go back and their ``task.succeeded`` events
        are published (``slots``, ``events``; one Redis round trip per batch), before any caller hears back."""
        return await self._group.submit(_Entry(item, slots, events))

    async def _alone(self, entry: _Entry) -> Record | None:
        row = await self._commit_one(entry)
        if row is not None:
            await announce(entry.slots, entry.events, [settled_of(entry.item, row)])
        return row

    async def _commit_one(self, entry: _Entry) -> Record | None:
        async with self._db.transaction() as conn:
            return await complete_in(conn, entry.item)

    async def _one(self, entry: _Entry) -> Record | Exception | None:
        try:
            return await self._commit_one(entry)
        except Exception as exc:
            return exc

    async def _batch(self, entries: list[_Entry]) -> list[Record | Exception | None]:
        results: list[Record | Exception | None] = []
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start : start + MAX_BATCH]
            rows = await self._chunk(chunk)
            await _announce_committed(chunk, rows)
            results.extend(rows)
        return results

    async def _chunk(self, entries: list[_Entry]) -> list[Record | Exception | None]:
        if len(entries) == 1:
            return [await self._one(entries[0])]
        rows = await refusable(lambda: self._commit_many(entries), self.counts)
        if rows is None:
            return [await self._one(entry) for entry in entries]
        self.counts["batches"] += 1
        return list(rows)

    async def _commit_many(self, entries: list[_Entry]) -> list[Record | None]:
        async with self._db.transaction() as conn:
            return await complete_many_in(conn, [entry.item for entry in entries])


async def _announce_committed(entries: list[_Entry], rows: list[Record | Exception | None]) -> None:
    """The slots and final events of the tasks of a batch that committed (a task whose transition lost its race or
    whose statement failed has none), one round trip for each place they go (normally one)."""
    groups: dict[tuple[int, int], tuple[_Entry, list[Settled]]] = {}
    for entry, row in zip(entries, rows, strict=True):
        if row is None or isinstance(row, Exception):
            continue
        group = groups.setdefault((id(entry.slots), id(entry.events)), (entry, []))
        group[1].append(settled_of(entry.item, row))
    for first, settled in groups.values():
        await announce(first.slots, first.events, settled)
