"""Generation tasks and the idempotency records of their submits."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Boolean,
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

from shared.infra.db.schema.accounts import Account, ApiKey


class Task(Table, tablename="tasks"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    api_key_id = ForeignKey(ApiKey, null=True, on_delete=OnDelete.set_null, default=None)
    model = Varchar(length=128)
    kind = Varchar(length=16)
    status = Varchar(length=16, default="queued")
    input = JSONB(default="{}")
    outputs = JSONB(default="[]")
    metadata = JSONB(default="{}")
    webhook_url = Text(null=True, default=None)
    error_code = Varchar(length=64, null=True, default=None)
    error_message = Text(null=True, default=None)
    provider = Varchar(length=64, null=True, default=None)
    upstream_id = Text(null=True, default=None)
    progress = JSONB(null=True, default=None)
    credits_held = BigInt(default=0)
    credits_charged = BigInt(default=0)
    attempts = Integer(default=0)
    lease_expires_at = Timestamptz(null=True, default=None)
    deadline_at = Timestamptz()
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    # Retention: when the task's input and output files were purged (RETENTION_DAYS after it ended)
    purged_at = Timestamptz(null=True, default=None)
    # Batch work (a batch submit's task): its job always goes to the batch queue (shared.infra.jobs.BATCH_QUEUE)
    batch_work = Boolean(default=False)

    tasks_status_check = Check("status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')")
    tasks_credits_check = Check("credits_charged >= 0 AND credits_charged <= credits_held")


class IdempotencyRecord(Table, tablename="idempotency_records"):
    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict)
    key = Varchar(length=255)
    request_hash = Varchar(length=64)
    task_id = ForeignKey(Task, null=True, on_delete=OnDelete.cascade, default=None)
    created_at = Timestamptz(default=TimestamptzNow())

    idempotency_records_unique = Unique(["account_id", "key"])
