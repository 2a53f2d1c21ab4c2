"""Usage records: one row per model request, whatever its outcome (succeeded, failed, canceled).

Every model request is recorded in the statement that settles its credit hold (``shared.ledger.settlement``),
next to the ledger movement it causes: a task at its terminal transition (``source='task'``, keyed by the task
id), a synchronous request (OpenAI-compatible chat completion) when it is settled (``source='chat.completion'``,
keyed by the request id, so a replayed settlement records nothing twice). A request refused before anything
was held (e.g. insufficient credits) is recorded by ``record_request_usage``, with no credits. All of them
write through ``insert_usage_sql``.

``credits`` is what the request was charged (0 when it failed or was canceled), so the sum of the records of an
account equals the sum of its ledger ``charge`` entries. Reading: ``shared.usage.queries`` (list, summary) and
``shared.usage.export`` (CSV, streamed).
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.infra.db import Connection, to_json
from shared.infra.ids import uuid7

SOURCES = ("task", "chat.completion", "image.generation", "embedding", "text_completion", "moderation")
STATUSES = ("succeeded", "failed", "canceled", "blocked")  # blocked: refused by the moderation policy
# The units a record may carry (``shared.catalog.pricing.Usage.public``); the summary and the CSV sum these.
UNIT_FIELDS = ("images", "video_seconds", "input_tokens", "output_tokens", "requests", "megapixels")


# The columns a usage record is written with, in the order of ``insert_usage_sql``'s rows.
USAGE_COLUMNS = (
    "id", "account_id", "api_key_id", "task_id", "model", "provider", "kind", "status", "units", "credits",
    "latency_ms", "source", "request_id",
)  # fmt: skip


def insert_usage_sql(rows: str, *, returning: str | None = None) -> str:
    """The INSERT of usage records: ``rows`` is a SELECT (or VALUES) of ``USAGE_COLUMNS``, in order. A record for
    a task or request that was recorded before is skipped (a replay records nothing twice)."""
    sql = f"INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)})\n{rows}\nON CONFLICT DO NOTHING"
    return f"{sql}\nRETURNING {returning}" if returning else sql


def _values(count: int) -> str:
    return "VALUES (" + ", ".join(f"${n}" for n in range(1, count + 1)) + ")"


_INSERT_ONE = insert_usage_sql(_values(len(USAGE_COLUMNS)))
# a blocked request: the same record with its moderation category
_INSERT_BLOCKED = (
    f"INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)}, moderation_category)\n"
    f"{_values(len(USAGE_COLUMNS) + 1)}\nON CONFLICT DO NOTHING"
)


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
    moderation_category: str | None = None,
) -> None:
    """Write the record of a synchronous model request (idempotent per request id), e.g. one refused before
    anything was held. A request that held credits is recorded by the statement that settles its hold. A request
    blocked by the moderation policy (a task submit too: no task exists) is ``blocked`` with its category."""
    if (status == "blocked") != (moderation_category is not None):
        raise ValueError("a blocked request, and only one, names its moderation category")
    if source == "task" and status != "blocked":
        raise ValueError("tasks are recorded by the statement that settles their hold (shared.ledger.settlement)")
    if source not in SOURCES:
        raise ValueError(f"unknown usage source {source!r}")
    if status not in STATUSES:
        raise ValueError(f"usage status must be one of {STATUSES}, got {status!r}")
    values = (uuid7(), account_id, api_key_id, None, model, provider, kind, status, to_json(units), credits,
              latency_ms, source, request_id)  # fmt: skip
    if moderation_category is None:
        await conn.execute(_INSERT_ONE, *values)
    else:
        await conn.execute(_INSERT_BLOCKED, *values, moderation_category)
