"""Support tickets: tickets, messages, attachments."""

from __future__ import annotations

from piccolo.columns import (
    UUID,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account


class SupportTicket(Table, tablename="support_tickets"):
    """A conversation between an account and support staff. ``open``: waiting for staff; ``pending``: staff
    answered, waiting for the user; ``closed``."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    subject = Varchar(length=200)
    category = Varchar(length=16)
    status = Varchar(length=16, default="open")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    last_message_at = Timestamptz(default=TimestamptzNow())
    last_message_by = Varchar(length=16, default="user")
    closed_at = Timestamptz(null=True, default=None)
    assignee_id = ForeignKey(Account, null=True, on_delete=OnDelete.set_null, default=None)  # a staff member

    support_tickets_category_check = Check("category IN ('account', 'billing', 'technical', 'product')")
    support_tickets_status_check = Check(
        "status IN ('open', 'pending', 'closed') AND (status = 'closed') = (closed_at IS NOT NULL)"
    )
    support_tickets_last_by_check = Check("last_message_by IN ('user', 'staff')")


class SupportMessage(Table, tablename="support_messages"):
    """One message of a ticket's thread, by its owner (``user``) or by support staff (``staff``)."""

    id = UUID(primary_key=True)
    ticket_id = ForeignKey(SupportTicket, null=False, on_delete=OnDelete.cascade, index=True)
    author_id = ForeignKey(Account, null=True, on_delete=OnDelete.set_null, default=None)
    author_role = Varchar(length=16)
    body = Text()
    redacted_keys = Integer(default=0)  # API keys removed from the body and text attachments before storing
    internal = Boolean(default=False)  # a staff note: never shown to the ticket's owner
    created_at = Timestamptz(default=TimestamptzNow())

    support_messages_role_check = Check("author_role IN ('user', 'staff')")


class SupportAttachment(Table, tablename="support_attachments"):
    """A file attached to a message; the bytes live in storage under ``storage_key``."""

    id = UUID(primary_key=True)
    ticket_id = ForeignKey(SupportTicket, null=False, on_delete=OnDelete.cascade, index=True)
    message_id = ForeignKey(SupportMessage, null=False, on_delete=OnDelete.cascade, index=True)
    filename = Varchar(length=255)
    content_type = Varchar(length=64)  # detected from the content, never taken from the client
    size_bytes = Integer()
    sha256 = Varchar(length=64)
    storage_key = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())
