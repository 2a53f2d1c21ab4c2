"""The long-lived dependencies of a process (API or worker), built once from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis

from shared.accounts.keys import KeyCache
from shared.billing.runtime import Billing
from shared.catalog import Catalog, load_catalog_paths
from shared.db import Database
from shared.providers import ProviderRegistry
from shared.queue import Enqueuer, connect_redis
from shared.settings import Settings
from shared.storage import LocalStorage, UrlSigner


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
    billing: Billing

    @classmethod
    async def start(cls, settings: Settings, *, db_pool_max: int | None = None) -> Services:
        _, redis_url = settings.require_connections()
        catalog = load_catalog_paths(settings.catalog_paths)
        billing = Billing.from_settings(settings)
        db = await Database.connect(settings, max_size=db_pool_max)
        try:
            redis = await connect_redis(redis_url)
        except Exception:
            await db.close()
            raise
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            catalog=catalog,
            storage=LocalStorage(settings.resolved_storage_dir),
            signer=UrlSigner(settings.signing_key(), settings.public_base_url, settings.file_url_ttl_s),
            providers=ProviderRegistry.default(),
            keys=KeyCache(),
            enqueuer=Enqueuer(redis),
            billing=billing,
        )

    async def close(self) -> None:
        await self.billing.close()
        await self.redis.aclose()
        await self.db.close()
