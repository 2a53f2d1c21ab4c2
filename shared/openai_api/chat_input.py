"""An OpenAI chat completion request, checked against the catalog: the model, its validated parameters and
the credits to hold for the worst case.

OpenAI's request has more fields than a catalog model's parameters. Mapped: ``messages`` (text content, as a
string or as ``text`` parts; ``developer`` is a system message), ``max_completion_tokens`` / ``max_tokens``,
``temperature``, ``seed``. Accepted and not forwarded (upstreams behave as with their defaults): ``top_p``,
``stop``, ``presence_penalty``, ``frequency_penalty``, ``user``, ``n`` = 1. Refused: ``n`` > 1, non-text content.

Without ``max_tokens`` the request may use the model's cap (the parameter's maximum), which is what is held and
what the upstream is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.accounts.key_policy import check_model_allowed
from shared.accounts.keys import Principal
from shared.catalog import Catalog, Model
from shared.catalog.params import validate_input
from shared.catalog.pricing import cost, worst_case_usage
from shared.infra.errors import InvalidInput, ModelUnavailable, NotFound
from shared.providers import ProviderRegistry

ROLE_ALIASES = {"developer": "system"}


@dataclass(slots=True)
class ChatInput:
    """What the API route hands over: the OpenAI fields Conduit acts on."""

    model: str
    messages: list[Any]
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    n: int | None = None
    stream: bool = False
    include_usage: bool = False


@dataclass(slots=True)
class ChatCall:
    model: Model
    params: dict[str, Any]
    hold: int
    stream: bool
    include_usage: bool


def find_model(catalog: Catalog, principal: Principal, model_id: str, kind: str) -> Model:
    """The catalog model of this kind that the caller's key may use (``NotFound`` / ``PermissionDenied``)."""
    model = catalog.get(model_id)
    if model is None or model.kind != kind:
        what = "chat (text)" if kind == "text" else kind
        raise NotFound(
            f"the model {model_id!r} does not exist or is not a {what} model; see GET /v1/models",
            code="model_not_found",
            param="model",
        )
    check_model_allowed(principal, model_id)
    return model


def check_available(providers: ProviderRegistry, model: Model) -> None:
    if not providers.available(model):
        raise ModelUnavailable(f"model {model.id!r} has no provider configured right now", param="model")


def prepare_chat(providers: ProviderRegistry, model: Model, body: ChatInput) -> ChatCall:
    """The validated parameters and the worst-case hold (``InvalidInput``, ``ModelUnavailable``)."""
    check_available(providers, model)
    if body.n not in (None, 1):
        raise InvalidInput("only n = 1 is supported", param="n")
    raw: dict[str, Any] = {"messages": _messages(body.messages)}
    cap = model.parameter("max_tokens")
    if body.max_tokens is not None:
        raw["max_tokens"] = body.max_tokens
    elif cap is not None and cap.maximum is not None:
        raw["max_tokens"] = int(cap.maximum)
    if body.temperature is not None:
        raw["temperature"] = body.temperature
    if body.seed is not None:
        raw["seed"] = body.seed
    try:
        params = validate_input(model.parameters, raw)
        providers.check_routable(model, params)
    except InvalidInput as exc:
        # name the OpenAI field, not the task API's "input.<name>"
        raise InvalidInput(exc.message, code=exc.code, param=(exc.param or "").removeprefix("input.") or None) from None
    hold = cost(model.pricing, worst_case_usage(model.pricing.unit, params))
    return ChatCall(model=model, params=params, hold=hold, stream=body.stream, include_usage=body.include_usage)


def _messages(messages: list[Any]) -> list[Any]:
    out: list[Any] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(message)  # validate_input names the problem
            continue
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, list):
            content = _text_parts(content, index)
        elif content is None and role == "assistant":
            content = ""
        out.append({"role": ROLE_ALIASES.get(role, role) if isinstance(role, str) else role, "content": content})
    return out


def _text_parts(parts: list[Any], index: int) -> str:
    texts = []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidInput("only text content is supported", param=f"messages[{index}].content")
        texts.append(part["text"])
    return "\n".join(texts)
