"""A TCP proxy in front of a Unix socket (the embedded PostgreSQL or Redis), which a test can take down and
bring back (``stop``/``start``: connections refused and cut), or partition and heal (``partition``/``heal``: nothing
passes, as when a firewall drops the packets, and what was held goes through once healed): a dependency that becomes
unreachable, as far as the process behind the proxy can tell."""

from __future__ import annotations

import asyncio
import contextlib
import glob
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.settings import Settings
from tests.harness import ApiServer, free_port


class UnixProxy:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def partition(self) -> None:
        """Hold everything: connections stay open and get no answer, new ones are accepted and go nowhere."""
        self._flowing.clear()

    def heal(self) -> None:
        self._flowing.set()

    async def start(self) -> None:
        """Accept connections again (a no-op while it does)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(Exception):
                dst.close()


def embedded_sockets(settings: Settings) -> tuple[str, str]:
    """The embedded PostgreSQL's and Redis's Unix sockets (skips the test when the servers are not embedded)."""
    database_url, redis_url = settings.require_connections()
    host = parse_qs(urlsplit(database_url).query).get("host", [""])[0]
    pg = glob.glob(f"{host}/.s.PGSQL.*") if host else []
    if not pg or not redis_url.startswith("unix://"):
        pytest.skip("needs the embedded servers (Unix sockets) to put a proxy in front of them")
    return pg[0], urlsplit(redis_url).path


@contextlib.asynccontextmanager
async def proxied_api(settings: Settings, *routes: Any) -> AsyncIterator[tuple[ApiServer, UnixProxy, UnixProxy]]:
    """An API process (with ``routes`` added) whose PostgreSQL and Redis are reached through proxies the test
    can take down: a PgBouncer or Redis restart, as the API sees it."""
    pg_socket, redis_socket = embedded_sockets(settings)
    pg, redis = UnixProxy(pg_socket), UnixProxy(redis_socket)
    await pg.start()
    await redis.start()
    database = urlsplit(settings.require_connections()[0]).path
    proxied = replace(
        settings,
        database_url=f"postgresql://postgres@127.0.0.1:{pg.port}{database}",
        redis_url=f"redis://127.0.0.1:{redis.port}/0",
        port=free_port(),
        db_pool_min=1,
    )
    server = ApiServer(proxied)
    for route in routes:
        server.app.register(route)
    try:
        async with server:
            try:
                yield server, pg, redis
            finally:  # both up again (no-ops if they are), so the server closes its connections cleanly
                await pg.start()
                await redis.start()
    finally:
        await pg.stop()
        await redis.stop()
