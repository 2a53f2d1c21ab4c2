"""Readiness (``/readyz``): can this process serve? The database and Redis answer, and the database has every
migration this code knows of (a web process started before ``conduit migrate`` finished is not ready)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from shared.infra.db import Database

CHECK_TIMEOUT_S = 2.0


@functools.cache
def known_migrations() -> frozenset[str]:
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    from shared.infra.db.piccolo_app import APP_CONFIG

    return frozenset(BaseMigrationManager().get_migration_modules(str(APP_CONFIG.migrations_folder_path)))


class ReadinessCheck(msgspec.Struct):
    """One dependency: reachable (``ok``), or why not (and, for the database, the migrations not applied)."""

    ok: bool
    error: str | msgspec.UnsetType = msgspec.UNSET
    pending_migrations: list[str] | msgspec.UnsetType = msgspec.UNSET


class Readiness(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    checks: dict[str, ReadinessCheck]


async def _database(db: Database) -> ReadinessCheck:
    from shared.infra.db.piccolo_app import APP_CONFIG

    rows = await db.fetch("SELECT name FROM migration WHERE app_name = $1", APP_CONFIG.app_name)
    pending = sorted(known_migrations() - {row["name"] for row in rows})
    if pending:
        return ReadinessCheck(ok=False, error="migrations not applied", pending_migrations=pending)
    return ReadinessCheck(ok=True)


async def _redis(redis: Redis) -> ReadinessCheck:
    await redis.ping()
    return ReadinessCheck(ok=True)


async def _check(coro: Any) -> ReadinessCheck:
    try:
        result: ReadinessCheck = await asyncio.wait_for(coro, CHECK_TIMEOUT_S)
        return result
    except TimeoutError:
        return ReadinessCheck(ok=False, error="timed out")
    except Exception as exc:  # any failure to reach it means "not ready"; the class name is enough to act on
        return ReadinessCheck(ok=False, error=type(exc).__name__)


async def readiness(db: Database, redis: Redis) -> Readiness:
    database, redis_check = await asyncio.gather(_check(_database(db)), _check(_redis(redis)))
    checks = {"database": database, "redis": redis_check}
    return Readiness(status="ok" if all(c.ok for c in checks.values()) else "unavailable", checks=checks)
