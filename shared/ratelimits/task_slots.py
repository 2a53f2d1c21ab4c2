"""In-flight task slots: one per submitted task, per API key and per account, from the submit until the task ends.

A submit takes its slots through ``RequestLimits.check`` (in the same Redis script call as its rate limits);
``TaskSlots.release`` gives them back after the task's terminal transition commits. A release can be lost (a
process dies between the commit and the call, Redis is unreachable, Redis restarts empty), so the database,
which knows the active tasks, repairs the slots: ``purge_finished`` when a submit is refused for want of a
slot, ``repair`` from the periodic sweep, and every slot expires on its own after the longest task lifetime.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.asyncio import Redis

from shared.infra.db import Database
from shared.infra.ids import parse_uuid
from shared.infra.redis_scripts import ScriptCall
from shared.ratelimits.limiter import RateLimiter
from shared.tasks import ACTIVE

log = logging.getLogger(__name__)

# A slot whose member is younger than this is never repaired away: its task may not be committed yet.
SLOT_GRACE_S = 60.0


def slot_key(scope: str, ident: uuid.UUID) -> str:
    """The slot set of a key (``scope`` "key") or an account (``scope`` "account")."""
    return f"tasks:{scope}:{ident}"


# KEYS[1] a slot set, KEYS[2] the index of slot sets; ARGV the members to remove. Returns how many were removed.
_PRUNE = """
local removed = 0
if #ARGV > 0 then
    removed = redis.call('ZREM', KEYS[1], unpack(ARGV))
end
if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('SREM', KEYS[2], KEYS[1])
end
return removed
"""


# KEYS[1] the index of slot sets, then slot sets; ARGV: triples (position in KEYS, member, score). Adds each
# missing member (an existing one keeps its score) and indexes its set. Returns how many were added.
_RESTORE = """
local added = 0
for i = 1, #ARGV, 3 do
    local key = KEYS[tonumber(ARGV[i])]
    added = added + redis.call('ZADD', key, 'NX', ARGV[i + 2], ARGV[i + 1])
    redis.call('SADD', KEYS[1], key)
end
return added
"""


class TaskSlots:
    """The in-flight slots of tasks: released at terminal transitions, repaired from the database."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self._prune = limiter.redis.register_script(_PRUNE)
        self._restore = limiter.redis.register_script(_RESTORE)

    @staticmethod
    def keys(account_id: uuid.UUID, api_key_id: uuid.UUID | None) -> list[str]:
        keys = [slot_key("account", account_id)]
        if api_key_id is not None:
            keys.append(slot_key("key", api_key_id))
        return keys

    @property
    def redis(self) -> Redis:
        return self.limiter.redis

    def release_call(self, account_id: uuid.UUID, api_key_id: uuid.UUID | None, task_ids: Sequence[str]) -> ScriptCall:
        """The call that gives back tasks' slots, for a caller that runs it in a pipeline of its own after the
        tasks' terminal transitions committed (``shared.tasks.settled``)."""
        return self.limiter.release_call(self.keys(account_id, api_key_id), *task_ids)

    async def release(self, account_id: uuid.UUID, api_key_id: uuid.UUID | None, *task_ids: uuid.UUID) -> None:
        """Give back tasks' slots (after their terminal transitions committed, or for tasks a submit did not
        create). Never raises: a release that fails is repaired later."""
        try:
            await self.limiter.release(self.keys(account_id, api_key_id), *map(str, task_ids))
        except Exception as exc:
            log.warning("could not release the in-flight slots of %d task(s) (the sweep will): %s", len(task_ids), exc)

    async def purge_finished(self, db: Database, slot_keys: list[str], *, swallow_errors: bool = False) -> int:
        """Remove, from these slot sets (keys without the limiter's prefix), the members whose task has ended
        or was never created. Returns how many were removed (0 on an error, with ``swallow_errors``)."""
        try:
            return await self._purge(db, slot_keys)
        except Exception as exc:
            if not swallow_errors:
                raise
            log.warning("could not check in-flight slots against the database: %s", exc)
            return 0

    async def _purge(self, db: Database, slot_keys: list[str]) -> int:
        redis, prefix = self.limiter.redis, self.limiter.prefix
        members: dict[str, list[str]] = {}
        for key in slot_keys:
            raw = await redis.zrange(prefix + key, 0, -1)
            members[key] = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        ids = list({parsed for ms in members.values() for m in ms if (parsed := parse_uuid(m)) is not None})
        rows = await db.fetch("SELECT id, status FROM tasks WHERE id = ANY($1::uuid[])", ids) if ids else []
        status = {str(row["id"]): row["status"] for row in rows}
        removed = 0
        for key, ms in members.items():
            # Ended; or not in the database and too old to be a submit whose insert has not committed yet.
            stale = [m for m in ms if status.get(m) not in ACTIVE and (m in status or _older_than_grace(m))]
            # Atomically with the removal, an empty set leaves the index (a slot taken meanwhile keeps it).
            removed += int(await self._prune(keys=[prefix + key, self.limiter.slot_index], args=stale))
        return removed

    async def repair(self, db: Database) -> dict[str, int]:
        """The sweep: every active task holds its slots (they are lost if Redis restarted empty), and no task
        that has ended does (its release was lost)."""
        redis, prefix = self.limiter.redis, self.limiter.prefix
        rows = await db.fetch(
            """
            SELECT id, account_id, api_key_id, EXTRACT(EPOCH FROM deadline_at) * 1000 AS deadline_ms
            FROM tasks WHERE status IN ('queued', 'running')
            """
        )
        added = 0
        for start in range(0, len(rows), 200):
            keys: dict[str, int] = {}  # slot set -> its position in KEYS
            args: list[Any] = []
            for row in rows[start : start + 200]:
                for key in self.keys(row["account_id"], row["api_key_id"]):
                    position = keys.setdefault(prefix + key, len(keys) + 2)
                    # the expiry backstop of a restored slot is its task's deadline
                    args += [position, str(row["id"]), float(row["deadline_ms"]) + 60_000]
            added += int(await self._restore(keys=[self.limiter.slot_index, *keys], args=args))
        # A task that ended between the query above and its ZADD got a slot back: this removes it again.
        index = await cast("Awaitable[set[bytes]]", redis.smembers(self.limiter.slot_index))
        indexed = [k.decode() if isinstance(k, bytes) else str(k) for k in index]
        removed = await self.purge_finished(db, [k.removeprefix(prefix) for k in indexed])
        if added or removed:
            log.info(
                "in-flight slots repaired: %d added for active tasks, %d removed for finished ones", added, removed
            )
        return {"slots_added": added, "slots_removed": removed}


def _older_than_grace(member: str) -> bool:
    """Task ids are UUIDv7: their first 48 bits are the creation time in milliseconds."""
    parsed = parse_uuid(member)
    if parsed is None or parsed.version != 7:
        return True
    created_ms = parsed.int >> 80
    return created_ms < (time.time() - SLOT_GRACE_S) * 1000
