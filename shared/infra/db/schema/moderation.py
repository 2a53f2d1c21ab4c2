"""Moderation: each block or flag of a request or an output (``shared.moderation.events``)."""

from __future__ import annotations

from piccolo.columns import UUID, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account, ApiKey


class ModerationEvent(Table, tablename="moderation_events"):
    """A block or a flag. ``excerpt`` (redacted) is the evidence staff review; it is purged
    ``MODERATION_EVIDENCE_RETENTION_S`` after the event (``excerpt_purged_at``). A cleared event (a false
    positive, per staff) no longer counts as a strike; only blocked requests (``stage`` ``input``) are strikes."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    api_key_id = ForeignKey(ApiKey, null=True, on_delete=OnDelete.set_null, default=None)
    source = Varchar(length=32)  # the usage source: task, chat.completion, embedding, image.generation, ...
    stage = Varchar(length=8, default="input")  # input (the request) or output (what the model generated)
    category = Varchar(length=64)
    action = Varchar(length=16)  # blocked, flagged
    checker = Varchar(length=16)  # rules, model, or model_error (fail-closed while the model was unreachable)
    model = Varchar(length=128)  # the requested model
    task_id = UUID(null=True, default=None)
    request_id = UUID(null=True, default=None)  # a synchronous request's usage record (``usage_records.request_id``)
    policy_version = Integer(default=1)
    excerpt = Text(null=True, default=None)
    excerpt_purged_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    cleared_at = Timestamptz(null=True, default=None)
    cleared_by = UUID(null=True, default=None)  # the staff member's account (a plain column, like the audit log)
    cleared_reason = Text(null=True, default=None)

    moderation_events_action_check = Check("action IN ('blocked', 'flagged')")
    moderation_events_stage_check = Check("stage IN ('input', 'output')")
