"""Readiness (``/readyz``): can this process serve? The database and Redis answer, and the database has every
migration this code knows of (a web process started before ``conduit migrate`` finished is not ready)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from redis.asyncio import Redis

from shared.infra.db import Database

CHECK_TIMEOUT_S = 2.0


@functools.cache
def known_migrations() -> frozenset[str]:
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    from shared.infra.db.piccolo_app import APP_CONFIG

    return frozenset(BaseMigrationManager().get_migration_modules(str(APP_CONFIG.migrations_folder_path)))


async def _database(db: Database) -> dict[str, Any]:
    from shared.infra.db.piccolo_app import APP_CONFIG

    rows = await db.fetch("SELECT name FROM migration WHERE app_name = $1", APP_CONFIG.app_name)
    pending = sorted(known_migrations() - {row["name"] for row in rows})
    if pending:
        return {"ok": False, "error": "migrations not applied", "pending_migrations": pending}
    return {"ok": True}


async def _redis(redis: Redis) -> dict[str, Any]:
    await redis.ping()
    return {"ok": True}


async def _check(coro: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await asyncio.wait_for(coro, CHECK_TIMEOUT_S)
        return result
    except TimeoutError:
        return {"ok": False, "error": "timed out"}
    except Exception as exc:  # any failure to reach it means "not ready"; the class name is enough to act on
        return {"ok": False, "error": type(exc).__name__}


async def readiness(db: Database, redis: Redis) -> dict[str, Any]:
    database, redis_check = await asyncio.gather(_check(_database(db)), _check(_redis(redis)))
    checks = {"database": database, "redis": redis_check}
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "unavailable", "checks": checks}
