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
from shared.infra.db import Database
from shared.ledger.money import Credits
from shared.usage import UNIT_FIELDS
from shared.usage.queries import USAGE_ROWS, UsageFilters, UsageRecordRow

log = logging.getLogger(__name__)

BATCH_ROWS = 1000

# The CSV's columns: a record's fields with its units spread out, one column per unit.
HEADER = (
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
    *UNIT_FIELDS,
    "credits",
    "latency_ms",
    "moderation_category",
)


def _csv_row(record: UsageRecordRow) -> list[str]:
    units = record.units or {}

    def text(value: object) -> str:
        return "" if value is None else str(value)

    return [
        str(record.id),
        record.created_at.isoformat().replace("+00:00", "Z"),
        record.source,
        text(record.task_id),
        text(record.request_id),
        text(record.api_key_id),
        text(record.api_key_prefix),
        record.model,
        text(record.provider),
        record.kind,
        record.status,
        *(text(units.get(unit)) for unit in UNIT_FIELDS),
        str(Credits(record.credits)),
        text(record.latency_ms),
        text(record.moderation_category),
    ]


async def export_csv(
    db: Database, background: BackgroundTasks, filters: UsageFilters, *, batch_rows: int = BATCH_ROWS
) -> AsyncIterator[bytes]:
    """The filtered records, oldest first, as CSV (UTF-8, header line first) in chunks of ``batch_rows`` rows.

    The database side runs in a task of ``background``, at most two batches ahead of the client. Closing the
    generator (the client went away) cancels that task, which rolls its transaction back and returns the
    connection."""
    where, args = filters.where()
    query = f"SELECT {USAGE_ROWS.columns} FROM {USAGE_ROWS.source} WHERE {where} ORDER BY u.id"
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
            writer.writerow(HEADER)
            async with db.connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                pending = 0
                async for row in conn.cursor(query, *args, prefetch=batch_rows):
                    writer.writerow(_csv_row(USAGE_ROWS.from_row(row)))
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
