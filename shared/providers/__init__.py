"""Provider adapters (one module per upstream protocol) and the registry that picks usable routes.

The registry is built once per process from the catalog's ``[providers.*]`` declarations and the
credentials in the environment. It also carries what every upstream call shares: the retry policy, the
Redis-backed circuit breaker and the bounded output downloader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from shared.catalog import Model, Route
from shared.catalog.providers import ProviderSpec, ResolvedProvider
from shared.infra.errors import InvalidInput
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

    def usable(self, route: Route) -> bool:
        """Whether the route's provider is known and has credentials."""
        provider = self._providers.get(route.provider)
        return provider is not None and provider.configured()

    def usable_routes(self, model: Model) -> list[Route]:
        """The model's routes, in catalog order, whose provider is known and has credentials."""
        return [route for route in model.routes if self.usable(route)]

    def available(self, model: Model) -> bool:
        return bool(self.usable_routes(model))

    def routes_for(self, model: Model, params: Mapping[str, Any]) -> list[Route]:
        """The usable routes, in catalog order, that honour every parameter of this request."""
        return [route for route in self.usable_routes(model) if route.refuses(params) is None]

    def check_routable(self, model: Model, params: Mapping[str, Any]) -> None:
        """``InvalidInput`` naming a parameter when no usable route honours the request (the model has usable
        routes: check ``available`` first)."""
        refusals = [(route, route.refuses(params)) for route in self.usable_routes(model)]
        if not refusals or any(name is None for _, name in refusals):
            return
        name = refusals[0][1]
        assert name is not None
        reasons = []
        for route, refused in refusals:
            mapping = route.mapping(refused or "")
            if mapping is not None and mapping.is_fixed:
                reasons.append(f"{route.provider} only makes {refused} = {mapping.fixed!r}")
            else:
                reasons.append(f"{route.provider} does not take {refused!r}")
        raise InvalidInput(
            f"no available provider of {model.id!r} can honour {name} = {params[name]!r} with this request "
            f"({'; '.join(reasons)})",
            param=f"input.{name}",
        )


def route_for(model: Model, provider: str) -> Route:
    """The model's route on ``provider`` (the one a saved upstream job was submitted through)."""
    for route in model.routes:
        if route.provider == provider:
            return route
    return Route(provider=provider, upstream_model="")
