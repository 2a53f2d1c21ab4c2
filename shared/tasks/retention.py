"""Retention sweeps of task data. Each is safe when every worker runs it at once: rows are taken with
``FOR UPDATE SKIP LOCKED`` (two sweeps never work on the same rows) and every step is idempotent.

* task data: ``RETENTION_DAYS`` after a task ended, its input is emptied and its input and output files are
  deleted (the task row, its usage record and its ledger entries stay: they are the account's history);
* Idempotency-Key records of submits older than ``IDEMPOTENCY_TTL_H``.
"""

from __future__ import annotations

import logging

from shared.infra.db import Database
from shared.infra.storage import LocalStorage
from shared.media.inputs import input_prefix
from shared.tasks.outputs import output_prefix

log = logging.getLogger(__name__)


async def purge_task_data(db: Database, storage: LocalStorage, *, retention_days: int, limit: int = 200) -> int:
    """Purge the input and output files of tasks that ended more than ``retention_days`` ago (0: never)."""
    if retention_days <= 0:
        return 0
    async with db.transaction() as conn:
        rows = await conn.fetch(
            """
            SELECT id FROM tasks
            WHERE purged_at IS NULL AND completed_at IS NOT NULL
              AND completed_at < now() - make_interval(days => $1)
            ORDER BY completed_at LIMIT $2
            FOR UPDATE SKIP LOCKED
            """,
            retention_days,
            limit,
        )
        if not rows:
            return 0
        # Files first, while the rows are locked: a crash before the commit leaves them to the next sweep.
        for row in rows:
            await storage.delete_prefix(output_prefix(row["id"]))
            await storage.delete_prefix(input_prefix(row["id"]))
        await conn.execute(
            "UPDATE tasks SET input = '{}'::jsonb, outputs = '[]'::jsonb, purged_at = now() WHERE id = ANY($1::uuid[])",
            [row["id"] for row in rows],
        )
    log.info("retention: purged the data of %d task(s) finished over %d days ago", len(rows), retention_days)
    return len(rows)


async def prune_idempotency_records(db: Database, *, ttl_h: int, limit: int = 5000) -> int:
    """Delete Idempotency-Key records older than ``ttl_h`` hours. Returns how many."""
    deleted = await db.fetch(
        """
        DELETE FROM idempotency_records WHERE id IN (
            SELECT id FROM idempotency_records WHERE created_at < now() - make_interval(hours => $1)
            LIMIT $2 FOR UPDATE SKIP LOCKED
        ) RETURNING id
        """,
        ttl_h,
        limit,
    )
    return len(deleted)
