"""The public shape of a model: OpenAI's model object extended with kind, pricing and parameters."""

from __future__ import annotations

from typing import Any

from shared.catalog import Model


def public_model(model: Model, *, available: bool) -> dict[str, Any]:
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "name": model.name,
        "kind": model.kind,
        "description": model.description,
        "pricing": model.pricing.public(),
        "parameters": {p.name: p.schema() for p in model.parameters},
        "available": available,
        **_capabilities(model),
    }


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
