"""CSV export of usage records, streamed: rows come from a server-side cursor in batches and leave as CSV
chunks, so an export of any size needs memory for one batch only.

The export runs in one read-only, repeatable-read transaction (a consistent snapshot) on one pooled connection,
held until the last row is sent, in a background task of the process (drained at shutdown). A client that
disconnects ends it: the generator is closed and the transaction rolled back.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator

from shared.infra.background import BackgroundTasks
from shared.infra.db import Database, Record, from_json
from shared.ledger.money import Credits
from shared.usage.queries import FROM_RECORDS, RECORD_COLUMNS, UsageFilters

log = logging.getLogger(__name__)

BATCH_ROWS = 1000

COLUMNS = (
    "id",
    "created_at",
    "source",
    "task_id",
    "request_id",
    "api_key_id",
    "api_key_prefix",
    "model",
    "provider",
    "kind",
    "status",
    "images",
    "video_seconds",
    "input_tokens",
    "output_tokens",
    "requests",
    "credits",
    "latency_ms",
)


def _csv_row(row: Record) -> list[str]:
    units = from_json(row["units"]) or {}

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return [
        str(row["id"]),
        row["created_at"].isoformat().replace("+00:00", "Z"),
        row["source"],
        text(row["task_id"]),
        text(row["request_id"]),
        text(row["api_key_id"]),
        text(row["api_key_prefix"]),
        row["model"],
        text(row["provider"]),
        row["kind"],
        row["status"],
        text(units.get("images")),
        text(units.get("video_seconds")),
        text(units.get("input_tokens")),
        text(units.get("output_tokens")),
        text(units.get("requests")),
        str(Credits(row["credits"])),
        text(row["latency_ms"]),
    ]


async def export_csv(
    db: Database, background: BackgroundTasks, filters: UsageFilters, *, batch_rows: int = BATCH_ROWS
) -> AsyncIterator[bytes]:
    """The filtered records, oldest first, as CSV (UTF-8, header line first) in chunks of ``batch_rows`` rows.

    The database side runs in a task of ``background``, at most two batches ahead of the client. Closing the
    generator (the client went away) cancels that task, which rolls its transaction back and returns the
    connection."""
    where, args = filters.where()
    query = f"SELECT {RECORD_COLUMNS} FROM {FROM_RECORDS} WHERE {where} ORDER BY u.id"
    chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=2)

    async def produce() -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")

        def take() -> bytes:
            chunk = buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            return chunk

        try:
            writer.writerow(COLUMNS)
            async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                pending = 0
                async for row in conn.cursor(query, *args, prefetch=batch_rows):
                    writer.writerow(_csv_row(row))
                    pending += 1
                    if pending >= batch_rows:
                        pending = 0
                        await chunks.put(take())
            await chunks.put(take())
            await chunks.put(None)
        except Exception as exc:
            log.exception("usage export failed")
            await chunks.put(exc)

    producer = background.spawn(produce(), name="usage export reader")
    try:
        while (chunk := await chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise RuntimeError("usage export failed") from chunk
            if chunk:
                yield chunk
    finally:
        producer.cancel()  # not awaited: it cleans up in its own task, even while this one is being cancelled
