"""The arq queue: the Redis connection, and the one way jobs reach the workers (``JobQueue.enqueue``).

``JobQueue.enqueue`` writes exactly what arq's ``ArqRedis.enqueue_job`` writes (the pickled job under
``arq:job:<id>`` with its expiry, and the id in the queue's sorted set, scored with the time it is due;
nothing when the job or its result already exists), but as one atomic Lua script instead of arq's WATCH /
EXISTS / MULTI sequence, and the scripts of concurrent callers go to Redis together, in one pipeline
(``shared.infra.group_commit``): task submit is the hottest path in the API, so round trips matter.
That format is arq's; ``tests/integration/operating/test_job_queue.py`` checks it against arq's ``enqueue_job``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from opentelemetry.trace import SpanKind
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from shared.infra import tracing
from shared.infra.group_commit import GroupCommit
from shared.infra.jobs import Job

if TYPE_CHECKING:
    from shared.infra.deployment import SentinelSettings

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def _retry() -> Retry:
    """With Sentinel, a command that meets a lost connection (the primary died or was demoted) is sent again on a
    new one, for about ten seconds: the new connection goes to the primary the Sentinels name then."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=15)


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 5
    settings.conn_retries = 5
    return settings


async def connect_redis(url: str, sentinel: SentinelSettings | None = None) -> ArqRedis:
    """The process's Redis client (arq's pool: the queue, the workers, rate limits, events, caches all use it).

    With ``sentinel``, it follows the primary the Sentinels name for the service, ``url`` giving only the
    database number and the password (``shared.infra.deployment``)."""
    if sentinel is None:
        return await create_pool(redis_settings(url))
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) if parts.scheme.startswith("redis") else 0
    sentinels = Sentinel(
        list(sentinel.sentinels),
        sentinel_kwargs={"password": sentinel.password, "socket_timeout": 2.0, "socket_connect_timeout": 2.0},
        db=database,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        socket_connect_timeout=5,
        retry=_retry(),
        retry_on_error=[ConnectionError, TimeoutError],
    )
    redis = cast(ArqRedis, sentinels.master_for(sentinel.service, redis_class=ArqRedis))
    await redis.ping()
    return redis


async def close_redis(redis: ArqRedis) -> None:
    """Close the client, and with Sentinel the connections to the Sentinels too."""
    await redis.aclose()
    manager = getattr(redis.connection_pool, "sentinel_manager", None)
    for client in getattr(manager, "sentinels", ()):
        await client.aclose()


def _enqueue_args(job: Job) -> tuple[object, ...]:
    now_ms = int(time.time() * 1000)
    payload = serialize_job(job.name, job.args, {"trace": dict(job.trace)} if job.trace else {}, None, now_ms)
    return (
        _ENQUEUE,
        3,
        job_key_prefix + job.job_id,
        result_key_prefix + job.job_id,
        job.queue,
        payload,
        str(job.defer_ms + expires_extra_ms),
        str(now_ms + job.defer_ms),
        job.job_id,
    )


class JobQueue:
    """Hands jobs to the workers. Call ``enqueue`` after the commit of the state the job refers to: a worker
    may run it at once."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._batches: GroupCommit[Job, bool] = GroupCommit(self._execute)

    async def enqueue(self, job: Job) -> bool:
        """Queue the job. False when a job with its id is already queued or running (or its result is kept).

        While tracing, the hand-over is a producer span (child of the job's own ``trace`` when it has one, else
        of the current span) and the job carries that span's context to the worker."""
        if tracing.provider() is None:
            return await self._batches.submit(job)
        with tracing.resumed(job.trace, f"enqueue {job.name}", kind=SpanKind.PRODUCER, job_id=job.job_id):
            return await self._batches.submit(replace(job, trace=tracing.current_carrier()))

    async def enqueue_many(self, jobs: list[Job]) -> list[bool]:
        """Queue several jobs in one round trip (a batch submit's tasks): each one's ``enqueue`` answer."""
        if not jobs:
            return []
        results = await self._execute(jobs)
        return [result is True for result in results]

    async def _execute(self, jobs: list[Job]) -> list[bool | Exception]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.eval(*_enqueue_args(job))  # type: ignore[arg-type]
            results = await pipe.execute()
        return [bool(added) for added in results]
