"""What support staff do to tickets besides answering: assign, set the status, prepared (canned) replies.
Every change is written to the staff audit log."""

from __future__ import annotations

import uuid
from typing import Any

from shared.infra.db import Database
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import parse_uuid, uuid7
from shared.staff import STAFF_ROLES, Actor, audit
from shared.support import STATUSES
from shared.support.queries import Viewer, load_ticket, ticket_detail
from shared.support.views import CannedReply, SupportTicketThread

MAX_TITLE = 100
MAX_CANNED_BODY = 20_000


async def assign(
    db: Database, ticket_id: str, viewer: Viewer, assignee: str | None, *, actor: Actor
) -> SupportTicketThread:
    """Give the ticket to a staff member (an account id, or ``me``), or to nobody (None)."""
    target: uuid.UUID | None = None
    if assignee == "me":
        target = viewer.account_id
    elif assignee:
        target = parse_uuid(assignee)
        role = (
            await db.fetchval("SELECT role FROM accounts WHERE id = $1 AND status = 'active'", target)
            if target
            else None
        )
        if role not in STAFF_ROLES:
            raise InvalidInput("the assignee must be an active support or admin account", param="assignee")
    async with db.transaction() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer, for_update=True)
        await conn.execute(
            "UPDATE support_tickets SET assignee_id = $2, updated_at = now() WHERE id = $1", ticket.id, target
        )
        await audit.record(conn, actor, "ticket.assign", "ticket", ticket.id,
                           before={"assignee_id": str(ticket.assignee_id) if ticket.assignee_id else None},
                           after={"assignee_id": str(target) if target else None})  # fmt: skip
    return await ticket_detail(db, ticket.id, viewer)


async def set_status(db: Database, ticket_id: str, viewer: Viewer, status: str, *, actor: Actor) -> SupportTicketThread:
    """Staff set any status: ``open`` (waiting for staff), ``pending`` (waiting for the user) or ``closed``."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of: {', '.join(STATUSES)}", param="status")
    async with db.transaction() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer, for_update=True)
        if ticket.status == status:
            raise Conflict(f"this ticket is {status} already", code="ticket_status_unchanged")
        await conn.execute(
            """
            UPDATE support_tickets SET status = $2::text, closed_at = CASE WHEN $2::text = 'closed' THEN now() END,
                                       updated_at = now()
            WHERE id = $1
            """,
            ticket.id,
            status,
        )
        await audit.record(conn, actor, "ticket.status", "ticket", ticket.id, before={"status": ticket.status},
                           after={"status": status})  # fmt: skip
    return await ticket_detail(db, ticket.id, viewer)


def _canned(row: Any) -> CannedReply:
    return CannedReply(id=str(row["id"]), object="canned_reply", title=row["title"], body=row["body"],
                       created_at=row["created_at"])  # fmt: skip


async def canned_replies(db: Database) -> list[CannedReply]:
    rows = await db.fetch("SELECT id, title, body, created_at FROM support_canned_replies ORDER BY title")
    return [_canned(row) for row in rows]


async def add_canned_reply(db: Database, *, title: str, body: str, actor: Actor) -> CannedReply:
    title, body = (title or "").strip(), (body or "").strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be 1 to {MAX_TITLE} characters", param="title")
    if not body or len(body) > MAX_CANNED_BODY:
        raise InvalidInput(f"body must be 1 to {MAX_CANNED_BODY} characters", param="body")
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            """
            INSERT INTO support_canned_replies (id, title, body, created_by) VALUES ($1, $2, $3, $4)
            ON CONFLICT (title) DO NOTHING RETURNING id, title, body, created_at
            """,
            uuid7(), title, body, actor.account_id,
        )  # fmt: skip
        if row is None:
            raise Conflict(f"a canned reply is already called {title!r}", code="canned_reply_exists")
        await audit.record(conn, actor, "canned_reply.create", "canned_reply", row["id"], after={"title": title})
    return _canned(row)


async def remove_canned_reply(db: Database, reply_id: str, *, actor: Actor) -> None:
    parsed = parse_uuid(reply_id)
    async with db.transaction() as conn:
        title = await conn.fetchval(
            "DELETE FROM support_canned_replies WHERE id = $1 RETURNING title", parsed
        ) if parsed else None  # fmt: skip
        if title is None:
            raise NotFound(f"no canned reply {reply_id}", code="canned_reply_not_found")
        await audit.record(conn, actor, "canned_reply.delete", "canned_reply", parsed, before={"title": title})
