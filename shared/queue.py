"""The arq queue: how the API and the sweeps hand work to workers.

Jobs carry ids only. A task's job id is the task id, so enqueueing a task that already has a live job
is a no-op (arq refuses a duplicate job id) and the sweep can re-enqueue without double work.
"""

from __future__ import annotations

import uuid

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

RUN_TASK = "run_task"
QUEUE_NAME = "arq:queue"


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 5
    settings.conn_retries = 5
    return settings


async def connect_redis(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url))


async def enqueue_task(redis: ArqRedis, task_id: uuid.UUID, *, defer_s: float | None = None) -> bool:
    """Enqueue the task's job. False when a job for this task is already queued or running."""
    job = await redis.enqueue_job(RUN_TASK, str(task_id), _job_id=str(task_id), _defer_by=defer_s)
    return job is not None
