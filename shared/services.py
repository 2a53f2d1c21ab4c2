"""The long-lived dependencies of a process (API or worker), built once from ``Settings``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis

from shared.accounts.keys import KeyCache
from shared.accounts.sessions import SessionStore
from shared.catalog import Catalog, load_catalog_paths
from shared.db import Database
from shared.mail import Mailer
from shared.providers import ProviderRegistry
from shared.queue import Enqueuer, connect_redis
from shared.ratelimit import RateLimiter
from shared.settings import Settings
from shared.storage import LocalStorage, UrlSigner
from shared.urlguard import UrlGuard


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    redis: ArqRedis
    catalog: Catalog
    storage: LocalStorage
    signer: UrlSigner
    providers: ProviderRegistry
    keys: KeyCache
    enqueuer: Enqueuer
    http: httpx.AsyncClient  # one client per process for upstream providers and output downloads
    url_guard: UrlGuard  # webhooks (issue 7): checks user-supplied URLs
    # Accounts (issue 5): rate limits, people's sessions, outgoing mail
    limiter: RateLimiter
    sessions: SessionStore
    mailer: Mailer

    @classmethod
    async def start(cls, settings: Settings, *, db_pool_max: int | None = None) -> Services:
        _, redis_url = settings.require_connections()
        catalog = load_catalog_paths(settings.catalog_paths)
        db = await Database.connect(settings, max_size=db_pool_max)
        try:
            redis = await connect_redis(redis_url)
        except Exception:
            await db.close()
            raise
        http = upstream_http_client(settings)
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            catalog=catalog,
            storage=LocalStorage(settings.resolved_storage_dir),
            signer=UrlSigner(settings.signing_key(), settings.public_base_url, settings.file_url_ttl_s),
            providers=ProviderRegistry.build(catalog.providers, settings, http=http, redis=redis),
            keys=KeyCache(),
            enqueuer=Enqueuer(redis),
            http=http,
            url_guard=UrlGuard(allow_loopback=settings.url_guard_allow_loopback),
            limiter=RateLimiter(redis),
            sessions=SessionStore(redis, settings.auth),
            mailer=Mailer(settings.mail),
        )

    async def close(self) -> None:
        await self.mailer.drain()
        await self.http.aclose()
        await self.redis.aclose()
        await self.db.close()


def upstream_http_client(settings: Settings) -> httpx.AsyncClient:
    """Connection pool for upstream calls: sized for a worker's concurrent jobs, never following redirects
    unless asked (output downloads allow a few)."""
    return httpx.AsyncClient(
        transport=ShardedTransport(settings.provider_max_connections),
        timeout=httpx.Timeout(settings.provider_read_timeout_s, connect=settings.provider_connect_timeout_s, pool=30.0),
        follow_redirects=False,
        max_redirects=3,
        headers={"User-Agent": "conduit/0.1"},
    )


class ShardedTransport(httpx.AsyncBaseTransport):
    """``max_connections`` spread over small connection pools, used in turn.

    httpcore's pool scans every connection for every waiting request, so one pool holding hundreds of
    busy connections (a worker with 500 upstream calls in flight) spends milliseconds of CPU per request
    (measured: ~9 ms; bench/RESULTS.md). Pools of ~16 connections keep each scan short."""

    CONNECTIONS_PER_POOL = 16

    def __init__(self, max_connections: int) -> None:
        count = max(1, -(-max_connections // self.CONNECTIONS_PER_POOL))
        per_pool = -(-max_connections // count)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool, keepalive_expiry=30.0)
        tls = httpx.create_ssl_context()  # loading the CA bundle takes ~80 ms of CPU: once, not once per pool
        self._pools = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(count)]
        self._next = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
