"""Reading support tickets: who may see what, the list, one ticket with its thread, and an attachment's file.

A ``Viewer`` is either the owner side (sees only its own account's tickets: another account's ticket is "not
found") or staff (sees every ticket). Staff routes build the staff viewer only for role ``support``/``admin``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from shared.infra.db import Connection, Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import InvalidInput, NotFound, PermissionDenied
from shared.infra.ids import parse_uuid
from shared.infra.pagination import Page, choice_filter, page_cursor
from shared.infra.storage import LocalStorage
from shared.support import CATEGORIES, STAFF_ROLES, STATUSES
from shared.support.views import SupportAttachment, SupportMessage, SupportTicket, SupportTicketThread


@dataclass(frozen=True, slots=True)
class Ticket:
    id: uuid.UUID
    account_id: uuid.UUID
    subject: str
    category: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    last_message_at: dt.datetime
    last_message_by: str
    closed_at: dt.datetime | None
    assignee_id: uuid.UUID | None


TICKET_ROWS = RecordMapping(Ticket, "support_tickets t", alias="t")


@dataclass(frozen=True, slots=True)
class Viewer:
    account_id: uuid.UUID
    staff: bool = False

    @classmethod
    def staff_member(cls, account_id: uuid.UUID, role: str) -> Viewer:
        if role not in STAFF_ROLES:
            raise PermissionDenied("only support staff can use these routes", code="staff_only")
        return cls(account_id, staff=True)

    @property
    def base_path(self) -> str:
        return "/v1/staff/tickets" if self.staff else "/v1/support/tickets"


def ticket_not_found(ticket_id: object) -> NotFound:
    return NotFound(f"ticket {ticket_id} not found", code="ticket_not_found")


def parse_ticket_id(ticket_id: str | uuid.UUID) -> uuid.UUID:
    parsed = ticket_id if isinstance(ticket_id, uuid.UUID) else parse_uuid(ticket_id)
    if parsed is None:
        raise ticket_not_found(ticket_id)
    return parsed


async def load_ticket(
    conn: Connection, ticket_id: str | uuid.UUID, viewer: Viewer, *, for_update: bool = False
) -> Ticket:
    parsed = parse_ticket_id(ticket_id)
    row = await conn.fetchrow(
        f"""
        SELECT {TICKET_ROWS.columns} FROM {TICKET_ROWS.source}
        WHERE t.id = $1 AND ($2::boolean OR t.account_id = $3)
        {"FOR UPDATE" if for_update else ""}
        """,
        parsed,
        viewer.staff,
        viewer.account_id,
    )
    if row is None:
        raise ticket_not_found(ticket_id)
    return TICKET_ROWS.from_row(row)


def public_ticket(ticket: Ticket, viewer: Viewer) -> SupportTicket:
    return SupportTicket(**_ticket_fields(ticket, viewer))


def _ticket_fields(ticket: Ticket, viewer: Viewer) -> dict[str, Any]:
    """The fields of ``SupportTicket`` (and of the thread that extends it) the viewer may see."""
    fields: dict[str, Any] = {
        "id": str(ticket.id),
        "object": "support_ticket",
        "account_id": str(ticket.account_id),
        "subject": ticket.subject,
        "category": ticket.category,
        "status": ticket.status,
        "awaiting": None if ticket.status == "closed" else ("staff" if ticket.status == "open" else "user"),
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "last_message_at": ticket.last_message_at,
        "last_message_by": ticket.last_message_by,
        "closed_at": ticket.closed_at,
        "url": f"{viewer.base_path}/{ticket.id}",
    }
    if viewer.staff:
        fields["assignee_id"] = str(ticket.assignee_id) if ticket.assignee_id else None
    return fields


async def ticket_detail(db: Database, ticket_id: str | uuid.UUID, viewer: Viewer) -> SupportTicketThread:
    """The ticket with its whole thread, oldest message first, each with its attachments."""
    async with db.connection() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer)
        messages = await conn.fetch(
            """
            SELECT id, author_id, author_role, body, redacted_keys, internal, created_at FROM support_messages
            WHERE ticket_id = $1 AND (NOT internal OR $2) ORDER BY id
            """,
            ticket.id,
            viewer.staff,
        )
        files = await conn.fetch(
            """
            SELECT f.id, f.message_id, f.filename, f.content_type, f.size_bytes, f.sha256, f.created_at
            FROM support_attachments f JOIN support_messages m ON m.id = f.message_id
            WHERE f.ticket_id = $1 AND (NOT m.internal OR $2) ORDER BY f.id
            """,
            ticket.id,
            viewer.staff,
        )
    by_message: dict[uuid.UUID, list[SupportAttachment]] = {}
    for f in files:
        by_message.setdefault(f["message_id"], []).append(
            SupportAttachment(
                id=str(f["id"]),
                object="support_attachment",
                filename=f["filename"],
                content_type=f["content_type"],
                size_bytes=f["size_bytes"],
                sha256=f["sha256"],
                created_at=f["created_at"],
                url=f"{viewer.base_path}/{ticket.id}/attachments/{f['id']}",
            )
        )
    thread = [
        SupportMessage(
            id=str(m["id"]),
            object="support_message",
            author=m["author_role"],
            body=m["body"],
            redacted_keys=m["redacted_keys"],
            attachments=by_message.get(m["id"], []),
            created_at=m["created_at"],
            author_id=(str(m["author_id"]) if m["author_id"] else None) if viewer.staff else msgspec.UNSET,
            internal=m["internal"] if viewer.staff else msgspec.UNSET,
        )
        for m in messages
    ]
    return SupportTicketThread(**_ticket_fields(ticket, viewer), messages=thread)


async def list_tickets(
    db: Database,
    viewer: Viewer,
    *,
    status: str | None = None,
    category: str | None = None,
    account: str | None = None,
    assignee: str | None = None,
    older_than_hours: int | None = None,
    limit: int = 20,
    after: str | None = None,
) -> Page[SupportTicket]:
    """Newest first. Staff see every account's tickets (``account`` narrows to one; ``assignee``: ``me``,
    ``none`` or a staff account id; ``older_than_hours``: waiting since at least that long); owners see their
    own."""
    cursor = page_cursor(limit, after)
    assigned, unassigned = _assignee_filter(viewer, assignee)
    if older_than_hours is not None and not 0 <= older_than_hours <= 100_000:
        raise InvalidInput("older_than_hours must be between 0 and 100000", param="older_than_hours")
    choice_filter(status, STATUSES, "status")
    choice_filter(category, CATEGORIES, "category")
    owner: uuid.UUID | None = viewer.account_id
    if viewer.staff:
        owner = None
        if account is not None:
            owner = parse_uuid(account)
            if owner is None:
                raise InvalidInput("account must be an account id", param="account")
    rows = await db.fetch(
        f"""
        SELECT {TICKET_ROWS.columns} FROM {TICKET_ROWS.source}
        WHERE ($1::uuid IS NULL OR t.account_id = $1)
          AND ($2::text IS NULL OR t.status = $2)
          AND ($3::text IS NULL OR t.category = $3)
          AND ($4::uuid IS NULL OR t.id < $4)
          AND ($6::uuid IS NULL OR t.assignee_id = $6) AND (NOT $7 OR t.assignee_id IS NULL)
          AND ($8::int IS NULL OR t.last_message_at <= now() - make_interval(hours => $8))
        ORDER BY t.id DESC LIMIT $5
        """,
        owner,
        status,
        category,
        cursor,
        limit + 1,
        assigned,
        unassigned,
        older_than_hours,
    )
    return Page.of(rows, limit, lambda row: public_ticket(TICKET_ROWS.from_row(row), viewer))


def _assignee_filter(viewer: Viewer, assignee: str | None) -> tuple[uuid.UUID | None, bool]:
    """(the assignee to match, whether to match unassigned tickets) for the staff queue's filter."""
    if not assignee or not viewer.staff:
        return None, False
    if assignee == "none":
        return None, True
    if assignee == "me":
        return viewer.account_id, False
    parsed = parse_uuid(assignee)
    if parsed is None:
        raise InvalidInput("assignee must be me, none or a staff account id", param="assignee")
    return parsed, False


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    path: Path
    filename: str
    content_type: str


async def attachment_file(
    db: Database, storage: LocalStorage, ticket_id: str, attachment_id: str, viewer: Viewer
) -> AttachmentFile:
    not_found = NotFound("attachment not found", code="attachment_not_found")
    parsed = parse_uuid(attachment_id)
    if parsed is None:
        raise not_found
    async with db.connection() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer)
        row = await conn.fetchrow(
            """
            SELECT f.filename, f.content_type, f.storage_key
            FROM support_attachments f JOIN support_messages m ON m.id = f.message_id
            WHERE f.id = $1 AND f.ticket_id = $2 AND (NOT m.internal OR $3)
            """,
            parsed,
            ticket.id,
            viewer.staff,
        )
    if row is None:
        raise not_found
    path = storage.path(row["storage_key"])
    if not path.is_file():
        raise not_found
    return AttachmentFile(path=path, filename=row["filename"], content_type=row["content_type"])
