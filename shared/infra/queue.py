"""The arq queue: how the API and the sweeps hand work to workers.

Jobs carry ids only. A task's job id is the task id, so enqueueing a task that already has a live job
is a no-op and the sweep can re-enqueue without double work.

``enqueue_task`` writes exactly what ``ArqRedis.enqueue_job`` writes (the pickled job under
``arq:job:<id>`` and the id in the ``arq:queue`` sorted set, skipped when the job or its result exists),
but as one atomic Lua script: one round trip instead of arq's WATCH / EXISTS / MULTI sequence. Submit
is the hottest path in the API, so the round trips matter.
"""

from __future__ import annotations

import time
import uuid

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job

from shared.infra.group_commit import GroupCommit

RUN_TASK = "run_task"
CANCEL_UPSTREAM = "cancel_upstream"
QUEUE_NAME = default_queue_name

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 5
    settings.conn_retries = 5
    return settings


async def connect_redis(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))


def _enqueue_args(task_id: uuid.UUID, defer_s: float | None) -> tuple[object, ...]:
    job_id = str(task_id)
    now_ms = int(time.time() * 1000)
    defer_ms = int((defer_s or 0) * 1000)
    payload = serialize_job(RUN_TASK, (job_id,), {}, None, now_ms)
    return (
        _ENQUEUE,
        3,
        job_key_prefix + job_id,
        result_key_prefix + job_id,
        QUEUE_NAME,
        payload,
        str(defer_ms + expires_extra_ms),
        str(now_ms + defer_ms),
        job_id,
    )


async def enqueue_task(redis: ArqRedis, task_id: uuid.UUID, *, defer_s: float | None = None) -> bool:
    """Enqueue the task's job. False when a job for this task is already queued or running."""
    added = await redis.eval(*_enqueue_args(task_id, defer_s))  # type: ignore[arg-type, misc]
    return bool(added)


async def enqueue_upstream_cancel(redis: ArqRedis, task_id: uuid.UUID) -> None:
    """Ask a worker to cancel the task's upstream job (a cold path: arq's own enqueue is fine)."""
    await redis.enqueue_job(CANCEL_UPSTREAM, str(task_id), _job_id=f"{CANCEL_UPSTREAM}:{task_id}")


class Enqueuer:
    """Enqueues for many concurrent requests in one Redis round trip (``shared.infra.group_commit``)."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._batches: GroupCommit[uuid.UUID, bool] = GroupCommit(self._execute)

    async def enqueue(self, task_id: uuid.UUID) -> bool:
        """Enqueue the task's job. False when a job for this task is already queued or running."""
        return await self._batches.submit(task_id)

    async def _execute(self, task_ids: list[uuid.UUID]) -> list[bool | Exception]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.eval(*_enqueue_args(task_id, None))  # type: ignore[arg-type]
            results = await pipe.execute()
        return [bool(added) for added in results]
