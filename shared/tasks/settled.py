"""What follows the commit of tasks' terminal transitions, in one Redis round trip: their in-flight slots given
back (``shared.ratelimits.task_slots``) and their final events published (``shared.events``).

Both are best effort and never raise: a release that is lost is repaired from the database (the slot sweep), an
event that is lost is told from the database (the event streams complete themselves from the task rows)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from shared.events.publish import NewEvent, now_text
from shared.infra.redis_scripts import ScriptCall, run_scripts

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0  # without events (and their publish timeout): how long the slot releases may take


@dataclass(frozen=True, slots=True)
class Settled:
    """A task whose terminal transition committed, and the final event that tells it."""

    task_id: uuid.UUID
    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    event: str


async def announce(slots: TaskSlots | None, events: TaskEvents | None, settled: Sequence[Settled]) -> None:
    """Give back every settled task's slots and publish its final event: one pipeline for all of them (two when
    the slots and the events live on different Redis clients)."""
    if not settled or (slots is None and events is None):
        return
    by_redis: dict[int, tuple[Redis, list[ScriptCall]]] = {}
    if slots is not None:
        owners: dict[tuple[uuid.UUID, uuid.UUID | None], list[str]] = {}
        for task in settled:  # one release per account and key: a busy account's batch frees its slots at once
            owners.setdefault((task.account_id, task.api_key_id), []).append(str(task.task_id))
        calls = by_redis.setdefault(id(slots.redis), (slots.redis, []))[1]
        calls += [slots.release_call(account, key, members) for (account, key), members in owners.items()]
    if events is not None:
        now = now_text()
        calls = by_redis.setdefault(id(events.redis), (events.redis, []))[1]
        calls += [events.publish_call(NewEvent(t.event, t.task_id, t.account_id, {}), now) for t in settled]
    timeout_s = events.settings.publish_timeout_s if events is not None else DEFAULT_TIMEOUT_S
    await asyncio.gather(*(_run(redis, calls, timeout_s, len(settled)) for redis, calls in by_redis.values()))


async def _run(redis: Redis, calls: list[ScriptCall], timeout_s: float, tasks: int) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            answers = await run_scripts(redis, calls)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("could not release the slots or publish the final events of %d task(s): %s", tasks, exc)
        return
    refused = [answer for answer in answers if isinstance(answer, Exception)]
    if refused:
        log.warning("%d slot release(s) or final event(s) of %d task(s) refused: %s", len(refused), tasks, refused[0])
