"""Writing support tickets: create, reply (owner or staff), close, reopen, and erasure with the account.

Every text an author writes (subject, message, text attachments, attachment file names) goes through
``redact_keys`` before it is stored; the answer then carries a warning per key found, telling the author to
rotate it. Attachment files are
written to storage before the transaction that records them, and removed again if it fails.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.accounts.keys import hash_secret
from shared.accounts.redaction import redact_keys
from shared.infra.db import Connection, Database
from shared.infra.errors import Conflict, InvalidInput
from shared.infra.ids import uuid7
from shared.infra.mail import Mail, Mailer
from shared.infra.storage import LocalStorage
from shared.support import CATEGORIES
from shared.support.attachments import CheckedFile, Upload, check_uploads
from shared.support.queries import Viewer, load_ticket, ticket_detail
from shared.support.settings import SupportSettings
from shared.support.views import RedactionWarning, SupportTicketThread

log = logging.getLogger(__name__)

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAX_OPEN_TICKETS = 20


@dataclass(slots=True)
class Draft:
    """A message after validation and redaction, ready to store."""

    body: str
    files: list[CheckedFile]
    keys: list[str] = field(default_factory=list)  # the API keys that were cut out


def _text(value: str | None, param: str, maximum: int) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{param} cannot be empty", param=param)
    if len(text) > maximum:
        raise InvalidInput(f"{param} must be at most {maximum} characters", param=param)
    return text


def _draft(body: str | None, uploads: list[Upload], settings: SupportSettings, *, on_ticket: int) -> Draft:
    redacted = redact_keys(_text(body, "body", MAX_BODY))
    draft = Draft(body=redacted.text, files=[], keys=list(redacted.keys))
    for checked in check_uploads(uploads, settings, already_on_ticket=on_ticket):
        name = redact_keys(checked.filename)
        found, content = list(name.keys), checked.data
        if checked.content_type == "text/plain":
            in_file = redact_keys(checked.data.decode("utf-8"))
            found += in_file.keys
            content = in_file.text.encode() if in_file.keys else checked.data
        draft.keys += [k for k in found if k not in draft.keys]
        draft.files.append(CheckedFile(name.text, checked.content_type, content))
    return draft


async def _warnings(db: Database, account_id: uuid.UUID, keys: list[str]) -> list[RedactionWarning]:
    """One warning per redacted key; a key of the author's own account is named so it can be rotated."""
    if not keys:
        return []
    rows = await db.fetch(
        "SELECT id, name, key_hash FROM api_keys WHERE key_hash = ANY($1::text[]) AND account_id = $2",
        [hash_secret(k) for k in keys],
        account_id,
    )
    own = {row["key_hash"]: row for row in rows}
    warnings = []
    for key in keys:
        row = own.get(hash_secret(key))
        where = f"POST /v1/keys/{row['id']}/rotate" if row else "with its owner"
        warnings.append(
            RedactionWarning(
                code="api_key_redacted",
                key_prefix=key[:12],
                key_id=str(row["id"]) if row else None,
                message=f"an API key ({key[:12]}…) was removed from what you sent before it was stored; "
                f"treat it as exposed and rotate it now ({where})",
            )
        )
    return warnings


async def _store_files(
    storage: LocalStorage, ticket_id: uuid.UUID, files: list[CheckedFile]
) -> list[tuple[uuid.UUID, str]]:
    stored: list[tuple[uuid.UUID, str]] = []
    try:
        for checked in files:
            attachment_id = uuid7()
            key = checked.storage_key(ticket_id, attachment_id)
            await storage.put(key, checked.data)
            stored.append((attachment_id, key))
    except BaseException:
        await _remove_files(storage, [key for _, key in stored])
        raise
    return stored


async def _remove_files(storage: LocalStorage, keys: list[str]) -> None:
    for key in keys:
        try:
            storage.path(key).unlink(missing_ok=True)
        except OSError as exc:  # pragma: no cover - left for the operator; never referenced
            log.warning("could not remove attachment file %s: %s", key, exc)


async def _insert_message(
    conn: Connection,
    ticket_id: uuid.UUID,
    author_id: uuid.UUID,
    role: str,
    draft: Draft,
    stored: list[tuple[uuid.UUID, str]],
    *,
    internal: bool = False,
) -> uuid.UUID:
    message_id = uuid7()
    await conn.execute(
        """
        INSERT INTO support_messages (id, ticket_id, author_id, author_role, body, redacted_keys, internal)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        message_id,
        ticket_id,
        author_id,
        role,
        draft.body,
        len(draft.keys),
        internal,
    )
    for checked, (attachment_id, key) in zip(draft.files, stored, strict=True):
        await conn.execute(
            """
            INSERT INTO support_attachments (id, ticket_id, message_id, filename, content_type, size_bytes, sha256,
                                             storage_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            attachment_id, ticket_id, message_id, checked.filename, checked.content_type, len(checked.data),
            checked.sha256, key,
        )  # fmt: skip
    return message_id


async def create_ticket(
    db: Database,
    storage: LocalStorage,
    settings: SupportSettings,
    account_id: uuid.UUID,
    *,
    subject: str | None,
    category: str | None,
    body: str | None,
    uploads: list[Upload],
) -> SupportTicketThread:
    """Open a ticket with its first message. Returns the ticket (with its thread) and ``warnings``."""
    if category not in CATEGORIES:
        raise InvalidInput(f"category must be one of: {', '.join(CATEGORIES)}", param="category")
    title = redact_keys(" ".join(_text(subject, "subject", MAX_SUBJECT).split()))
    draft = await asyncio.to_thread(_draft, body, uploads, settings, on_ticket=0)  # images are decoded
    keys = list(dict.fromkeys([*title.keys, *draft.keys]))
    ticket_id = uuid7()
    stored = await _store_files(storage, ticket_id, draft.files)
    try:
        async with db.transaction() as conn:
            # One account's ticket creations in turn, so that the cap on open tickets holds.
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
            active = await conn.fetchval(
                "SELECT count(*) FROM support_tickets WHERE account_id = $1 AND status <> 'closed'", account_id
            )
            if active >= MAX_OPEN_TICKETS:
                raise Conflict(
                    f"you have {active} open tickets; close some before opening another", code="too_many_open_tickets"
                )
            await conn.execute(
                "INSERT INTO support_tickets (id, account_id, subject, category) VALUES ($1, $2, $3, $4)",
                ticket_id,
                account_id,
                title.text,
                category,
            )
            await _insert_message(conn, ticket_id, account_id, "user", draft, stored)
    except BaseException:
        await _remove_files(storage, [key for _, key in stored])
        raise
    viewer = Viewer(account_id)
    detail = await ticket_detail(db, ticket_id, viewer)
    detail.warnings = await _warnings(db, account_id, keys)
    return detail


async def post_message(
    db: Database,
    storage: LocalStorage,
    settings: SupportSettings,
    ticket_id: str,
    viewer: Viewer,
    *,
    body: str | None,
    uploads: list[Upload],
    mailer: Mailer | None = None,
    internal: bool = False,
    on_stored: Callable[[Connection, uuid.UUID], Awaitable[None]] | None = None,
) -> SupportTicketThread:
    """Add a message to the thread: the owner's puts the ticket back to ``open``, staff's to ``pending`` (and
    mails the owner). A closed ticket must be reopened first. An ``internal`` note (staff only) is never shown
    to the owner and changes nothing else. ``on_stored`` runs in the message's transaction (the audit log)."""
    role = "staff" if viewer.staff else "user"
    if internal and not viewer.staff:
        raise InvalidInput("only staff write internal notes", param="internal")
    async with db.connection() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer)
        on_ticket = await conn.fetchval("SELECT count(*) FROM support_attachments WHERE ticket_id = $1", ticket.id)
    draft = await asyncio.to_thread(_draft, body, uploads, settings, on_ticket=on_ticket)
    stored = await _store_files(storage, ticket.id, draft.files)
    try:
        async with db.transaction() as conn:
            locked = await load_ticket(conn, ticket.id, viewer, for_update=True)
            if locked.status == "closed":
                raise Conflict("this ticket is closed; reopen it to write again", code="ticket_closed")
            count = await conn.fetchval("SELECT count(*) FROM support_attachments WHERE ticket_id = $1", ticket.id)
            if count + len(draft.files) > settings.attachments_per_ticket:
                raise InvalidInput(
                    f"a ticket can have at most {settings.attachments_per_ticket} attachments ({count} already)",
                    code="too_many_attachments",
                    param="files",
                )
            message_id = await _insert_message(
                conn, ticket.id, viewer.account_id, role, draft, stored, internal=internal
            )
            if not internal:
                await conn.execute(
                    """
                    UPDATE support_tickets SET status = $2, last_message_at = now(), last_message_by = $3,
                                               updated_at = now()
                    WHERE id = $1
                    """,
                    ticket.id,
                    "pending" if viewer.staff else "open",
                    role,
                )
            if on_stored is not None:
                await on_stored(conn, message_id)
    except BaseException:
        await _remove_files(storage, [key for _, key in stored])
        raise
    if viewer.staff and mailer is not None and not internal:
        email = await db.fetchval("SELECT email FROM accounts WHERE id = $1", ticket.account_id)
        if email:
            mailer.dispatch(_staff_replied(email, ticket.subject, str(ticket.id)))
    detail = await ticket_detail(db, ticket.id, viewer)
    detail.warnings = await _warnings(db, viewer.account_id, draft.keys)
    return detail


async def set_status(db: Database, ticket_id: str, viewer: Viewer, *, close: bool) -> SupportTicketThread:
    """Close an open or pending ticket, or reopen a closed one (``open`` again)."""
    async with db.transaction() as conn:
        ticket = await load_ticket(conn, ticket_id, viewer, for_update=True)
        if close and ticket.status == "closed":
            raise Conflict("this ticket is already closed", code="ticket_closed")
        if not close and ticket.status != "closed":
            raise Conflict(f"this ticket is {ticket.status}, not closed", code="ticket_not_closed")
        await conn.execute(
            """
            UPDATE support_tickets
            SET status = CASE WHEN $2 THEN 'closed' ELSE 'open' END,
                closed_at = CASE WHEN $2 THEN now() ELSE NULL END, updated_at = now()
            WHERE id = $1
            """,
            ticket.id,
            close,
        )
    return await ticket_detail(db, ticket.id, viewer)


async def erase_tickets(db: Database, storage: LocalStorage, account_id: uuid.UUID) -> int:
    """Account deletion: the account's tickets, their threads and their files are removed."""
    rows = await db.fetch("DELETE FROM support_tickets WHERE account_id = $1 RETURNING id", account_id)
    for row in rows:
        await storage.delete_prefix(f"attachments/{row['id']}")
    return len(rows)


def _staff_replied(email: str, subject: str, ticket_id: str) -> Mail:
    return Mail(
        to=email,
        subject=f"Re: {subject} [Conduit support]",
        text=f"""Hello,

Conduit support answered your ticket "{subject}" ({ticket_id}).

Read the answer and reply with GET /v1/support/tickets/{ticket_id} (in the dashboard, or with your API key).
If your question is answered, you can close the ticket; otherwise just reply.
""",
    )
