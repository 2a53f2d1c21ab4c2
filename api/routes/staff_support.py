"""/v1/staff/tickets: every ticket, for support staff (role ``support`` or ``admin``, a session with its second
factor): read, answer (with attachments), internal notes (``internal``: never shown to the ticket's owner),
assign, set the status; /v1/staff/canned-replies: prepared answers. Every action is written to the staff audit
log."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import File

from api.contract import raises, reads
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from api.routes.admin import checked_staff
from api.routes.support import MESSAGE_REFUSALS, TICKET_NOT_FOUND, download, post_message
from shared.infra.db import Connection
from shared.infra.errors import Conflict, NotFound, PermissionDenied
from shared.infra.pagination import ListEnvelope, PageEnvelope, list_envelope, page_envelope
from shared.staff import Actor, audit
from shared.support import queries, tickets
from shared.support import staff as support_staff
from shared.support.queries import Viewer
from shared.support.views import CannedReply, SupportTicket, SupportTicketThread

Limit = Annotated[int, QueryParameter(ge=1, le=100)]
StaffDep: TypeAlias = NamedDependency[Actor]


@raises((PermissionDenied, "staff_only", "second_factor_required"))
async def provide_staff(request: Request, principal: PrincipalDep, services: ServicesDep) -> Actor:
    return await checked_staff(request, principal, services, admin=False)


STAFF = {"principal": Provide(provide_principal), "staff": Provide(provide_staff)}


def _viewer(staff: Actor) -> Viewer:
    assert staff.account_id is not None
    return Viewer(staff.account_id, staff=True)


class StaffMessageBody(msgspec.Struct, forbid_unknown_fields=True):
    body: str
    internal: bool = False


class AssignBody(msgspec.Struct, forbid_unknown_fields=True):
    assignee: str | None = None  # a staff account id, "me", or null (nobody)


class StatusBody(msgspec.Struct, forbid_unknown_fields=True):
    status: str


class CannedReplyBody(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    body: str


class StaffTicketController(Controller):
    opt = requires("staff")
    """Support staff: every account's tickets."""

    path = "/v1/staff/tickets"
    tags = ["support staff"]
    dependencies = STAFF

    @get("/", operation_id="listStaffTickets")
    async def list_tickets(
        self,
        staff: StaffDep,
        services: ServicesDep,
        status: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
        assignee: FromQuery[str | None] = None,
        older_than_hours: FromQuery[int | None] = None,
        limit: Limit = 20,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[SupportTicket]:
        """Every ticket, newest first; e.g. ``?status=open`` is the queue waiting for an answer; ``assignee``:
        ``me``, ``none`` or a staff account id; ``older_than_hours``: no message for at least that long."""
        page = await queries.list_tickets(
            services.db, _viewer(staff), status=status, category=category, account=account, assignee=assignee,
            older_than_hours=older_than_hours, limit=limit, after=after,
        )  # fmt: skip
        return page_envelope(page)

    @get("/{ticket_id:str}", operation_id="getStaffTicket")
    @raises(TICKET_NOT_FOUND)
    async def get_ticket(self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str]) -> SupportTicketThread:
        return await queries.ticket_detail(services.db, ticket_id, _viewer(staff))

    @post("/{ticket_id:str}/messages", operation_id="replyToTicket", status_code=201)
    @raises(TICKET_NOT_FOUND, *MESSAGE_REFUSALS)
    @reads(StaffMessageBody, files=True)
    async def reply(
        self, request: Request[Any, Any, Any], staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str]
    ) -> SupportTicketThread:
        """Answer (``body``; files with multipart): the ticket becomes ``pending`` and its owner gets a mail.
        With ``internal: true``, a note only staff see (nothing else changes)."""

        async def audited(conn: Connection, message_id: Any) -> None:
            internal = await conn.fetchval("SELECT internal FROM support_messages WHERE id = $1", message_id)
            action = "ticket.note" if internal else "ticket.reply"
            await audit.record(conn, staff, action, "ticket", ticket_id, after={"message_id": str(message_id)})

        return await post_message(
            request, services, ticket_id, _viewer(staff), shape=StaffMessageBody, on_stored=audited
        )

    @post("/{ticket_id:str}/assign", operation_id="assignTicket", status_code=200)
    @raises(TICKET_NOT_FOUND)
    async def assign(
        self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str], data: JSONBody[AssignBody]
    ) -> SupportTicketThread:
        return await support_staff.assign(services.db, ticket_id, _viewer(staff), data.assignee, actor=staff)

    @post("/{ticket_id:str}/status", operation_id="setTicketStatus", status_code=200)
    @raises(TICKET_NOT_FOUND, (Conflict, "ticket_status_unchanged"))
    async def set_status(
        self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str], data: JSONBody[StatusBody]
    ) -> SupportTicketThread:
        """``open``, ``pending`` or ``closed``."""
        return await support_staff.set_status(services.db, ticket_id, _viewer(staff), data.status, actor=staff)

    @post("/{ticket_id:str}/close", operation_id="closeStaffTicket", status_code=200)
    @raises(TICKET_NOT_FOUND, (Conflict, "ticket_closed"))
    async def close(self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str]) -> SupportTicketThread:
        closed = await tickets.set_status(services.db, ticket_id, _viewer(staff), close=True)
        await audit.record(services.db, staff, "ticket.status", "ticket", closed.id, after={"status": "closed"})
        return closed

    @post("/{ticket_id:str}/reopen", operation_id="reopenStaffTicket", status_code=200)
    @raises(TICKET_NOT_FOUND, (Conflict, "ticket_not_closed"))
    async def reopen(self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str]) -> SupportTicketThread:
        opened = await tickets.set_status(services.db, ticket_id, _viewer(staff), close=False)
        await audit.record(services.db, staff, "ticket.status", "ticket", opened.id, after={"status": "open"})
        return opened

    @get(
        "/{ticket_id:str}/attachments/{attachment_id:str}",
        operation_id="getStaffTicketAttachment",
        media_type="application/octet-stream",
    )
    @raises((NotFound, "ticket_not_found", "attachment_not_found"))
    async def attachment(
        self, staff: StaffDep, services: ServicesDep, ticket_id: FromPath[str], attachment_id: FromPath[str]
    ) -> File:
        found = await queries.attachment_file(services.db, services.storage, ticket_id, attachment_id, _viewer(staff))
        return download(found)


class CannedReplyController(Controller):
    opt = requires("staff")
    path = "/v1/staff/canned-replies"
    tags = ["support staff"]
    dependencies = STAFF

    @get("/", operation_id="listCannedReplies")
    async def list_replies(self, staff: StaffDep, services: ServicesDep) -> ListEnvelope[CannedReply]:
        return list_envelope(await support_staff.canned_replies(services.db))

    @post("/", operation_id="createCannedReply", status_code=201)
    @raises((Conflict, "canned_reply_exists"))
    async def add(self, staff: StaffDep, services: ServicesDep, data: JSONBody[CannedReplyBody]) -> CannedReply:
        return await support_staff.add_canned_reply(services.db, title=data.title, body=data.body, actor=staff)

    @delete("/{reply_id:str}", operation_id="deleteCannedReply", status_code=204)
    @raises((NotFound, "canned_reply_not_found"))
    async def remove(self, staff: StaffDep, services: ServicesDep, reply_id: FromPath[str]) -> None:
        await support_staff.remove_canned_reply(services.db, reply_id, actor=staff)
