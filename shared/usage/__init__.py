"""Usage records: one row per model request, whatever its outcome (succeeded, failed, canceled).

Every model request is recorded in the transaction that ends it, next to the ledger movement it causes:

* tasks: ``shared.tasks.lifecycle`` calls ``record_usage`` at each terminal transition (``source='task'``,
  keyed by the task id);
* synchronous requests (OpenAI-compatible chat completions, image generations) call ``record_request_usage``
  in the transaction that posts or voids their hold (``source='chat.completion'`` / ``'image.generation'``,
  keyed by the request id, so a replayed settlement records nothing twice).

``credits`` is what the request was charged (0 when it failed or was canceled), so the sum of the records of an
account equals the sum of its ledger ``charge`` entries. Reading: ``shared.usage.queries`` (list, summary) and
``shared.usage.export`` (CSV, streamed).
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.infra.db import Connection, to_json
from shared.infra.ids import uuid7

SOURCES = ("task", "chat.completion", "image.generation", "embedding", "text_completion")
STATUSES = ("succeeded", "failed", "canceled")
# The units a record may carry (``shared.catalog.pricing.Usage.public``); the summary and the CSV sum these.
UNIT_FIELDS = ("images", "video_seconds", "input_tokens", "output_tokens", "requests")


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
    source: str = "task",
    request_id: uuid.UUID | None = None,
) -> None:
    """Write the record of one finished request (idempotent per task id / request id)."""
    if source not in SOURCES:
        raise ValueError(f"unknown usage source {source!r}")
    if status not in STATUSES:
        raise ValueError(f"usage status must be one of {STATUSES}, got {status!r}")
    await conn.execute(
        """
        INSERT INTO usage_records
            (id, account_id, api_key_id, task_id, model, provider, kind, status, units, credits, latency_ms,
             source, request_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)
        ON CONFLICT DO NOTHING
        """,
        uuid7(), account_id, api_key_id, task_id, model, provider, kind, status, to_json(units), credits, latency_ms,
        source, request_id,
    )  # fmt: skip


async def record_request_usage(
    conn: Connection,
    *,
    request_id: uuid.UUID,
    source: str,
    account_id: uuid.UUID,
    api_key_id: uuid.UUID | None,
    model: str,
    provider: str | None,
    kind: str,
    status: str,
    units: dict[str, Any],
    credits: int,
    latency_ms: int | None,
) -> None:
    """The record of a synchronous model request (chat completion, image generation): call it in the
    transaction that settles the request's hold, with the credits actually charged (0 unless succeeded)."""
    if source == "task":
        raise ValueError("tasks are recorded by shared.tasks.lifecycle (record_usage with task_id)")
    await record_usage(
        conn,
        account_id=account_id,
        api_key_id=api_key_id,
        task_id=None,
        model=model,
        provider=provider,
        kind=kind,
        status=status,
        units=units,
        credits=credits,
        latency_ms=latency_ms,
        source=source,
        request_id=request_id,
    )
