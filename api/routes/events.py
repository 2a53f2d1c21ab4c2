"""Live task events as Server-Sent Events: ``GET /v1/tasks/{id}/events`` and ``GET /v1/events``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.events.streams import (
    Message,
    StreamRequest,
    StreamServices,
    open_stream,
    parse_last_event_id,
    parse_statuses,
    parse_task_ids,
)
from shared.infra.ids import parse_uuid
from shared.services import Services
from shared.tasks.queries import task_not_found

LastEventId = Annotated[str | None, HeaderParameter(name="Last-Event-ID")]


class EventController(Controller):
    path = "/v1"
    tags = ["tasks"]
    dependencies = {"principal": Provide(provide_principal)}
    opt = requires("tasks.read")

    @get("/tasks/{task_id:str}/events", operation_id="streamTaskEvents", media_type="text/event-stream")
    async def task_events(
        self, principal: PrincipalDep, services: ServicesDep, task_id: FromPath[str], last_event_id: LastEventId = None
    ) -> ServerSentEvent:
        """The task's events until it ends: task.queued, task.started, task.progress, task.output, then
        task.succeeded, task.failed or task.canceled (with the whole task), and the stream closes."""
        parsed = parse_uuid(task_id)
        if parsed is None:
            raise task_not_found(task_id)
        request = StreamRequest(principal.account_id, frozenset((parsed,)), None, parse_last_event_id(last_event_id))
        return await _respond(services, request)

    @get("/events", operation_id="streamEvents", media_type="text/event-stream")
    async def account_events(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        task_ids: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        """The events of the account's tasks: those in ``task_ids`` (comma-separated; the stream closes when all
        ended) or all of them, optionally only the events that leave a task in one of the ``status`` list."""
        request = StreamRequest(
            principal.account_id, parse_task_ids(task_ids), parse_statuses(status), parse_last_event_id(last_event_id)
        )
        return await _respond(services, request)


async def _respond(services: Services, request: StreamRequest) -> ServerSentEvent:
    stream_services = StreamServices(services.event_hub, services.db, services.signer, services.settings.events)
    return ServerSentEvent(_encoded(await open_stream(stream_services, request)))


async def _encoded(messages: AsyncIterator[Message]) -> AsyncIterator[ServerSentEventMessage]:
    async for message in messages:
        yield ServerSentEventMessage(data=message.data, event=message.event, id=message.id, comment=message.comment)
