"""A chat request checked against one catalog model: its parameters, the routes that may serve it and the
credits to hold for the worst case.

The body's shape is checked by ``shared.openai_api.chat_fields``; here, per model: the messages
(``chat_messages``), the capabilities the request uses (``tools``, ``response_format``, ``logprobs``, images,
``n`` up to ``max_n``, ``max_tokens`` up to ``max_output``: a model without one refuses the request with ``400``
naming the field), the routes that have them and suit the ``provider`` preferences (``routing``), the catalog
parameters (``max_tokens``, ``temperature``, ``seed``) and the hold (``pricing``).

Without ``max_tokens`` the request may use the model's ``max_output`` (by default its ``max_tokens`` parameter's
maximum), which is what is held and what the upstream is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.accounts.key_policy import check_model_allowed
from shared.accounts.keys import Principal
from shared.catalog import Catalog, Model
from shared.catalog.capabilities import Need
from shared.catalog.params import validate_input
from shared.infra.errors import InvalidInput, ModelUnavailable, NotFound
from shared.openai_api import pricing
from shared.openai_api.chat_fields import ChatInput, option_needs
from shared.openai_api.chat_messages import normalise_messages
from shared.openai_api.routing import choose_routes, with_routes
from shared.providers import ProviderRegistry

__all__ = ["ChatCall", "ChatInput", "check_available", "find_model", "prepare_chat"]

KIND_NAMES = {"text": "chat (text)", "embedding": "embedding"}


@dataclass(slots=True)
class ChatCall:
    """The request for one model: ``model`` narrowed to the routes that may serve it, the parameters sent
    upstream, and what it holds."""

    model: Model
    params: dict[str, Any]
    hold: int
    stream: bool
    include_usage: bool

    @property
    def choices(self) -> int:
        return pricing.choices(self.params)


def find_model(catalog: Catalog, principal: Principal, model_id: str, kind: str, param: str = "model") -> Model:
    """The catalog model of this kind that the caller's key may use (``NotFound`` / ``PermissionDenied``)."""
    model = catalog.get(model_id)
    if model is None or model.kind != kind:
        what = KIND_NAMES.get(kind, kind)
        raise NotFound(
            f"the model {model_id!r} does not exist or is not a{'n' if what[0] in 'aeiou' else ''} {what} model; "
            "see GET /v1/models",
            code="model_not_found",
            param=param,
        )
    check_model_allowed(principal, model_id)
    return model


def check_available(providers: ProviderRegistry, model: Model) -> None:
    if not providers.available(model):
        raise ModelUnavailable(f"model {model.id!r} has no provider configured right now", param="model")


def refuse_missing(model: Model, needs: list[Need]) -> None:
    """``InvalidInput`` naming the field of the first capability the model lacks."""
    capabilities = model.capabilities.model
    for need in needs:
        if capabilities.has(need):
            continue
        if need.capability in ("max_n", "max_output", "max_inputs", "max_context", "dimensions"):
            limit = getattr(capabilities, need.capability)
            raise InvalidInput(f"{need.param} must be at most {limit} for {model.id!r}", param=need.param)
        raise InvalidInput(
            f"{model.id!r} does not support {need.capability.replace('_', ' ')} (see its capabilities in "
            "GET /v1/models)",
            param=need.param,
        )


def prepare_chat(providers: ProviderRegistry, model: Model, body: ChatInput) -> ChatCall:
    """The validated request for ``model`` and its worst-case hold (``InvalidInput``, ``ModelUnavailable``)."""
    check_available(providers, model)
    messages, needs = normalise_messages(body.messages, model.parameter("messages"))
    needs += option_needs(body.options)
    n = body.n or 1
    if n > 1:
        needs.append(Need("max_n", "n", n))
    if body.max_tokens is not None:
        needs.append(Need("max_output", body.max_tokens_param, body.max_tokens))
    refuse_missing(model, needs)
    routes = choose_routes(providers, model, needs, body.providers)
    raw: dict[str, Any] = {}
    cap = model.capabilities.model.max_output
    if body.max_tokens is not None:
        raw["max_tokens"] = body.max_tokens
    elif cap is not None:
        raw["max_tokens"] = cap
    if body.temperature is not None:
        raw["temperature"] = body.temperature
    if body.seed is not None:
        raw["seed"] = body.seed
    try:
        params = validate_input(tuple(p for p in model.parameters if p.type != "messages"), raw)
        providers.check_routable(model, params)
    except InvalidInput as exc:
        # name the OpenAI field, not the task API's "input.<name>"
        param = (exc.param or "").removeprefix("input.") or None
        param = body.max_tokens_param if param == "max_tokens" else param
        raise InvalidInput(exc.message, code=exc.code, param=param) from None
    params = {"messages": messages, **params, **body.options}
    if n > 1:
        params["n"] = n
    hold = pricing.worst_case(model, params)
    return ChatCall(with_routes(model, routes), params, hold, body.stream, body.include_usage)
