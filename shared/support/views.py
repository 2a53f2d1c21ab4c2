"""The public shapes of support: a ticket (in a list), its thread (one ticket), a message and an attachment.

Staff see more than owners: who is assigned (``assignee_id``), who wrote each message and the internal notes;
those fields are absent from what an owner gets."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec


class SupportTicket(msgspec.Struct):
    """A ticket; ``awaiting``: who is expected to write next (null once closed)."""

    id: str
    object: Literal["support_ticket"]
    account_id: str
    subject: str
    category: str
    status: str
    awaiting: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_message_at: dt.datetime
    last_message_by: str
    closed_at: dt.datetime | None
    url: str
    assignee_id: str | msgspec.UnsetType | None = msgspec.UNSET  # staff only


class SupportAttachment(msgspec.Struct):
    id: str
    object: Literal["support_attachment"]
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: dt.datetime
    url: str


class SupportMessage(msgspec.Struct):
    """A message of the thread; ``author`` is ``user`` or ``staff`` (staff are not named to users)."""

    id: str
    object: Literal["support_message"]
    author: str
    body: str
    redacted_keys: int
    attachments: list[SupportAttachment]
    created_at: dt.datetime
    author_id: str | msgspec.UnsetType | None = msgspec.UNSET  # staff only
    internal: bool | msgspec.UnsetType = msgspec.UNSET  # staff only


class RedactionWarning(msgspec.Struct):
    """An API key removed from what was sent before it was stored (``key_id``: when it is one of the author's)."""

    code: Literal["api_key_redacted"]
    key_prefix: str
    key_id: str | None
    message: str


class SupportTicketThread(SupportTicket, kw_only=True):
    """A ticket with its whole thread, oldest message first; ``warnings`` in the answer of what was just written."""

    messages: list[SupportMessage]
    warnings: list[RedactionWarning] | msgspec.UnsetType = msgspec.UNSET


class CannedReply(msgspec.Struct):
    id: str
    object: Literal["canned_reply"]
    title: str
    body: str
    created_at: dt.datetime
