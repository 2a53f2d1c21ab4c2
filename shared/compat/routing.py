"""Calling a model's routes for a synchronous request (no task): circuit breaker, retries, fallbacks.

The same rules as a task run (``shared.tasks.execution``): routes in catalog order; each call retried for
transient failures within the time budget; a route whose retries ran out, whose credentials or model were
refused, or whose circuit is open hands over to the next; a refusal of the request itself ends at once.
Failures come out as domain errors the API maps to OpenAI's statuses: ``InvalidInput`` (400, the upstream
refused the request), ``UpstreamFailed`` (502, every route failed), ``ModelUnavailable`` (503, no route to try).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.catalog import Model
from shared.errors import InvalidInput, ModelUnavailable, UpstreamFailed
from shared.ids import uuid7
from shared.providers import ProviderRegistry
from shared.providers.base import GenerationRequest, PermanentError, Provider, ProviderError, RetryableError, RouteError
from shared.providers.circuit import Gate
from shared.providers.retry import with_retries

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
    routes = registry.usable_routes(model)
    if not routes:
        raise ModelUnavailable(f"model {model.id!r} has no provider configured right now", param="model")
    ends = time.monotonic() + budget_s
    request_id = uuid7()
    last: ProviderError | None = None
    breaker = registry.breaker
    for route in routes:
        budget = ends - time.monotonic()
        if budget <= 0:
            break
        provider = registry.get(route.provider)
        assert provider is not None
        gate = await breaker.allow(route.provider) if breaker is not None else Gate.CLOSED
        if not gate.allowed:
            last = RetryableError(f"{route.provider} is failing (circuit open)", code="upstream_unavailable")
            continue
        request = GenerationRequest(task_id=request_id, model=model, route=route, params=params)
        try:
            result = await with_retries(lambda: call(provider, request), registry.policy, budget_s=budget)  # noqa: B023
        except (RetryableError, RouteError) as exc:
            if breaker is not None:
                await breaker.record_failure(route.provider)
            last = exc
            continue
        except PermanentError as exc:
            if breaker is not None:
                await breaker.record_success(route.provider, gate)
            raise UpstreamRefused(exc.message, code=exc.code) from None
        if breaker is not None and gate is not Gate.CLOSED:
            await breaker.record_success(route.provider, gate)
        return result, route.provider
    if last is None:
        raise UpstreamFailed("no provider could serve this request in time", code="upstream_timeout")
    if last.code == "upstream_unavailable" and "circuit open" in last.message:
        raise ModelUnavailable(f"every provider of {model.id!r} is failing right now; retry later", param="model")
    raise UpstreamFailed(f"no provider could serve this request; the last one said: {last.message}", code=last.code)
