"""The Server-Sent Event streams of a client: the events of one task, or of an account's tasks (some of them,
or all), each event once and in order.

Opening a stream subscribes to the process's ``EventHub`` first, then reads what the client has not seen yet
from the task's or the account's Redis stream (after ``Last-Event-ID``), then checks the task rows: a status
the streams lost (Redis flushed, an event never published) is told from the database. So a client that
connects late gets the final event at once, and no client waits forever for an event Redis dropped. A stream
of given tasks ends after the last of them ended; every stream ends after ``max_stream_s`` (EventSource
reconnects and resumes). Comments are sent while nothing happens, so proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from shared.events import EVENT_FOR_STATUS, STATUS_AFTER, TASK_OUTPUT, TERMINAL_EVENTS
from shared.events.hub import EventHub, Subscription, TaskEvent, status_rank, stream_id_key
from shared.events.publish import account_stream_key, task_stream_key
from shared.events.settings import EventSettings
from shared.infra.db import Database, to_json
from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid
from shared.infra.storage import UrlSigner
from shared.tasks import STATUSES
from shared.tasks.queries import get_task, task_not_found
from shared.tasks.records import TASK_ROWS, TaskRecord
from shared.tasks.views import public_output, public_task

MAX_TASK_IDS = 100
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
HEARTBEAT = "keep-alive"


@dataclass(frozen=True, slots=True)
class Message:
    """One Server-Sent Event (``event``, ``id``, ``data``), or a comment."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class StreamRequest:
    account_id: uuid.UUID
    task_ids: frozenset[uuid.UUID] | None  # None: every task of the account, for as long as the stream lasts
    statuses: frozenset[str] | None = None  # only the events that leave a task in one of these statuses
    last_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class StreamServices:
    hub: EventHub
    db: Database
    signer: UrlSigner
    settings: EventSettings


def parse_last_event_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _STREAM_ID.match(value):
        raise InvalidInput("Last-Event-ID must be the id of an event this API sent", param="Last-Event-ID")
    return value


def parse_task_ids(value: str | None) -> frozenset[uuid.UUID] | None:
    """``task_ids`` (comma-separated). An id that is not one is no task of the account: 404."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise InvalidInput("task_ids must list at least one task id", param="task_ids")
    if len(parts) > MAX_TASK_IDS:
        raise InvalidInput(f"task_ids may list at most {MAX_TASK_IDS} tasks", param="task_ids")
    ids = set()
    for part in parts:
        parsed = parse_uuid(part)
        if parsed is None:
            raise task_not_found(part)
        ids.add(parsed)
    return frozenset(ids)


def parse_statuses(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    parts = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(parts - set(STATUSES))
    if not parts or unknown:
        raise InvalidInput(f"status must be a comma-separated list of {', '.join(STATUSES)}", param="status")
    return parts


async def open_stream(services: StreamServices, request: StreamRequest) -> AsyncIterator[Message]:
    """Check the tasks are the account's (404 before anything is streamed), subscribe and read the history;
    the returned iterator streams the rest."""
    sub = services.hub.subscribe(request.account_id, request.task_ids)
    try:
        await services.hub.ready()  # the hub's reader tails from now on (it rests while no stream is open)
        tasks = await _owned_tasks(services.db, request)
        if request.task_ids is not None and len(request.task_ids) == 1:
            history_key = task_stream_key(next(iter(request.task_ids)))
        else:
            history_key = account_stream_key(request.account_id)
        if request.task_ids is None and request.last_event_id is None:
            history: list[TaskEvent] | None = []  # every task of the account, from now on
        else:
            history = await services.hub.history(history_key, request.last_event_id)
    except BaseException:
        services.hub.unsubscribe(sub)
        raise
    return _stream(services, request, sub, tasks, history)


async def _owned_tasks(db: Database, request: StreamRequest) -> dict[uuid.UUID, TaskRecord]:
    if request.task_ids is None:
        return {}
    rows = await db.fetch(
        f"SELECT {TASK_ROWS.columns} FROM tasks WHERE id = ANY($1::uuid[]) AND account_id = $2",
        list(request.task_ids),
        request.account_id,
    )
    tasks = {task.id: task for task in map(TASK_ROWS.from_row, rows)}
    missing = sorted(str(task_id) for task_id in request.task_ids - tasks.keys())
    if missing:
        raise task_not_found(missing[0])
    return tasks


async def _stream(
    services: StreamServices,
    request: StreamRequest,
    sub: Subscription,
    tasks: dict[uuid.UUID, TaskRecord],
    history: list[TaskEvent] | None,
) -> AsyncIterator[Message]:
    shaper = _Shaper(services.db, services.signer, request.account_id)
    pending = set(request.task_ids) if request.task_ids is not None else None
    watermark = request.last_event_id
    try:
        replayed = set()
        for event in history or ():
            if request.task_ids is not None and event.task_id not in request.task_ids:
                continue
            replayed.add(event.task_id)
            watermark = event.id
            sub.told(event)
            if _wanted(request, event):
                yield await shaper.message(event)
        # What the streams did not tell (lost, or never published) is told from the task rows.
        for task in tasks.values():
            seen = status_rank(sub.seen.get(task.id))
            lost = history is None or (request.last_event_id is None and task.id not in replayed)
            if (status_rank(task.status) == 2 and seen < 2) or (lost and status_rank(task.status) > seen):
                event = TaskEvent(None, EVENT_FOR_STATUS[task.status], task.id, task.account_id, {})
                sub.told(event)
                if _wanted(request, event):
                    yield shaper.from_task(event, task)
        if pending is not None:
            pending -= {task_id for task_id, status in sub.seen.items() if status_rank(status) == 2}
            if not pending:
                return
        ends = time.monotonic() + services.settings.max_stream_s
        while not sub.overflowed and (left := ends - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(sub.queue.get(), min(services.settings.heartbeat_s, left))
            except TimeoutError:
                yield Message(comment=HEARTBEAT)
                continue
            if event.id is not None and watermark is not None and stream_id_key(event.id) <= stream_id_key(watermark):
                continue  # already sent from the history
            seen = status_rank(sub.seen.get(event.task_id))
            if seen == 2 or (event.id is None and status_rank(STATUS_AFTER[event.type]) <= seen):
                continue  # the task's end was told already, or the database has nothing new
            watermark = event.id or watermark
            sub.told(event)
            if _wanted(request, event):
                yield await shaper.message(event)
            if pending is not None and event.type in TERMINAL_EVENTS:
                pending.discard(event.task_id)
                if not pending:
                    return
    finally:
        services.hub.unsubscribe(sub)


def _wanted(request: StreamRequest, event: TaskEvent) -> bool:
    return request.statuses is None or STATUS_AFTER[event.type] in request.statuses


class _Shaper:
    """Events as the client sees them: ``{object, type, task_id, status, created_at, …}``; an output with its
    signed URL; the end of a task (and any status told from the database) with the whole task."""

    def __init__(self, db: Database, signer: UrlSigner, account_id: uuid.UUID) -> None:
        self.db = db
        self.signer = signer
        self.account_id = account_id

    async def message(self, event: TaskEvent) -> Message:
        if event.type in TERMINAL_EVENTS or event.id is None:
            return self.from_task(event, await get_task(self.db, self.account_id, event.task_id))
        return self._shaped(event, dict(event.data))

    def from_task(self, event: TaskEvent, task: TaskRecord) -> Message:
        return self._shaped(event, {**event.data, "task": public_task(task, self.signer)})

    def _shaped(self, event: TaskEvent, data: dict[str, Any]) -> Message:
        if event.type == TASK_OUTPUT and isinstance(data.get("output"), dict):
            data["output"] = public_output(data["output"], self.signer)
        body = {"object": "task.event", "type": event.type, "task_id": str(event.task_id),
                "status": STATUS_AFTER[event.type], **data}  # fmt: skip
        return Message(event=event.type, id=event.id, data=to_json(body))
