"""An API server for the per-client-IP limits: a low budget of invalid API keys, and one trusted proxy.

Tests reach it from distinct loopback addresses (``client_from``), so each test has client IPs of its own:
the proxy at 127.0.0.5 is trusted (``FORWARDED_ALLOW_IPS``), every other address is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.infra.db import Database
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, TestServers, free_port, test_env

INVALID_KEYS_PER_MIN = 5
TRUSTED_PROXY = "127.0.0.5"


@pytest.fixture(scope="session")
async def guarded_api(services: Services, servers: TestServers, storage_dir: Path) -> AsyncIterator[ApiServer]:
    env = test_env(
        servers,
        port=free_port(),
        storage_dir=storage_dir,
        INVALID_KEY_RATE_PER_MIN=str(INVALID_KEYS_PER_MIN),
        FORWARDED_ALLOW_IPS=TRUSTED_PROXY,
    )
    async with ApiServer(Settings.from_env(env)) as server:
        yield server


def client_from(api: ApiServer, ip: str) -> httpx.AsyncClient:
    """A client whose connections come from ``ip`` (any 127.x.y.z address)."""
    return httpx.AsyncClient(base_url=api.base_url, timeout=60, transport=httpx.AsyncHTTPTransport(local_address=ip))


@pytest.fixture
def database_uses(guarded_api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every use of the guarded API process's database from now on (the SQL, or the kind of use)."""
    db: Database = guarded_api.app.state.services.db
    uses: list[str] = []

    def counted(name: str) -> Any:
        original = getattr(db, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            uses.append(args[0] if args and isinstance(args[0], str) else name)
            return original(*args, **kwargs)

        return call

    for name in ("fetchrow", "fetch", "fetchval", "execute", "connection", "transaction"):
        monkeypatch.setattr(db, name, counted(name))
    return uses
