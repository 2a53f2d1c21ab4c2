"""Usage records: one row per model request (tasks now; chat completions later), whatever its outcome."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db import Connection, to_json
from shared.ids import uuid7


async def record_usage(
    conn: Connection,
    *,
    account_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    task_id: uuid.UUID | None,
    model: str,
    provider: str | None,
    kind: str,
    status: str,
    units: dict[str, Any],
    credits: int,
    latency_ms: int | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO usage_records
            (id, account_id, api_key_id, task_id, model, provider, kind, status, units, credits, latency_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
        ON CONFLICT (task_id) DO NOTHING
        """,
        uuid7(), account_id, api_key_id, task_id, model, provider, kind, status, to_json(units), credits, latency_ms,
    )  # fmt: skip
