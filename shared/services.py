"""The long-lived dependencies of a process (API or worker), built once from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import httpx
from arq.connections import ArqRedis

from shared.accounts.devices import DeviceCookies
from shared.accounts.key_cache import KeyCache
from shared.accounts.sessions import SessionStore
from shared.billing.runtime import Billing
from shared.catalog import Catalog, load_catalog_paths
from shared.events.hub import EventHub
from shared.events.publish import TaskEvents
from shared.infra import tracing
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.mail import Mailer
from shared.infra.queue import JobQueue, close_redis, connect_redis
from shared.infra.storage import LocalStorage, UrlSigner
from shared.infra.urlguard import UrlGuard
from shared.media.sources import MediaSources
from shared.moderation.pipeline import Moderator
from shared.moderation.policy import load_policy
from shared.providers import ProviderRegistry
from shared.providers.upstream_client import UpstreamClient, UpstreamTransport
from shared.ratelimits.invalid_keys import InvalidKeyLimit
from shared.ratelimits.limiter import RateLimiter
from shared.ratelimits.request_limits import RequestLimits
from shared.settings import Settings

SHUTDOWN_DRAIN_S = 30.0  # how long background work (settlements, mails, ...) may take to end at shutdown


@dataclass(slots=True)
class Services:
    settings: Settings
    background: BackgroundTasks  # the process's background tasks, drained by ``close``
    db: Database
    redis: ArqRedis
    catalog: Catalog
    storage: LocalStorage
    signer: UrlSigner
    providers: ProviderRegistry
    keys: KeyCache
    queue: JobQueue  # hands jobs to the workers
    http: UpstreamClient  # one client per process for upstream providers and output downloads
    url_guard: UrlGuard  # webhooks: checks user-supplied URLs
    # Accounts: rate limits, people's sessions, sign-in device cookies, outgoing mail
    limiter: RateLimiter
    sessions: SessionStore
    devices: DeviceCookies
    mailer: Mailer
    # Rate limits of API requests and in-flight tasks; requests with keys that do not work, per client IP
    request_limits: RequestLimits
    invalid_keys: InvalidKeyLimit
    billing: Billing  # billing: credit packs, Stripe
    events: TaskEvents  # live task events: publishing (workers and API)
    event_hub: EventHub  # ... and receiving them for the streams this process serves (API; its loops: create_app)
    media: MediaSources  # input media: uploads, URLs fetched through the URL guard, data: URIs
    moderator: Moderator  # the moderation policy and its checks (every route that carries text runs it)

    @classmethod
    async def start(cls, settings: Settings, *, db_pool_max: int | None = None) -> Services:
        _, redis_url = settings.require_connections()
        catalog = load_catalog_paths(settings.catalog_paths)
        policy = load_policy(settings.moderation.policy_paths)  # a bad policy file stops the start-up here
        moderator_for = partial(Moderator.build, policy, settings, catalog)
        billing = Billing.from_settings(settings)
        db = await Database.connect(settings, max_size=db_pool_max)
        try:
            redis = await connect_redis(redis_url, settings.deployment.sentinel)
        except Exception:
            await db.close()
            raise
        http = upstream_http_client(settings)
        tracing.instrument_http(http)  # while tracing: a span per upstream call, with its traceparent
        # every limiter (API limits, sign-in throttles) fails open or closed as configured
        limiter = RateLimiter(
            redis, fail_open=settings.rate_limits.fail_open, timeout_s=settings.rate_limits.redis_timeout_s
        )
        slot_ttl_s = max((model.max_runtime_s for model in catalog), default=3600) + 300
        background = BackgroundTasks()
        secret = settings.signing_key()
        storage = LocalStorage(settings.resolved_storage_dir)
        url_guard = UrlGuard(allow_loopback=settings.url_guard_allow_loopback)
        return cls(
            settings=settings,
            background=background,
            db=db,
            redis=redis,
            catalog=catalog,
            storage=storage,
            signer=UrlSigner(secret, settings.public_base_url, settings.file_url_ttl_s),
            providers=ProviderRegistry.build(catalog.providers, settings, http=http, redis=redis),
            keys=KeyCache(background),
            queue=JobQueue(redis),
            http=http,
            url_guard=url_guard,
            limiter=limiter,
            sessions=SessionStore(redis, settings.auth),
            devices=DeviceCookies(secret),
            mailer=Mailer(settings.mail, background),
            request_limits=RequestLimits(limiter, settings.rate_limits, slot_ttl_s=slot_ttl_s),
            invalid_keys=InvalidKeyLimit(limiter, settings.rate_limits.invalid_keys_per_ip_per_min),
            billing=billing,
            events=TaskEvents(redis, settings.events),
            event_hub=EventHub(redis, db, settings.events),
            media=MediaSources(db, storage, url_guard, settings.media),
            moderator=moderator_for(http=http, db=db, redis=redis, background=background),
        )

    async def close(self) -> None:
        """Drain the background tasks (they may still need the connections), then close the connections."""
        await self.background.drain(SHUTDOWN_DRAIN_S)
        await self.http.aclose()
        await self.media.aclose()
        await self.billing.close()
        await close_redis(self.redis)
        await self.db.close()


def upstream_http_client(settings: Settings) -> UpstreamClient:
    """Connection pool for upstream calls: sized for a worker's concurrent jobs, never following redirects
    unless asked (output downloads allow a few).

    The httpx API on aiohttp's connection pool (``httpx-aiohttp``, the backend the official OpenAI SDK
    offers for speed): httpx's own transport spends ~1.6 ms of CPU per request on this machine and scans
    its whole pool for every request, aiohttp's ~0.5 ms (bench/RESULTS.md). JSON calls take the client's
    direct path (``shared.providers.upstream_client``)."""
    return UpstreamClient(
        transport=UpstreamTransport(
            limits=httpx.Limits(max_connections=settings.provider_max_connections, keepalive_expiry=30.0),
            trust_env=False,
        ),
        user_agent="conduit/0.1",
        timeout=httpx.Timeout(settings.provider_read_timeout_s, connect=settings.provider_connect_timeout_s, pool=30.0),
        follow_redirects=False,
        max_redirects=3,
        trust_env=False,
    )
