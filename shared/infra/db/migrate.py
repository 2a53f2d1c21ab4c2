"""Applying Piccolo migrations (``conduit migrate``, the Procfile's ``release``, ``conduit run``, tests).

A PostgreSQL advisory lock makes concurrent runs (two releases, a test session racing a dev server)
wait for each other instead of applying the same migration twice.
"""

from __future__ import annotations

import contextlib
import io

import asyncpg
from piccolo.apps.migrations.commands.forwards import run_forwards

from shared.infra.db import piccolo_engine
from shared.infra.db.piccolo_app import APP_CONFIG

MIGRATION_LOCK = 7_263_414_001


class MigrationError(RuntimeError):
    pass


async def apply_migrations(database_url: str, *, quiet: bool = True) -> None:
    engine = piccolo_engine()
    engine.config = {**engine.config, "dsn": database_url}
    lock_conn = await asyncpg.connect(database_url)
    try:
        await lock_conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        output = io.StringIO()
        with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
            result = await run_forwards(app_name=APP_CONFIG.app_name, migration_id="all")
        if not result.success:
            raise MigrationError(f"migrations failed: {result.message}\n{output.getvalue()}")
    finally:
        with contextlib.suppress(Exception):
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await lock_conn.close()


async def pending_migrations(database_url: str) -> list[str]:
    """Ids of migrations in ``migrations/`` that the database has not applied."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    known = set(BaseMigrationManager().get_migration_modules(str(APP_CONFIG.migrations_folder_path)))
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('migration') IS NOT NULL")
        applied = set()
        if exists:
            rows = await conn.fetch("SELECT name FROM migration WHERE app_name = $1", APP_CONFIG.app_name)
            applied = {row["name"] for row in rows}
    finally:
        await conn.close()
    return sorted(known - applied)
