"""Publishing task events: one Lua script appends the event to the tail every API process reads and, under the
same id, to the task's and the account's streams (trimmed, expiring), so that the id a client saw last resumes
either stream. Concurrent publishes go to Redis together, in one pipeline (``shared.infra.group_commit``).

Publish after the commit of the state the event describes. A publish that fails is logged and dropped: the
event is a notification, the task row is the record, and streams complete themselves from it
(``shared.events.streams``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.events.settings import EventSettings
from shared.infra.db import to_json
from shared.infra.group_commit import GroupCommit
from shared.infra.redis_scripts import Arg, LuaScript, ScriptCall, run_scripts

log = logging.getLogger(__name__)

TAIL_KEY = "conduit:events"


def task_stream_key(task_id: uuid.UUID) -> str:
    return f"conduit:events:task:{task_id}"


def account_stream_key(account_id: uuid.UUID) -> str:
    return f"conduit:events:account:{account_id}"


# KEYS: tail, task stream, account stream. ARGV: tail length, stream length, stream ttl, type, task, account, data.
# The task's and account's entries take the tail's id; should one of them hold a later id (the tail was deleted
# and its ids restarted), that entry takes an id of its own rather than failing the publish.
_PUBLISH = LuaScript("""
local fields = {'type', ARGV[4], 'task', ARGV[5], 'account', ARGV[6], 'data', ARGV[7]}
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
for i = 2, 3 do
    local added = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], id, unpack(fields))
    if type(added) == 'table' and added.err then
        redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
    end
    redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return id
""")


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    task_id: uuid.UUID
    account_id: uuid.UUID
    data: dict[str, Any]


class TaskEvents:
    """Publishes task events (``publish``); ``publish_many`` for a batch of them in one round trip."""

    def __init__(self, redis: Redis, settings: EventSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._batches: GroupCommit[NewEvent, str] = GroupCommit(self._execute)

    async def publish(self, event_type: str, *, task_id: uuid.UUID, account_id: uuid.UUID, **data: Any) -> str | None:
        """Publish one event; its stream id, or None when Redis could not take it (logged)."""
        event = NewEvent(event_type, task_id, account_id, data)
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                return await self._batches.submit(event)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("task %s: could not publish %s: %s", task_id, event_type, exc)
            return None

    async def publish_many(self, events: list[NewEvent]) -> None:
        """Publish several events in one pipeline (a batch submit's ``task.queued``s)."""
        if not events:
            return
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                await self._execute(events)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not publish %d task events: %s", len(events), exc)

    def publish_call(self, event: NewEvent, created_at: str) -> ScriptCall:
        """The call that publishes ``event``, for a caller that runs it in a pipeline of its own
        (``shared.infra.redis_scripts.run_scripts``) after its commit. The call's answer is the stream id."""
        settings = self.settings
        keys = [TAIL_KEY, task_stream_key(event.task_id), account_stream_key(event.account_id)]
        data = to_json({**event.data, "created_at": created_at})
        args: list[Arg] = [
            *(settings.tail_max_len, settings.stream_max_len, settings.stream_ttl_s),
            *(event.type, str(event.task_id), str(event.account_id), data),
        ]
        return ScriptCall(_PUBLISH, keys, args)

    async def _execute(self, events: list[NewEvent]) -> list[str | Exception]:
        now = now_text()
        results = await run_scripts(self.redis, [self.publish_call(event, now) for event in events])
        return [result if isinstance(result, Exception) else _text(result) for result in results]


def now_text() -> str:
    """An event's ``created_at``."""
    return dt.datetime.now(dt.UTC).isoformat()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
