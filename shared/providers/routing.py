"""Serving one request through a model's routes: circuit breaker, retries, fallbacks. Used by task runs
(``shared.tasks.execution``) and by synchronous requests (``shared.openai_api.routing``).

Routes are tried in catalog order. Each call is retried for transient failures within the time left; a route
whose retries ran out, whose credentials or model were refused, or whose circuit is open hands over to the
next. A refusal of the request itself (``PermanentError``) ends at once: another provider would refuse it too.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.catalog import Model
from shared.providers import ProviderRegistry
from shared.providers.base import GenerationRequest, PermanentError, Provider, ProviderError, RetryableError, RouteError
from shared.providers.circuit import Gate
from shared.providers.retry import with_retries

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """What the route that served the request answered."""

    result: T
    provider: Provider
    request: GenerationRequest


@dataclass(slots=True)
class Attempt:
    """One route tried (after its retries): what the task timeline shows."""

    provider: str
    outcome: str  # succeeded, refused (the request itself), failed, skipped (circuit open)
    started_at: float  # time.time()
    duration_ms: int = 0
    error_code: str | None = None
    error_message: str | None = None
    upstream_id: str | None = None


class RequestRefused(Exception):
    """A provider refused the request itself (invalid for the model, content policy)."""

    def __init__(self, error: PermanentError, provider: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.provider = provider


class RoutesExhausted(Exception):
    """No route served the request in time; ``last`` is the last route's failure (None: none was tried)."""

    def __init__(self, last: ProviderError | None) -> None:
        super().__init__(last.message if last is not None else "no route was tried")
        self.last = last

    @property
    def circuits_open(self) -> bool:
        return (
            self.last is not None and self.last.code == "upstream_unavailable" and "circuit open" in self.last.message
        )


async def serve(
    registry: ProviderRegistry,
    model: Model,
    params: dict[str, Any],
    call: Callable[[Provider, GenerationRequest], Awaitable[T]],
    *,
    request_id: uuid.UUID,
    ends: float,
    on_route: Callable[[str], None] | None = None,
    count_failures: Callable[[], bool] = lambda: True,
    attempts: list[Attempt] | None = None,
) -> Served[T]:
    """``call`` on the first route that honours ``params`` and serves the request before ``ends``
    (``time.monotonic()``).

    ``on_route`` is told each provider tried; ``count_failures`` says whether a route's failure counts against
    its circuit (a task that ran out of its own time says nothing about the provider); ``attempts``, when
    given, gets an ``Attempt`` per route tried.
    Raises ``RequestRefused`` or ``RoutesExhausted``."""
    last: ProviderError | None = None
    for route in registry.routes_for(model, params):
        budget = ends - time.monotonic()
        if budget <= 0:
            break
        provider = registry.get(route.provider)
        assert provider is not None
        if on_route is not None:
            on_route(route.provider)
        gate = await gate_for(registry, route.provider)
        attempt = Attempt(route.provider, "skipped", time.time())
        began = time.monotonic()
        if attempts is not None:
            attempts.append(attempt)
        if not gate.allowed:
            last = RetryableError(f"{route.provider} is failing (circuit open)", code="upstream_unavailable")
            attempt.error_code, attempt.error_message = last.code, last.message
            continue
        request = GenerationRequest(task_id=request_id, model=model, route=route, params=params)
        try:
            result = await with_retries(
                functools.partial(call, provider, request), registry.policy, budget_s=budget, provider=route.provider
            )
        except (RetryableError, RouteError) as exc:
            _ended(attempt, began, "failed", exc)
            if count_failures():
                await record_failure(registry, route.provider)
            log.warning("request %s: route %s failed (%s), trying the next one", request_id, route.provider, exc.code)
            last = exc
            continue
        except PermanentError as exc:
            _ended(attempt, began, "refused", exc)
            await record_success(registry, route.provider, gate)  # it answered: the provider is up
            raise RequestRefused(exc, route.provider) from None
        _ended(attempt, began, "succeeded", None)
        await record_success(registry, route.provider, gate)
        return Served(result, provider, request)
    raise RoutesExhausted(last)


def _ended(attempt: Attempt, began: float, outcome: str, error: ProviderError | None) -> None:
    attempt.outcome = outcome
    attempt.duration_ms = int((time.monotonic() - began) * 1000)
    if error is not None:
        attempt.error_code, attempt.error_message = error.code, error.message


async def gate_for(registry: ProviderRegistry, provider: str) -> Gate:
    return await registry.breaker.allow(provider) if registry.breaker is not None else Gate.CLOSED


async def record_success(registry: ProviderRegistry, provider: str, gate: Gate) -> None:
    if registry.breaker is not None:
        await registry.breaker.record_success(provider, gate)


async def record_failure(registry: ProviderRegistry, provider: str) -> None:
    if registry.breaker is not None and await registry.breaker.record_failure(provider):
        log.warning("circuit for provider %s is open: its routes are skipped for a while", provider)
