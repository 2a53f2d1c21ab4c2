"""Test harness: real PostgreSQL and Redis, a real HTTP server, real arq workers.

* Servers: the embedded PostgreSQL and Redis under ``.conduit/test`` (throw-away: fsync off), or, when
  DATABASE_URL / REDIS_URL are set, those servers: a separate ``<name>_test`` database is (re)created on
  the PostgreSQL server and Redis database 15 is used (and flushed).
* The API runs in-process under uvicorn on a real port; workers run in-process (arq ``Worker``) or as
  ``conduit worker`` subprocesses when a test needs to kill one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvicorn
from redis.asyncio import Redis

from cli.embedded import EmbeddedServices
from shared.infra.db.migrate import apply_migrations
from shared.services import Services
from shared.settings import DEFAULT_CATALOG, Settings

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA_DIR = ROOT / ".conduit" / "test"
TEST_CATALOG = ROOT / "tests" / "fixtures" / "catalog.toml"
TEST_MODERATION_POLICY = ROOT / "tests" / "fixtures" / "moderation.toml"
TEST_DATABASE = "conduit_test"
EXTERNAL_REDIS_DB = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TestServers:
    database_url: str
    redis_url: str
    embedded: EmbeddedServices | None = None
    started: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.embedded is not None and self.started:
            self.embedded.stop(self.started)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("db=")) + f"&db={db}"
        return urlunsplit(parts._replace(query=query.lstrip("&")))
    return urlunsplit(parts._replace(path=f"/{db}"))


def start_servers() -> TestServers:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    servers = TestServers(database_url="", redis_url="")
    if not database_url or not redis_url:
        servers.embedded = EmbeddedServices(TEST_DATA_DIR, durable=False, database=TEST_DATABASE)
        servers.started = servers.embedded.start(need_postgres=not database_url, need_redis=not redis_url)
    if database_url:
        name = urlsplit(database_url).path.lstrip("/") or "conduit"
        servers.database_url = _with_database(database_url, f"{name}_test")
    else:
        assert servers.embedded is not None
        servers.database_url = servers.embedded.urls.database_url
    if redis_url:
        servers.redis_url = _with_redis_db(redis_url, EXTERNAL_REDIS_DB)
    else:
        assert servers.embedded is not None
        servers.redis_url = servers.embedded.urls.redis_url
    return servers


async def reset_database(database_url: str) -> None:
    """Drop and re-create the test database, then apply every migration to it (as ``release`` does)."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(_with_database(database_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await apply_migrations(database_url)


async def flush_redis(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def test_env(servers: TestServers, *, port: int, storage_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a Conduit process gets in tests (also used to build in-process Settings)."""
    env = {
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "CONDUIT_DATA_DIR": str(TEST_DATA_DIR),
        "STORAGE_DIR": str(storage_dir),
        "PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CATALOG_PATH": os.pathsep.join([str(DEFAULT_CATALOG), str(TEST_CATALOG)]),
        "MODERATION_POLICY_PATH": str(TEST_MODERATION_POLICY),
        "MODERATION_STRIKES_TO_SUSPEND": "8",  # above the blocks one test makes, but the strike test's
        "SECRET_KEY": "test-secret-key",
        "TASK_JOB_TIMEOUT_S": "30",
        "LOG_LEVEL": "WARNING",
        # rate limits: enforced, but far above what tests send; rate-limit tests set their own
        "RATE_LIMIT_RPM_PER_KEY": "100000",
        "RATE_LIMIT_RPM_PER_ACCOUNT": "100000",
        "MAX_INFLIGHT_TASKS_PER_KEY": "10000",
        "MAX_INFLIGHT_TASKS_PER_ACCOUNT": "10000",
        "INVALID_KEY_RATE_PER_MIN": "100000",
        # OpenAI-compatible images: a short wait, so the timeout test is quick
        "IMAGE_GENERATION_WAIT_S": "5",
        # live task events: heartbeats and the database check of idle streams come quickly
        "EVENTS_HEARTBEAT_S": "1",
        "EVENTS_RECONCILE_S": "1",
    }
    env.update(extra)
    return env


class Started:
    """``async with thing:`` starts it and stops it however the block ends."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class AsgiServer(Started):
    """An ASGI app under uvicorn, in this event loop, on a real TCP port (the API, simulators, receivers)."""

    def __init__(
        self, app: Any, port: int, *, name: str = "server", lifespan: Literal["on", "off"] = "off", **config: Any
    ) -> None:
        self.name = name
        self.base_url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning", access_log=False, **config
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            await asyncio.sleep(0.02)

    async def stop(self, *, force: bool = False) -> None:
        """Stop serving; ``force`` also drops connections still open (e.g. a request a test keeps hanging)."""
        self.server.should_exit = True
        self.server.force_exit = force
        if self._task is not None:
            await self._task
            self._task = None


class ApiServer(AsgiServer):
    """The Litestar app under uvicorn, in this process, on a real TCP port."""

    def __init__(self, settings: Settings) -> None:
        from api.app import create_app

        self.settings = settings
        self.app = create_app(settings)
        # as ``conduit web`` serves it: the app decides which proxies to believe (FORWARDED_ALLOW_IPS)
        super().__init__(self.app, settings.port, name="API server", lifespan="on", proxy_headers=False)

    @property
    def services(self) -> Services:
        """The running API's own services (its database pool, its background tasks, ...)."""
        services: Services = self.app.state.services
        return services


class InProcessWorker(Started):
    """A worker process (``worker.process.WorkerProcess``: its own services and arq worker) in this event loop."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        from worker.process import WorkerProcess

        self.process = WorkerProcess(settings, **overrides)

    async def start(self) -> None:
        await self.process.start()

    async def stop(self) -> None:
        await self.process.stop()  # no grace: the running jobs are interrupted and handed back


class Subprocess:
    """A ``conduit`` command in its own process (for tests that kill workers or run the Procfile)."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env={**os.environ, **env, "PYTHONWARNINGS": "ignore"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], *, timeout: float = 20, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def fresh_storage(tmp_root: Path) -> Path:
    storage = tmp_root / "storage"
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True)
    return storage
