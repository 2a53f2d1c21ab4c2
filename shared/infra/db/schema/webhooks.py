"""Webhooks: endpoints, signing secrets, the event outbox, deliveries and attempts."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account
from shared.infra.db.schema.tasks import Task


class WebhookEndpoint(Table, tablename="webhook_endpoints"):
    """An account-level destination for task events. ``status = 'deleted'`` keeps the row for the log."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade, index=True)
    url = Text()
    description = Varchar(length=200, default="")
    events = Array(base_column=Varchar(length=32))
    status = Varchar(length=16, default="enabled")
    disabled_reason = Varchar(length=16, null=True, default=None)
    disabled_at = Timestamptz(null=True, default=None)
    failing_since = Timestamptz(null=True, default=None)  # first failed attempt since the last success
    secret = Varchar(length=100)
    previous_secret = Varchar(length=100, null=True, default=None)  # still signs until it expires
    previous_secret_expires_at = Timestamptz(null=True, default=None)
    secret_rotated_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())

    webhook_endpoints_status_check = Check("status IN ('enabled', 'disabled', 'deleted')")
    webhook_endpoints_reason_check = Check(
        "disabled_reason IS NULL OR disabled_reason IN ('manual', 'gone', 'failing', 'deleted')"
    )


class WebhookSigningSecret(Table, tablename="webhook_signing_secrets"):
    """The account's secret for deliveries to a task's own ``webhook_url`` (created on first use)."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, unique=True, on_delete=OnDelete.cascade)
    secret = Varchar(length=100)
    previous_secret = Varchar(length=100, null=True, default=None)
    previous_secret_expires_at = Timestamptz(null=True, default=None)
    secret_rotated_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WebhookEvent(Table, tablename="webhook_events"):
    """One event of a task (its id is the ``webhook-id`` header); ``data`` is the task row at that moment. An
    account's own events (alerts: ``task_id`` NULL) carry their payload in ``data`` as sent."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    task_id = ForeignKey(Task, null=True, on_delete=OnDelete.cascade, default=None)
    type = Varchar(length=32)
    data = JSONB()
    created_at = Timestamptz(default=TimestamptzNow())

    webhook_events_task_type_unique = Unique(["task_id", "type"])


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """One event to one destination (an endpoint, or the task's ``webhook_url`` when ``endpoint_id`` is NULL)."""

    id = UUID(primary_key=True)
    event_id = ForeignKey(WebhookEvent, null=False, on_delete=OnDelete.cascade, index=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)
    task_id = UUID(null=True, default=None)  # NULL: an account event
    event_type = Varchar(length=32)
    endpoint_id = ForeignKey(WebhookEndpoint, null=True, on_delete=OnDelete.cascade, default=None)
    url = Text()
    status = Varchar(length=16, default="pending")
    attempts = Integer(default=0)
    max_attempts = Integer(default=8)
    next_attempt_at = Timestamptz(null=True, default=None)
    locked_until = Timestamptz(null=True, default=None)
    last_attempt_at = Timestamptz(null=True, default=None)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    webhook_deliveries_status_check = Check(
        "status IN ('pending', 'delivered', 'failed') AND (status = 'pending') = (next_attempt_at IS NOT NULL)"
    )


class WebhookAttempt(Table, tablename="webhook_attempts"):
    """One HTTP request of a delivery. ``finished_at`` is NULL while it is in flight."""

    id = UUID(primary_key=True)
    delivery_id = ForeignKey(WebhookDelivery, null=False, on_delete=OnDelete.cascade, index=True)
    attempt = Integer()
    url = Text()
    started_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
    status_code = Integer(null=True, default=None)
    latency_ms = Integer(null=True, default=None)
    error = Text(null=True, default=None)
    response_body = Text(null=True, default=None)  # the first KiB, for debugging the receiver
