"""The per-process cache of recently authenticated API keys, and the invalidations that keep it true.

Whatever changes a key's or an account's standing (revocation, deletion, suspension, limits) publishes an
invalidation on Redis (``publish_invalidation``), which every API process applies at once; entries are also
forgotten after ``ttl_s`` as a safety net. Refused keys are remembered for ``REFUSAL_TTL_S``: an unknown, revoked
or expired key never works again, so a refusal needs no invalidation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from shared.infra.background import BackgroundTasks
from shared.infra.errors import Unauthenticated

if TYPE_CHECKING:
    from shared.accounts.keys import Principal

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "conduit:auth:invalidate"
TOUCH_INTERVAL_S = 60.0
REFUSAL_TTL_S = 60.0
MAX_REFUSALS = 10_000


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    expires_at: float | None  # the key's own expiry (epoch seconds)
    cached_at: float


@dataclass(frozen=True, slots=True)
class _Refusal:
    message: str
    code: str
    cached_at: float


class KeyCache:
    """Recently authenticated keys of this process. Entries are dropped on invalidation messages. A cached key's
    ``last_used_at`` is stamped in the process's ``background`` tasks, off the request path."""

    def __init__(self, background: BackgroundTasks, *, ttl_s: float = 60.0, max_entries: int = 50_000) -> None:
        self.background = background
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._refusals: OrderedDict[str, _Refusal] = OrderedDict()  # key hash -> why it was refused
        self._touched: dict[uuid.UUID, float] = {}
        self.enabled = False  # only while the invalidation subscription is live
        # Bumped by every invalidation: a lookup that read the database before an invalidation arrived
        # must not cache what it read (it may be the state the invalidation was about).
        self.generation = 0

    def get(self, key_hash: str, now: float) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or not self.enabled:
            return None
        if now - entry.cached_at > self.ttl_s or (entry.expires_at is not None and now >= entry.expires_at):
            self._entries.pop(key_hash, None)
            return None
        return entry.principal

    def put(
        self, key_hash: str, principal: Principal, expires_at: dt.datetime | None, now: float, generation: int
    ) -> None:
        if not self.enabled or generation != self.generation:
            return
        self._entries[key_hash] = _Cached(principal, expires_at.timestamp() if expires_at else None, now)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def refusal(self, key_hash: str, now: float) -> Unauthenticated | None:
        """The answer given to this key when it was last looked up, if that was a refusal not long ago."""
        entry = self._refusals.get(key_hash)
        if entry is None:
            return None
        if now - entry.cached_at > REFUSAL_TTL_S:
            del self._refusals[key_hash]
            return None
        return Unauthenticated(entry.message, code=entry.code)

    def remember_refusal(self, key_hash: str, refused: Unauthenticated, now: float) -> None:
        """Refusals need no invalidation: an unknown, revoked or expired key never works again."""
        self._refusals[key_hash] = _Refusal(refused.message, refused.code, now)
        self._refusals.move_to_end(key_hash)
        if len(self._refusals) > MAX_REFUSALS:
            self._refusals.popitem(last=False)

    def due_for_touch(self, key_id: uuid.UUID, now: float) -> bool:
        if now - self._touched.get(key_id, 0.0) < TOUCH_INTERVAL_S:
            return False
        self._touched[key_id] = now
        return True

    def invalidate(self, message: str) -> None:
        """``key:<id>``, ``account:<id>`` or ``all``."""
        self.generation += 1
        kind, _, ident = message.partition(":")
        if kind == "all" or not ident:
            self._entries.clear()
            return
        for key_hash, entry in list(self._entries.items()):
            principal = entry.principal
            if (kind == "key" and str(principal.api_key_id) == ident) or (
                kind == "account" and str(principal.account_id) == ident
            ):
                del self._entries[key_hash]

    async def listen(self, redis: Redis) -> None:
        """Apply invalidations published by any process; cache only while subscribed. Runs until cancelled."""
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                self.enabled = True
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        data = message["data"]
                        self.invalidate(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: stop trusting the cache until resubscribed
                log.warning("auth invalidation subscription lost (%s); key cache disabled", exc)
            finally:
                self.enabled = False
                self.generation += 1
                self._entries.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)


async def publish_invalidation(redis: Redis, message: str) -> None:
    await redis.publish(INVALIDATION_CHANNEL, message)
