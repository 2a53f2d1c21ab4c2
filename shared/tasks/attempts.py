"""The record of the routes a task's run tried (``shared.providers.routing.Attempt``), for the operators'
task timeline: written in one statement after the run's routing ends, whatever its outcome; the runs of a
worker's concurrent jobs that end at about the same time share that statement."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from shared.infra.db import Database
from shared.infra.db.batching import PerPool
from shared.infra.group_commit import GroupCommit
from shared.infra.ids import uuid7
from shared.providers.routing import Attempt

log = logging.getLogger(__name__)


async def record_attempts(db: Database, task_id: uuid.UUID, attempts: list[Attempt]) -> None:
    if not attempts:
        return
    try:
        await _recorder(db).group.submit((task_id, attempts))
    except Exception:  # the timeline is a record for people: losing it never fails the task
        log.exception("task %s: its attempts could not be recorded", task_id)


_Runs = tuple[uuid.UUID, list[Attempt]]


class _Recorder:
    """The attempts of the runs that end at about the same time, written in one statement (a group commit:
    one round trip and one commit for a worker's concurrent jobs instead of one each)."""

    def __init__(self, db: Database) -> None:
        self.pool = db.pool
        self.group: GroupCommit[_Runs, None] = GroupCommit(self._insert_many, alone=self._insert_one)

    async def _insert_one(self, run: _Runs) -> None:
        await self._insert([run])

    async def _insert_many(self, runs: list[_Runs]) -> list[Exception | None]:
        await self._insert(runs)
        return [None] * len(runs)

    async def _insert(self, runs: list[_Runs]) -> None:
        rows = [(task_id, a) for task_id, attempts in runs for a in attempts]
        await self.pool.execute(
            """
            INSERT INTO task_attempts (id, task_id, provider, outcome, error_code, error_message, upstream_id,
                                       duration_ms, started_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                 $8::int[], $9::timestamptz[])
            """,
            [uuid7() for _ in rows], [task_id for task_id, _ in rows], [a.provider for _, a in rows],
            [a.outcome for _, a in rows], [a.error_code for _, a in rows],
            [(a.error_message or "")[:500] or None for _, a in rows], [a.upstream_id for _, a in rows],
            [a.duration_ms for _, a in rows], [dt.datetime.fromtimestamp(a.started_at, dt.UTC) for _, a in rows],
        )  # fmt: skip


_recorder = PerPool(_Recorder)  # _recorder(db): the process's attempt recorder on db
