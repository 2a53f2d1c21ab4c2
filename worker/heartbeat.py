"""Per-process liveness: each worker refreshes ``conduit:worker:<host>:<pid>`` (a JSON record with a TTL) every
``WORKER_HEARTBEAT_S``, in a background loop that deletes the record when the process stops. ``conduit
workers`` lists the live ones; ``conduit workers --check`` exits non-zero when none (or none on ``--host``) is
alive, for orchestration probes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "conduit:worker:"


def heartbeat_key() -> str:
    return f"{HEARTBEAT_PREFIX}{socket.gethostname()}:{os.getpid()}"


async def beat(redis: Redis, worker: Any, interval_s: float) -> None:
    """Write the record now and every ``interval_s`` (kept for two beats) until cancelled, then delete it."""
    try:
        while True:
            try:
                await write_heartbeat(redis, worker, ttl_s=interval_s * 2 + 5)
            except (RedisError, OSError) as exc:  # the next beat tries again; the record outlives one miss
                log.warning("worker heartbeat not written: %s", exc)
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await delete_heartbeat(redis)


async def write_heartbeat(redis: Redis, worker: Any, *, ttl_s: float) -> None:
    """``worker`` is the arq ``Worker``: the record shows its public counters."""
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "at": time.time(),
        "accepting_jobs": bool(getattr(worker, "allow_pick_jobs", True)),
        "jobs_running": sum(not t.done() for t in worker.tasks.values()),
        "jobs_complete": worker.jobs_complete,
        "jobs_failed": worker.jobs_failed,
        "jobs_retried": worker.jobs_retried,
    }
    await redis.set(heartbeat_key(), json.dumps(record), px=int(ttl_s * 1000))


async def delete_heartbeat(redis: Redis) -> None:
    await redis.delete(heartbeat_key())


async def live_workers(redis: Redis) -> list[dict[str, Any]]:
    keys = [key async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=500)]
    if not keys:
        return []
    records = []
    now = time.time()
    for raw in await redis.mget(keys):
        if raw is not None:
            record = json.loads(raw)
            record["seconds_since_beat"] = round(now - record["at"], 1)
            records.append(record)
    return sorted(records, key=lambda r: (r["host"], r["pid"]))
