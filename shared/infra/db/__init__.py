"""Database access.

Piccolo owns the schema (tables, migrations) and serves the simple queries. The hot paths (submit, hold
placement, settlement) run hand-written SQL on the same asyncpg pool, inside explicit transactions: one
pool per process, opened by ``Database.connect`` and closed by ``Database.close``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import msgspec
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

if TYPE_CHECKING:
    from shared.settings import Settings

Connection: TypeAlias = asyncpg.Connection
Record: TypeAlias = asyncpg.Record


def _encode_other(value: Any) -> Any:
    """Values msgspec does not know that say how they are written in JSON (e.g. credit amounts)."""
    json_raw = getattr(value, "json_raw", None)
    if json_raw is None:
        raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")
    return json_raw()


_json_encoder = msgspec.json.Encoder(enc_hook=_encode_other)
_json_decoder = msgspec.json.Decoder()


def to_json(value: Any) -> str:
    """Encode a value for a ``$n::jsonb`` parameter."""
    return _json_encoder.encode(value).decode()


def from_json(value: str | bytes | None) -> Any:
    return None if value is None else _json_decoder.decode(value)


def piccolo_engine() -> PostgresEngine:
    engine = engine_finder()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("Conduit needs the PostgreSQL engine configured in piccolo_conf.py")
    return engine


async def _keep_session(_: Connection) -> None:
    return None


class Database:
    """A connection pool for raw SQL, also lent to Piccolo so that ORM queries share it.

    Normally one per process; the tests run an API and workers in one process, each with its own."""

    _live: list[Database] = []

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, settings: Settings, *, min_size: int | None = None, max_size: int | None = None) -> Database:
        database_url, _ = settings.require_connections()
        pool = await asyncpg.create_pool(
            dsn=database_url,
            min_size=min_size if min_size is not None else settings.db_pool_min,
            max_size=max_size if max_size is not None else settings.db_pool_max,
            max_inactive_connection_lifetime=300,
            # asyncpg's default reset runs "RESET ALL; UNLISTEN *; ..." on every release: one more round
            # trip per query. We keep no session state, and open transactions are still rolled back.
            reset=_keep_session,
            # Behind PgBouncer in transaction mode the next statement may reach another server connection, where
            # a cached prepared statement does not exist: asyncpg then uses unnamed statements, re-parsed each time.
            statement_cache_size=0 if settings.deployment.transaction_pooling else 100,
        )
        db = cls(pool)
        engine = piccolo_engine()
        engine.config = {**engine.config, "dsn": database_url}
        if engine.pool is None:
            engine.pool = pool
        cls._live.append(db)
        return db

    async def close(self) -> None:
        self._live.remove(self)
        engine = piccolo_engine()
        if engine.pool is self.pool:
            engine.pool = self._live[0].pool if self._live else None
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction: committed when the block exits, rolled back on error."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def fetchrow(self, query: str, *args: Any) -> Record | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.pool.acquire() as conn:
            return await conn.execute(query, *args)
