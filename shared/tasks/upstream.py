"""Non-terminal updates of a running task that is waiting on an upstream job.

``SubmittedJobs`` keeps each upstream job a run created in Redis as well, for the run that takes the task over
when the first could not save the job's id in PostgreSQL.

Both updates release the task's lease: the job is about to be re-scheduled (arq ``Retry(defer=…)``) and its next
delivery, on any worker, must be able to claim the task at once. Both only touch a task that is still
running under the run's own claim (``generation``, the task's ``attempts`` when it was claimed: a run whose
lease lapsed and was taken over is fenced off), and say whether it was (a task canceled meanwhile must have its
upstream job canceled too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.infra.db import Database, to_json

log = logging.getLogger(__name__)

SUBMITTED_KEY = "conduit:task-upstream:"  # + the task id: [provider, upstream job id] of the job a run created


@dataclass(frozen=True, slots=True)
class SubmittedJobs:
    """The upstream jobs that runs created, kept in Redis until the task's deadline.

    A run saves its upstream job's id on the task (``save_submitted``) before it polls. A worker cut off from
    PostgreSQL at that moment, or stopped while saving, has created a job that the database does not know. The
    run that takes the task over looks here first and resumes that job instead of creating a second one. Redis
    being out of reach only loses this safety net: both calls give up after ``timeout_s``."""

    redis: Redis
    timeout_s: float = 1.0

    async def remember(self, task_id: uuid.UUID, provider: str, upstream_id: str, *, ttl_s: float) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.redis.set(
                    f"{SUBMITTED_KEY}{task_id}", json.dumps([provider, upstream_id]), ex=max(1, int(ttl_s))
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("task %s: could not keep its upstream job %s in Redis: %s", task_id, upstream_id, exc)

    async def recall(self, task_id: uuid.UUID) -> tuple[str, str] | None:
        """(provider, upstream job id) of the job an earlier run of the task created, if one is kept."""
        try:
            async with asyncio.timeout(self.timeout_s):
                kept = await self.redis.get(f"{SUBMITTED_KEY}{task_id}")
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("task %s: could not look for an earlier run's upstream job: %s", task_id, exc)
            return None
        if kept is None:
            return None
        provider, upstream_id = json.loads(kept)
        return str(provider), str(upstream_id)


async def save_submitted(
    db: Database, task_id: uuid.UUID, *, provider: str, upstream_id: str, progress: dict[str, Any], generation: int
) -> bool:
    """Record the upstream job id (and who holds it) before any poll, so a re-run resumes it. False when the
    task is no longer running, or another run of its job already saved a different upstream job."""
    status = await db.execute(
        """
        UPDATE tasks SET provider = $2, upstream_id = $3, progress = $4::jsonb, lease_expires_at = NULL
        WHERE id = $1 AND status = 'running' AND (upstream_id IS NULL OR upstream_id = $3) AND attempts = $5
        """,
        task_id,
        provider,
        upstream_id,
        to_json(progress),
        generation,
    )
    return status.endswith(" 1")


async def save_progress(db: Database, task_id: uuid.UUID, progress: dict[str, Any] | None, *, generation: int) -> bool:
    status = await db.execute(
        """
        UPDATE tasks SET progress = COALESCE($2::jsonb, progress), lease_expires_at = NULL
        WHERE id = $1 AND status = 'running' AND attempts = $3
        """,
        task_id,
        to_json(progress) if progress else None,
        generation,
    )
    return status.endswith(" 1")


def split_logs(previous: dict[str, Any] | None, progress: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An upstream's progress carries every log line so far (``logs``): (what the task keeps: the progress with
    the count of lines in ``log_lines`` instead of the lines, what its event tells: the lines not told before)."""
    lines = progress.get("logs")
    if not isinstance(lines, list):
        return progress, progress
    told = int((previous or {}).get("log_lines") or 0)
    rest = {name: value for name, value in progress.items() if name != "logs"}
    new = lines[told:] if len(lines) >= told else lines
    return {**rest, "log_lines": len(lines)}, ({**rest, "logs": new} if new else rest)
