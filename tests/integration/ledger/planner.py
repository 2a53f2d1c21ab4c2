"""For tests that check a statement reaches its rows through indexes, not by reading whole tables."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from shared.settings import Settings


@contextlib.asynccontextmanager
async def indexes_only(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, in a transaction rolled back when the block ends (it leaves nothing behind), with
    sequential scans made prohibitively expensive: the test tables are small, so the planner would scan them anyway.
    Its own session, because a plan that a pooled connection cached earlier (with sequential scans allowed) would be
    reused as it is, whatever the setting."""
    database_url, _ = settings.require_connections()
    conn = await asyncpg.connect(database_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SET LOCAL enable_seqscan = off")
        try:
            yield conn
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
