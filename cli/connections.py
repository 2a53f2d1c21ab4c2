"""Where a ``conduit`` command finds PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or the embedded servers
under CONDUIT_DATA_DIR (started when needed); and the runners the operator commands share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from cli.embedded import EmbeddedServices
from shared.ledger.money import Credits
from shared.settings import Settings


class Connections:
    """Resolves DATABASE_URL / REDIS_URL, starting embedded servers when they are unset."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedServices | None = None
        self.started: list[str] = []

    def __enter__(self) -> Settings:
        s = self.settings
        if s.database_url and s.redis_url:
            return s
        self.embedded = EmbeddedServices(s.data_dir)
        self.started = self.embedded.start(need_postgres=not s.database_url, need_redis=not s.redis_url)
        urls = self.embedded.urls
        return s.with_connections(s.database_url or urls.database_url, s.redis_url or urls.redis_url)

    def __exit__(self, *exc: object) -> None:
        if self.embedded is not None and self.started:
            self.embedded.stop(self.started)

    def keep_running(self) -> None:
        """Leave servers this command started running (used by commands that hand them to children)."""
        self.started = []


def run_with_connections(coro_fn: Callable[[Settings], Coroutine[Any, Any, int]], settings: Settings) -> int:
    with Connections(settings) as resolved:
        return asyncio.run(coro_fn(resolved))


def run_with_services(settings: Settings, action: Callable[[Any], Coroutine[Any, Any, Any]]) -> int:
    """Run ``action(services)`` against the database and Redis (applying migrations first); print its JSON."""
    from shared.infra.db.migrate import apply_migrations
    from shared.infra.metrics.store import flush
    from shared.services import Services

    async def go(resolved: Settings) -> int:
        await apply_migrations(resolved.direct_database_url)
        services = await Services.start(resolved, db_pool_max=2)
        try:
            result = await action(services)
        finally:
            await flush(services.redis)  # metrics: e.g. credits an operator granted
            await services.close()
        print(as_json(result))
        return 0

    return run_with_connections(go, settings)


def _encode_other(value: Any) -> Any:
    return msgspec.Raw(str(value).encode()) if isinstance(value, Credits) else str(value)


def as_json(result: Any) -> str:
    """What a command prints: indented JSON in which credit amounts are numbers, as the API shows them."""
    return msgspec.json.format(msgspec.json.encode(result, enc_hook=_encode_other), indent=2).decode()
