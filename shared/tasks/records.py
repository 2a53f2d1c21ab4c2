"""The task row as the rest of the code sees it: ``TASK_ROWS.columns`` selects it, ``TASK_ROWS.from_row`` reads
it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from shared.infra.db.records import JSONB, RecordMapping


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: uuid.UUID
    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    model: str
    kind: str
    status: str
    input: Annotated[dict[str, Any], JSONB]
    outputs: Annotated[list[dict[str, Any]], JSONB]
    metadata: Annotated[dict[str, Any], JSONB]
    webhook_url: str | None
    error_code: str | None
    error_message: str | None
    provider: str | None
    upstream_id: str | None
    progress: Annotated[dict[str, Any] | None, JSONB]
    credits_held: int
    credits_charged: int
    attempts: int
    lease_expires_at: dt.datetime | None
    deadline_at: dt.datetime
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    batch_work: bool  # a batch submit's task: its job goes to the batch queue


TASK_ROWS = RecordMapping(TaskRecord, "tasks")
