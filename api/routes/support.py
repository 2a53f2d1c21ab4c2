"""/v1/support/tickets: an account's support tickets (with an API key or a session), and /v1/staff/tickets: every
ticket, for support staff (role ``support`` or ``admin``).

Creating a ticket and writing a message take JSON (``{"subject", "category", "body"}`` / ``{"body"}``) or
``multipart/form-data`` with the same fields plus files (any number of file parts, e.g. ``files``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import File

from api.contract import raises, reads
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.infra.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType
from shared.infra.pagination import PageEnvelope, page_envelope
from shared.services import Services
from shared.support import queries, tickets
from shared.support.attachments import Upload
from shared.support.queries import Viewer
from shared.support.views import SupportTicket, SupportTicketThread

Limit = Annotated[int, QueryParameter(ge=1, le=100)]

TICKET_NOT_FOUND = (NotFound, "ticket_not_found")
# What a message with attachments (JSON or multipart) can be refused for
MESSAGE_REFUSALS = (
    (InvalidInput, "invalid_input", "invalid_request", "attachment_type_not_allowed", "empty_attachment",
     "too_many_attachments", "image_too_large"),
    (PayloadTooLarge, "attachment_too_large"),
    UnsupportedMediaType,
)  # fmt: skip


class TicketBody(msgspec.Struct, forbid_unknown_fields=True):
    subject: str
    category: str
    body: str


class MessageBody(msgspec.Struct, forbid_unknown_fields=True):
    body: str


async def read_message(
    request: Request[Any, Any, Any], shape: type[msgspec.Struct]
) -> tuple[dict[str, Any], list[Upload]]:
    """The fields and files of a JSON or multipart request (already checked by ``api.request_input``)."""
    if request.content_type[0] == "multipart/form-data":
        form = await request.form()
        fields: dict[str, Any] = {}
        uploads: list[Upload] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append(Upload(value.filename or "", await value.read()))
                await value.close()
            elif name in shape.__struct_fields__:
                fields[name] = value
            else:
                raise InvalidInput(f"unknown field {name!r}", param=name)
        return fields, uploads
    try:
        body = await request.json()
    except UnsupportedMediaType:
        raise UnsupportedMediaType("send JSON, or multipart/form-data to attach files") from None
    try:
        parsed = msgspec.convert(body, type=shape)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the request body is not valid: {exc}", code="invalid_request") from None
    return msgspec.structs.asdict(parsed), []


def download(found: queries.AttachmentFile) -> File:
    """An attachment, always as a download (images are previewed by the console's ``<img>``, which ignores
    the disposition), never sniffed, and sandboxed should a browser render it anyway."""
    return File(
        path=found.path,
        filename=found.filename,
        media_type=found.content_type,
        content_disposition_type="attachment",
        headers={
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def post_message(
    request: Request[Any, Any, Any],
    services: Services,
    ticket_id: str,
    viewer: Viewer,
    *,
    shape: type[msgspec.Struct] = MessageBody,
    on_stored: Any = None,
) -> SupportTicketThread:
    """Write a message from a JSON or multipart request; ``internal`` (staff) makes it a note."""
    fields, uploads = await read_message(request, shape)
    internal = str(fields.get("internal", "")).lower() in ("true", "1", "on")
    return await tickets.post_message(
        services.db,
        services.storage,
        services.settings.support,
        ticket_id,
        viewer,
        body=fields.get("body"),
        uploads=uploads,
        mailer=services.mailer,
        internal=internal,
        on_stored=on_stored,
    )


class SupportTicketController(Controller):
    opt = requires("support.read")
    path = "/v1/support/tickets"
    tags = ["support"]
    dependencies = {"principal": Provide(provide_principal)}

    @post("/", operation_id="createTicket", status_code=201, opt=requires("support.write"))
    @raises(*MESSAGE_REFUSALS, (Conflict, "too_many_open_tickets"))
    @reads(TicketBody, files=True)
    async def create(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, services: ServicesDep
    ) -> SupportTicketThread:
        """Open a ticket (``subject``, ``category``: account, billing, technical or product, ``body``; files with
        multipart). API keys found in the text are removed before storing; ``warnings`` says which."""
        fields, uploads = await read_message(request, TicketBody)
        return await tickets.create_ticket(
            services.db,
            services.storage,
            services.settings.support,
            principal.account_id,
            subject=fields.get("subject"),
            category=fields.get("category"),
            body=fields.get("body"),
            uploads=uploads,
        )

    @get("/", operation_id="listTickets")
    async def list_tickets(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        status: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        limit: Limit = 20,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[SupportTicket]:
        viewer = Viewer(principal.account_id)
        return page_envelope(
            await queries.list_tickets(services.db, viewer, status=status, category=category, limit=limit, after=after)
        )

    @get("/{ticket_id:str}", operation_id="getTicket")
    @raises(TICKET_NOT_FOUND)
    async def get_ticket(
        self, principal: PrincipalDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> SupportTicketThread:
        return await queries.ticket_detail(services.db, ticket_id, Viewer(principal.account_id))

    @post(
        "/{ticket_id:str}/messages", operation_id="createTicketMessage", status_code=201, opt=requires("support.write")
    )
    @raises(TICKET_NOT_FOUND, *MESSAGE_REFUSALS, (Conflict, "ticket_closed"))
    @reads(MessageBody, files=True)
    async def post_message(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> SupportTicketThread:
        """Write to the thread (``body``; files with multipart). The ticket goes back to ``open``."""
        return await post_message(request, services, ticket_id, Viewer(principal.account_id))

    @post("/{ticket_id:str}/close", operation_id="closeTicket", status_code=200, opt=requires("support.write"))
    @raises(TICKET_NOT_FOUND, (Conflict, "ticket_closed"))
    async def close(
        self, principal: PrincipalDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> SupportTicketThread:
        return await tickets.set_status(services.db, ticket_id, Viewer(principal.account_id), close=True)

    @post("/{ticket_id:str}/reopen", operation_id="reopenTicket", status_code=200, opt=requires("support.write"))
    @raises(TICKET_NOT_FOUND, (Conflict, "ticket_not_closed"))
    async def reopen(
        self, principal: PrincipalDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> SupportTicketThread:
        return await tickets.set_status(services.db, ticket_id, Viewer(principal.account_id), close=False)

    @get(
        "/{ticket_id:str}/attachments/{attachment_id:str}",
        operation_id="getTicketAttachment",
        media_type="application/octet-stream",
    )
    @raises((NotFound, "ticket_not_found", "attachment_not_found"))
    async def attachment(
        self, principal: PrincipalDep, services: ServicesDep, ticket_id: FromPath[str], attachment_id: FromPath[str]
    ) -> File:
        viewer = Viewer(principal.account_id)
        return download(await queries.attachment_file(services.db, services.storage, ticket_id, attachment_id, viewer))


def support_router(max_request_bytes: int) -> Router:
    """The ticket routes, with a body limit that fits a message's attachments (above ``MAX_BODY_BYTES``)."""
    from api.routes.staff_support import CannedReplyController, StaffTicketController  # they build on this module

    return Router(
        path="/",
        route_handlers=[SupportTicketController, StaffTicketController, CannedReplyController],
        request_max_body_size=max_request_bytes,
    )
