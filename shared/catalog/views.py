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
    }
