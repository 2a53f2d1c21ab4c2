"""Provider adapters (one module per upstream protocol) and the registry that picks usable routes."""

from __future__ import annotations

from collections.abc import Iterable

from shared.catalog import Model, Route
from shared.providers.base import Provider
from shared.providers.local import LocalProvider


class ProviderRegistry:
    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    @classmethod
    def default(cls) -> ProviderRegistry:
        return cls([LocalProvider()])

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

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
