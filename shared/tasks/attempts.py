"""The record of the routes a task's run tried (``shared.providers.routing.Attempt``), for the operators'
task timeline: written in one statement after the run's routing ends, whatever its outcome."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from shared.infra.db import Database
from shared.infra.ids import uuid7
from shared.providers.routing import Attempt

log = logging.getLogger(__name__)


async def record_attempts(db: Database, task_id: uuid.UUID, attempts: list[Attempt]) -> None:
    if not attempts:
        return
    try:
        await db.execute(
            """
            INSERT INTO task_attempts (id, task_id, provider, outcome, error_code, error_message, upstream_id,
                                       duration_ms, started_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                 $8::int[], $9::timestamptz[])
            """,
            [uuid7() for _ in attempts], [task_id] * len(attempts), [a.provider for a in attempts],
            [a.outcome for a in attempts], [a.error_code for a in attempts],
            [(a.error_message or "")[:500] or None for a in attempts], [a.upstream_id for a in attempts],
            [a.duration_ms for a in attempts], [dt.datetime.fromtimestamp(a.started_at, dt.UTC) for a in attempts],
        )  # fmt: skip
    except Exception:  # the timeline is a record for people: losing it never fails the task
        log.exception("task %s: its attempts could not be recorded", task_id)
