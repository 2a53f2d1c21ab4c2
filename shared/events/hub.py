"""The events an API process receives: one reader tails the Redis stream every worker and API process publishes
to, and hands each event to the streams open on this process that want it (by task, or by account).

The reader tails only while a stream is open on this process: an API process nobody streams from reads nothing
(with every task publishing three events, reading them all would cost each API process about a tenth of its
CPU). The first stream to open waits until the reader is placed at the newest event (``ready``) before it reads
its history, so nothing published after it opened is missed.

A stream that has waited a while without an event is checked against the database (``reconcile``): a task that
reached a later status than its stream has told (its event lost with Redis) gets that status as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.events import EVENT_FOR_STATUS, STATUS_AFTER
from shared.events.publish import TAIL_KEY
from shared.events.settings import EventSettings
from shared.infra.db import Database, from_json
from shared.tasks import QUEUED, RUNNING

log = logging.getLogger(__name__)

READ_BLOCK_MS = 5_000
READY_WAIT_S = 5.0  # at most, for the reader to be placed (with Redis down, a stream opens without it)
READ_COUNT = 1_000
RECONCILE_CHUNK = 1_000
RANK = {QUEUED: 0, RUNNING: 1}  # terminal statuses rank 2


def status_rank(status: str | None) -> int:
    return -1 if status is None else RANK.get(status, 2)


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """A Redis stream id (``<ms>-<seq>``) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """An event as received. ``id`` is its stream id; None for an event completed from the database."""

    id: str | None
    type: str
    task_id: uuid.UUID
    account_id: uuid.UUID
    data: dict[str, Any]


def parse_entry(entry_id: bytes | str, fields: dict[bytes, bytes] | dict[str, str]) -> TaskEvent | None:
    """A stream entry as a ``TaskEvent``; None when it is not one (a foreign or damaged entry)."""
    text = {_text(name): _text(value) for name, value in fields.items()}
    try:
        data = from_json(text.get("data") or "{}")
        event = TaskEvent(_text(entry_id), text["type"], uuid.UUID(text["task"]), uuid.UUID(text["account"]), data)
    except (KeyError, ValueError):
        return None
    return event if event.type in STATUS_AFTER and isinstance(data, dict) else None


@dataclass(eq=False, slots=True)
class Subscription:
    """One open stream: the events it wants arrive in ``queue``. ``task_ids`` None: every task of the account.
    ``seen`` is the latest status the stream told per task; ``overflowed`` when the client fell too far behind."""

    account_id: uuid.UUID
    task_ids: frozenset[uuid.UUID] | None
    queue: asyncio.Queue[TaskEvent]
    seen: dict[uuid.UUID, str] = field(default_factory=dict)
    active_at: float = field(default_factory=time.monotonic)
    opened_at: float = field(default_factory=time.monotonic)
    overflowed: bool = False

    def told(self, event: TaskEvent) -> None:
        self.active_at = time.monotonic()
        status = STATUS_AFTER[event.type]
        if status_rank(status) >= status_rank(self.seen.get(event.task_id)):
            self.seen[event.task_id] = status


class EventHub:
    def __init__(self, redis: Redis, db: Database, settings: EventSettings) -> None:
        self.redis = redis
        self.db = db
        self.settings = settings
        self._by_task: dict[uuid.UUID, set[Subscription]] = {}
        self._by_account: dict[uuid.UUID, set[Subscription]] = {}
        self.received = 0  # events read from the tail (metrics, tests)
        self._wanted = asyncio.Event()  # set while a stream is open here: the reader tails only then
        self._placed = asyncio.Event()  # set while the reader tails from a place at or before now

    @property
    def open_streams(self) -> int:
        return len({sub for subs in (*self._by_task.values(), *self._by_account.values()) for sub in subs})

    @property
    def tailing(self) -> bool:
        """Whether the reader tails the stream now (from the first stream opened to the end of the read under way
        when the last one closed)."""
        return self._placed.is_set()

    def watches_account(self, account_id: uuid.UUID) -> bool:
        """Whether a stream of every task of the account is open here."""
        return bool(self._by_account.get(account_id))

    def subscribe(self, account_id: uuid.UUID, task_ids: Iterable[uuid.UUID] | None) -> Subscription:
        ids = None if task_ids is None else frozenset(task_ids)
        sub = Subscription(account_id, ids, asyncio.Queue(self.settings.queue_max))
        if ids is None:
            self._by_account.setdefault(account_id, set()).add(sub)
        for task_id in ids or ():
            self._by_task.setdefault(task_id, set()).add(sub)
        self._wanted.set()
        return sub

    async def ready(self) -> None:
        """Wait until the reader tails from a place at or before now, so that a stream just subscribed misses no
        event published from now on (at most READY_WAIT_S: with Redis down, the reconciler tells what it missed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._placed.wait(), READY_WAIT_S)

    def unsubscribe(self, sub: Subscription) -> None:
        keys: Iterable[tuple[dict[uuid.UUID, set[Subscription]], uuid.UUID]]
        keys = (
            [(self._by_account, sub.account_id)] if sub.task_ids is None else [(self._by_task, t) for t in sub.task_ids]
        )
        for index, key in keys:
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]
        if not self._by_task and not self._by_account:
            self._wanted.clear()  # the reader stops after its current read

    def dispatch(self, event: TaskEvent) -> None:
        for sub in (*self._by_task.get(event.task_id, ()), *self._by_account.get(event.account_id, ())):
            if sub.task_ids is None and sub.account_id != event.account_id:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True  # its stream ends; the client resumes from Redis with Last-Event-ID

    async def history(self, key: str, after: str | None) -> list[TaskEvent] | None:
        """The events kept in stream ``key`` after id ``after`` (all of them without); None when the stream is
        gone (expired, or lost with Redis) or Redis cannot be read."""
        try:
            entries = await self.redis.xrange(key, min=f"({after}" if after else "-", max="+")
            if not entries and not await self.redis.exists(key):
                return None
        except (RedisError, OSError) as exc:
            log.warning("could not read the events of %s: %s", key, exc)
            return None
        return [event for entry_id, fields in entries if (event := parse_entry(entry_id, fields)) is not None]

    async def run(self) -> None:
        """Tail the stream and dispatch while any stream is open here, for as long as the process runs."""
        while True:
            await self._wanted.wait()
            last = await self._tail_end()
            self._placed.set()
            try:
                while self._wanted.is_set():
                    last = await self._read(last)
            finally:
                self._placed.clear()

    async def _read(self, last: str) -> str:
        """Dispatch the events after ``last`` (waiting up to READ_BLOCK_MS for one); the id of the last one read."""
        try:
            answer = await self.redis.xread({TAIL_KEY: last}, count=READ_COUNT, block=READ_BLOCK_MS)
        except (RedisError, OSError) as exc:
            log.warning("reading task events failed, retrying: %s", exc)
            await asyncio.sleep(1.0)
            return last
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                last = _text(entry_id)
                event = parse_entry(entry_id, fields)
                if event is not None:
                    self.received += 1
                    self.dispatch(event)
        return last

    async def _tail_end(self) -> str:
        """The id of the newest event now, so the reader starts after it (streams replay what came before)."""
        while True:
            try:
                newest = await self.redis.xrevrange(TAIL_KEY, count=1)
                return _text(newest[0][0]) if newest else "0-0"
            except (RedisError, OSError) as exc:
                log.warning("reading task events failed, retrying: %s", exc)
                await asyncio.sleep(1.0)

    async def reconcile_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_s)
            try:
                await self.reconcile()
            except Exception:  # the next round tries again
                log.exception("checking idle event streams against the database failed")

    async def reconcile(self) -> None:
        """Streams idle for ``reconcile_s`` get, as an event, any later status their tasks reached meanwhile.
        A subscription older than any stream may last is dropped (its stream never started, or never ended)."""
        now = time.monotonic()
        stale = now - self.settings.max_stream_s - 60
        for sub in {sub for subs in (*self._by_task.values(), *self._by_account.values()) for sub in subs}:
            if sub.opened_at < stale:
                self.unsubscribe(sub)
        idle_before = now - self.settings.reconcile_s
        waiting = [
            (task_id, sub)
            for task_id, subs in list(self._by_task.items())
            for sub in subs
            if sub.active_at <= idle_before and status_rank(sub.seen.get(task_id)) < 2
        ]
        ids = list({task_id for task_id, _ in waiting})
        statuses: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
        for start in range(0, len(ids), RECONCILE_CHUNK):
            rows = await self.db.fetch(
                "SELECT id, account_id, status FROM tasks WHERE id = ANY($1::uuid[])",
                ids[start : start + RECONCILE_CHUNK],
            )
            statuses.update({row["id"]: (row["account_id"], row["status"]) for row in rows})
        for task_id, sub in waiting:
            account_id, status = statuses.get(task_id, (None, None))
            if status is None or account_id != sub.account_id:
                continue
            if status_rank(status) > status_rank(sub.seen.get(task_id)):
                event = TaskEvent(None, EVENT_FOR_STATUS[status], task_id, account_id, {})
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.overflowed = True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
