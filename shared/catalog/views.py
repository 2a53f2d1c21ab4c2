"""The public shape of a model: OpenAI's model object extended with kind, pricing, parameters and routes.

Each route shows its provider, the upstream model and how it takes each parameter (``as`` the upstream's name,
converted, or ``fixed`` at the one value it makes; a file parameter also how the file is ``sent_as``: ``url``, a
signed Conduit URL the upstream fetches, ``data_uri`` or ``multipart``), and whether it is usable here now; never
credentials or base URLs. A parameter that some route only takes at one value says so in ``only_on``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from shared.catalog import Model, Route
from shared.catalog.params import MEDIA_KINDS
from shared.catalog.pricing import ModelPricing


class ModelRoute(msgspec.Struct):
    """A provider serving the model: its upstream model, how it takes each parameter, whether it is usable now."""

    provider: str
    model: str | None
    parameters: dict[str, dict[str, Any]]
    available: bool | msgspec.UnsetType = msgspec.UNSET


class CatalogModel(msgspec.Struct):
    """A model (OpenAI's model object, extended): ``parameters`` are JSON Schemas; text and embedding models have
    ``capabilities``, and ``route_capabilities`` for the routes that have fewer (only what differs)."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    name: str
    kind: str
    description: str
    pricing: ModelPricing
    parameters: dict[str, dict[str, Any]]
    routes: list[ModelRoute]
    available: bool
    capabilities: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    route_capabilities: dict[str, dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


def public_model(model: Model, *, available: bool, route_usable: Callable[[Route], bool] | None = None) -> CatalogModel:
    parameters = {p.name: p.schema() for p in model.parameters}
    for route in model.routes:
        for name, schema in parameters.items():
            mapping = route.mapping(name)
            if mapping is not None and mapping.is_fixed:
                schema.setdefault("only_on", {})[route.provider] = mapping.fixed
    return CatalogModel(
        id=model.id,
        object="model",
        created=model.created,
        owned_by=model.owned_by,
        name=model.name,
        kind=model.kind,
        description=model.description,
        pricing=model.pricing.public(),
        parameters=parameters,
        routes=[_public_route(model, route, route_usable) for route in model.routes],
        available=available,
        **_capabilities(model),
    )


def _public_route(model: Model, route: Route, usable: Callable[[Route], bool] | None) -> ModelRoute:
    honoured = {}
    for parameter in model.parameters:
        mapping = route.mapping(parameter.name)
        if mapping is not None:
            honoured[parameter.name] = mapping.public()
            if parameter.type in MEDIA_KINDS and route.provider != "local":  # how its files reach the upstream
                honoured[parameter.name]["sent_as"] = route.options.get("inputs", "url")
    return ModelRoute(
        provider=route.provider,
        model=route.upstream_model or None,
        parameters=honoured,
        available=usable(route) if usable is not None else msgspec.UNSET,
    )


def _capabilities(model: Model) -> dict[str, Any]:
    """Text and embedding models: ``capabilities``, and ``route_capabilities`` for the routes that have fewer
    (only what differs, by provider)."""
    if model.kind not in ("text", "embedding"):
        return {}
    shown: dict[str, Any] = {"capabilities": model.capabilities.model.public(model.kind)}
    narrowed: dict[str, Any] = {}
    for (provider, _), route in model.capabilities.narrowed:
        full, own = shown["capabilities"], route.public(model.kind)
        narrowed[provider] = {name: value for name, value in own.items() if value != full[name]}
    if narrowed:
        shown["route_capabilities"] = narrowed
    return shown
