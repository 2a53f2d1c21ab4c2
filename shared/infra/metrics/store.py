"""The shared totals in Redis: one hash, ``HINCRBYFLOAT`` per field, so every process adds to the same sums."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.infra.metrics import METRICS, Recorder

log = logging.getLogger(__name__)

TOTALS_KEY = "conduit:metrics:totals"


async def flush(redis: Redis, recorder: Recorder = METRICS) -> int:
    """Add this process's increments to the totals. Returns how many fields were written."""
    values = recorder.drain()
    if not values:
        return 0
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for field, value in values.items():
                pipe.hincrbyfloat(TOTALS_KEY, field, value)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        recorder.restore(values)
        log.warning("metrics: could not flush to Redis (%s); will retry", type(exc).__name__)
        return 0
    return len(values)


async def read_totals(redis: Redis) -> dict[str, float]:
    raw = await redis.hgetall(TOTALS_KEY)  # type: ignore[misc]
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


async def flush_periodically(redis: Redis, interval_s: float) -> None:
    """Flush every ``interval_s`` until cancelled (a loop of the process's ``BackgroundTasks``, cancelled at
    shutdown), then once more, so the last counts of a stopping process are not lost."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            await flush(redis)
    finally:
        await flush(redis)
