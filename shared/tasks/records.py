"""The task row as the rest of the code sees it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.infra.db import Record, from_json

COLUMNS = (
    "id, account_id, api_key_id, model, kind, status, input, outputs, metadata, webhook_url, error_code, "
    "error_message, provider, upstream_id, progress, credits_held, credits_charged, attempts, "
    "lease_expires_at, deadline_at, created_at, started_at, completed_at"
)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: uuid.UUID
    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    model: str
    kind: str
    status: str
    input: dict[str, Any]
    outputs: list[dict[str, Any]]
    metadata: dict[str, Any]
    webhook_url: str | None
    error_code: str | None
    error_message: str | None
    provider: str | None
    upstream_id: str | None
    progress: dict[str, Any] | None
    credits_held: int
    credits_charged: int
    attempts: int
    lease_expires_at: dt.datetime | None
    deadline_at: dt.datetime
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: Record) -> TaskRecord:
        return cls(
            id=row["id"],
            account_id=row["account_id"],
            api_key_id=row["api_key_id"],
            model=row["model"],
            kind=row["kind"],
            status=row["status"],
            input=from_json(row["input"]),
            outputs=from_json(row["outputs"]),
            metadata=from_json(row["metadata"]),
            webhook_url=row["webhook_url"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            provider=row["provider"],
            upstream_id=row["upstream_id"],
            progress=from_json(row["progress"]),
            credits_held=row["credits_held"],
            credits_charged=row["credits_charged"],
            attempts=row["attempts"],
            lease_expires_at=row["lease_expires_at"],
            deadline_at=row["deadline_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
        )
