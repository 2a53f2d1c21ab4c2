"""Calling a model's routes for a synchronous request (no task): circuit breaker, retries, fallbacks.

The same rules as a task run (``shared.providers.routing.serve``). Failures come out as domain errors the API
maps to OpenAI's statuses: ``InvalidInput`` (400, the upstream refused the request), ``UpstreamFailed`` (502,
every route failed), ``ModelUnavailable`` (503, no route to try).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.catalog import Model
from shared.infra.errors import InvalidInput, ModelUnavailable, UpstreamFailed
from shared.infra.ids import uuid7
from shared.providers import ProviderRegistry
from shared.providers.base import GenerationRequest, Provider
from shared.providers.routing import RequestRefused, RoutesExhausted, serve

T = TypeVar("T")


class UpstreamRefused(InvalidInput):
    """The upstream refused the request itself (invalid for that model, content policy)."""


async def call_routes(
    registry: ProviderRegistry,
    model: Model,
    params: dict[str, object],
    call: Callable[[Provider, GenerationRequest], Awaitable[T]],
    *,
    budget_s: float,
) -> tuple[T, str]:
    """``call`` on the first route that serves the request. Returns (its result, the provider's name)."""
    if not registry.usable_routes(model):
        raise ModelUnavailable(f"model {model.id!r} has no provider configured right now", param="model")
    try:
        served = await serve(registry, model, params, call, request_id=uuid7(), ends=time.monotonic() + budget_s)
    except RequestRefused as refused:
        raise UpstreamRefused(refused.error.message, code=refused.error.code) from None
    except RoutesExhausted as exhausted:
        last = exhausted.last
        if last is None:
            raise UpstreamFailed("no provider could serve this request in time", code="upstream_timeout") from None
        if exhausted.circuits_open:
            raise ModelUnavailable(
                f"every provider of {model.id!r} is failing right now; retry later", param="model"
            ) from None
        raise UpstreamFailed(
            f"no provider could serve this request; the last one said: {last.message}", code=last.code
        ) from None
    return served.result, served.provider.name
