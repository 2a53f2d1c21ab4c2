"""Provider adapters (one module per upstream protocol) and the registry that picks usable routes.

The registry is built once per process from the catalog's ``[providers.*]`` declarations and the
credentials in the environment. It also carries what every upstream call shares: the retry policy, the
Redis-backed circuit breaker and the bounded output downloader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from shared.catalog import Model, Route
from shared.catalog.providers import ProviderSpec, ResolvedProvider
from shared.providers.base import Provider
from shared.providers.circuit import CircuitBreaker
from shared.providers.fal import FalProvider
from shared.providers.fetch import OutputFetcher
from shared.providers.local import LocalProvider
from shared.providers.openai_protocol import OpenAICompatProvider
from shared.providers.replicate import ReplicateProvider
from shared.providers.retry import RetryPolicy
from shared.providers.upstream_client import UpstreamClient

if TYPE_CHECKING:
    from shared.settings import Settings

ADAPTERS: dict[str, Callable[[ResolvedProvider, UpstreamClient], Provider]] = {
    "openai": OpenAICompatProvider,
    "replicate": ReplicateProvider,
    "fal": FalProvider,
}


class ProviderRegistry:
    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        fetcher: OutputFetcher | None = None,
    ) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self.policy = policy or RetryPolicy()
        self.breaker = breaker
        self.fetcher = fetcher

    @classmethod
    def default(cls) -> ProviderRegistry:
        return cls([LocalProvider()])

    @classmethod
    def build(
        cls,
        specs: Mapping[str, ProviderSpec],
        settings: Settings,
        *,
        http: UpstreamClient,
        redis: Redis,
    ) -> ProviderRegistry:
        providers: list[Provider] = [LocalProvider()]
        for spec in specs.values():
            if spec.protocol == "local":
                continue
            resolved: ResolvedProvider = spec.resolve(settings.provider_env)
            providers.append(ADAPTERS[spec.protocol](resolved, http))
        return cls(
            providers,
            policy=RetryPolicy(
                max_attempts=settings.provider_max_attempts,
                budget_s=settings.retry_budget_s,
                retry_after_cap_s=settings.provider_retry_after_cap_s,
            ),
            breaker=CircuitBreaker(
                redis, threshold=settings.circuit_failure_threshold, cooldown_s=settings.circuit_cooldown_s
            ),
            fetcher=OutputFetcher(http, max_bytes=settings.output_max_bytes, timeout_s=settings.download_timeout_s),
        )

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def names(self) -> list[str]:
        return sorted(self._providers)

    def configured_names(self) -> list[str]:
        return sorted(name for name, provider in self._providers.items() if provider.configured())

    def usable_routes(self, model: Model) -> list[Route]:
        """The model's routes, in catalog order, whose provider is known and has credentials."""
        usable = []
        for route in model.routes:
            provider = self._providers.get(route.provider)
            if provider is not None and provider.configured():
                usable.append(route)
        return usable

    def available(self, model: Model) -> bool:
        return bool(self.usable_routes(model))


def route_for(model: Model, provider: str) -> Route:
    """The model's route on ``provider`` (the one a saved upstream job was submitted through)."""
    for route in model.routes:
        if route.provider == provider:
            return route
    return Route(provider=provider, upstream_model="")
