"""The OpenAI Batch API: uploaded and produced files, batches, and each batch's lines."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    ForeignKey,
    Integer,
    OnDelete,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account, ApiKey


class OpenAIFile(Table, tablename="openai_files"):
    """A file of the OpenAI Files API (``file-<id hex>``): a batch's input (``batch``), or its output or errors
    (``batch_output``). The bytes live in storage under ``storage_key``."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict, index=True)
    purpose = Varchar(length=16)
    filename = Varchar(length=255)
    bytes = BigInt()
    storage_key = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())
    # When it was deleted (by its owner; by the retention sweep, BATCH_FILE_RETENTION_S after it was made; with its
    # account): its bytes are gone and it is "not found"; the row stays for the batches that name it
    deleted_at = Timestamptz(null=True, default=None)

    openai_files_purpose_check = Check("purpose IN ('batch', 'batch_output')")


class OpenAIBatch(Table, tablename="openai_batches"):
    """A batch (``batch_<id hex>``): its lines run as batch work at the models' batch discount."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.restrict, index=True)
    api_key_id = ForeignKey(ApiKey, null=True, on_delete=OnDelete.set_null, default=None)
    endpoint = Varchar(length=64)
    input_file_id = ForeignKey(OpenAIFile, null=False, on_delete=OnDelete.restrict)
    output_file_id = ForeignKey(OpenAIFile, null=True, on_delete=OnDelete.set_null, default=None)
    error_file_id = ForeignKey(OpenAIFile, null=True, on_delete=OnDelete.set_null, default=None)
    completion_window = Varchar(length=8, default="24h")
    status = Varchar(length=16, default="validating")
    metadata = JSONB(null=True, default=None)
    errors = JSONB(null=True, default=None)  # a batch that failed validation: OpenAI's {object, data: [...]}
    total = Integer(default=0)
    completed = Integer(default=0)
    failed = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    in_progress_at = Timestamptz(null=True, default=None)
    finalizing_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    failed_at = Timestamptz(null=True, default=None)
    cancelling_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz()  # the end of its completion window: lines not started by then never run
    expired_at = Timestamptz(null=True, default=None)

    openai_batches_status_check = Check(
        "status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', "
        "'cancelled')"
    )


class OpenAIBatchLine(Table, tablename="openai_batch_lines"):
    """One request of a batch: ``pending``, ``running``, then ``succeeded`` / ``failed`` (with its line of the
    output or error file in ``output``); or ``canceled`` with its batch before it started."""

    id = UUID(primary_key=True)
    batch_id = ForeignKey(OpenAIBatch, null=False, on_delete=OnDelete.cascade)
    line = Integer()
    custom_id = Varchar(length=512)
    body = JSONB()
    status = Varchar(length=16, default="pending")
    output = JSONB(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)

    openai_batch_lines_unique = Unique(["batch_id", "line"])
    openai_batch_lines_status_check = Check("status IN ('pending', 'running', 'succeeded', 'failed', 'canceled')")
