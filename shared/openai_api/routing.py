"""Routing a synchronous request (no task): which routes may serve it, and calling them with the circuit breaker,
retries and fallbacks of a task run (``shared.providers.routing.serve``).

Which routes, per model (``choose_routes``): the usable routes (provider known, credentials set) whose
capabilities cover what the request uses (``shared.catalog.capabilities``), then the request's ``provider``
preferences, as OpenRouter takes them::

    "provider": {"order": ["groq", "together"],   # these first, in this order
                 "allow_fallbacks": true,          # then the model's other routes in catalog order (false: none)
                 "ignore": ["deepinfra"],          # never these
                 "only": ["groq", "together"]}     # only these

Request-level fallbacks (``models: [...]``, ``call_candidates``): the request's model first, then each fallback
model in turn when every route of the one before failed, refused the request or was unavailable.

Failures come out as domain errors the API maps to OpenAI's statuses: ``InvalidInput`` (400, the upstream refused
the request), ``UpstreamFailed`` (502, every route failed), ``ModelUnavailable`` (503, no route to try).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.catalog import Model, Route
from shared.catalog.capabilities import Need
from shared.infra.errors import InvalidInput, ModelUnavailable, UpstreamFailed
from shared.infra.ids import uuid7
from shared.providers import ProviderRegistry
from shared.providers.base import GenerationRequest, Provider
from shared.providers.routing import RequestRefused, RoutesExhausted, serve

log = logging.getLogger(__name__)

T = TypeVar("T")
PREFERENCE_FIELDS = frozenset({"order", "allow_fallbacks", "ignore", "only"})


class UpstreamRefused(InvalidInput):
    """The upstream refused the request itself (invalid for that model, content policy)."""


@dataclass(frozen=True, slots=True)
class ProviderPreferences:
    order: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    ignore: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None


def parse_preferences(raw: Any) -> ProviderPreferences | None:
    """The ``provider`` field (``InvalidInput`` naming the part that is wrong or not supported)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("provider must be an object", param="provider")
    unknown = sorted(set(raw) - PREFERENCE_FIELDS)
    if unknown:
        supported = ", ".join(sorted(PREFERENCE_FIELDS))
        raise InvalidInput(f"Conduit does not support provider.{unknown[0]} (supported: {supported})",
                           param=f"provider.{unknown[0]}")  # fmt: skip
    names: dict[str, tuple[str, ...] | None] = {}
    for key in ("order", "ignore", "only"):
        value = raw.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            raise InvalidInput(f"provider.{key} must be a list of provider names", param=f"provider.{key}")
        names[key] = tuple(value) if value is not None else None
    allow = raw.get("allow_fallbacks", True)
    if not isinstance(allow, bool):
        raise InvalidInput("provider.allow_fallbacks must be true or false", param="provider.allow_fallbacks")
    return ProviderPreferences(names["order"] or (), allow, names["ignore"] or (), names["only"])


def choose_routes(
    registry: ProviderRegistry, model: Model, needs: Sequence[Need], preferences: ProviderPreferences | None
) -> list[Route]:
    """The routes that may serve the request, in the order to try them. ``InvalidInput`` when capabilities or
    preferences leave none (call it for a model with usable routes)."""
    usable = registry.usable_routes(model)
    capable = [route for route in usable if all(_route_has(model, route, need) for need in needs)]
    if not capable:
        need = next(n for n in needs if not any(_route_has(model, route, n) for route in usable))
        providers = ", ".join(route.provider for route in usable)
        raise InvalidInput(
            f"no available provider of {model.id!r} ({providers}) supports {need.capability} right now",
            param=need.param,
        )
    if preferences is None:
        return capable
    chosen = [route for route in capable if route.provider not in preferences.ignore]
    if preferences.only is not None:
        chosen = [route for route in chosen if route.provider in preferences.only]
    first = [route for name in preferences.order for route in chosen if route.provider == name]
    rest = [route for route in chosen if route not in first]
    if first:
        chosen = first + rest if preferences.allow_fallbacks else first
    elif not preferences.allow_fallbacks:
        chosen = chosen[:1]
    if not chosen:
        names = ", ".join(route.provider for route in capable)
        raise InvalidInput(
            f"the provider preferences leave no route of {model.id!r} that can serve this request (it has: {names})",
            param="provider",
        )
    return chosen


def _route_has(model: Model, route: Route, need: Need) -> bool:
    return model.capabilities.of_route(route.provider, route.upstream_model).has(need)


def with_routes(model: Model, routes: Sequence[Route]) -> Model:
    """The model served through ``routes`` only (what ``serve`` tries)."""
    return model if tuple(routes) == model.routes else dataclasses.replace(model, routes=tuple(routes))


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


C = TypeVar("C")


async def call_candidates(
    registry: ProviderRegistry,
    candidates: Sequence[C],
    target: Callable[[C], tuple[Model, dict[str, Any]]],
    call: Callable[[Provider, GenerationRequest], Awaitable[T]],
    *,
    budget_s: float,
) -> tuple[T, str, C]:
    """``call_routes`` on each candidate (``target`` gives its model and parameters) until one serves the request,
    within one budget. Returns (the result, the provider, the candidate that served). The last candidate's error
    is raised when none does."""
    ends = time.monotonic() + budget_s
    for position, candidate in enumerate(candidates):
        model, params = target(candidate)
        try:
            result, provider = await call_routes(registry, model, params, call, budget_s=ends - time.monotonic())
        except (UpstreamRefused, UpstreamFailed, ModelUnavailable) as exc:
            if position == len(candidates) - 1 or time.monotonic() >= ends:
                raise
            log.warning("model %s could not serve the request (%s): trying the next model", model.id, exc.code)
            continue
        return result, provider, candidate
    raise AssertionError("no candidates")
