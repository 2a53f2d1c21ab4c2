"""What a text or embedding model can do beyond its parameters: the promises the OpenAI-compatible API checks.

In the catalog, a model's ``capabilities`` table; a route whose upstream lacks some of them says so with its own
``capabilities`` table, which may only take away (``false``, a lower limit), never add::

    [[models]]
    id = "llama-3.1-8b-instruct"
    capabilities = { tools = true, parallel_tool_calls = true, json_mode = true, json_schema = true,
                     vision = false, logprobs = true, max_context = 131072, max_output = 4096, max_n = 4 }
    routes = [
      { provider = "together", model = "…" },
      { provider = "groq", model = "…", capabilities = { logprobs = false, max_n = 1 } },
    ]

Text models: ``tools`` (function calling), ``parallel_tool_calls`` (several calls in one answer), ``json_mode``
(``response_format`` ``json_object``), ``json_schema`` (``response_format`` ``json_schema``), ``vision`` (image
parts in messages), ``logprobs`` (``logprobs`` / ``top_logprobs``), ``max_context`` (tokens of prompt and answer),
``max_output`` (the most ``max_tokens`` may be; at most the ``max_tokens`` parameter's maximum, which it defaults
to), ``max_n`` (choices per request; 1 by default). Embedding models: ``dimensions`` (the vector size, required),
``custom_dimensions`` (whether a request may ask for fewer), ``max_inputs`` (inputs per request), ``max_context``
(tokens per input). Anything not declared is not offered: a request using it is refused with ``400`` naming the
field, and a request using what only some routes have is served by those routes only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

FLAGS = ("tools", "parallel_tool_calls", "json_mode", "json_schema", "vision", "logprobs", "custom_dimensions")
LIMITS = ("max_context", "max_output", "max_n", "dimensions", "max_inputs")
BY_KIND = {
    "text": ("tools", "parallel_tool_calls", "json_mode", "json_schema", "vision", "logprobs", "max_context",
             "max_output", "max_n"),
    "embedding": ("dimensions", "custom_dimensions", "max_inputs", "max_context"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Need:
    """One capability a request uses: ``capability`` (a flag, or a limit that must be at least ``amount``), and
    the request field that uses it (named by the refusal)."""

    capability: str
    param: str
    amount: int = 0


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = False
    parallel_tool_calls: bool = False
    json_mode: bool = False
    json_schema: bool = False
    vision: bool = False
    logprobs: bool = False
    max_context: int | None = None
    max_output: int | None = None
    max_n: int = 1
    dimensions: int | None = None
    custom_dimensions: bool = False
    max_inputs: int | None = None

    def has(self, need: Need) -> bool:
        value = getattr(self, need.capability)
        if need.capability in FLAGS:
            return bool(value)
        return value is None or value >= need.amount  # an undeclared limit does not limit

    def public(self, kind: str) -> dict[str, Any]:
        """What ``GET /v1/models`` shows: every capability of the model's kind."""
        return {name: getattr(self, name) for name in BY_KIND.get(kind, ())}


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """The model's capabilities, and those of each route that has fewer (by provider and upstream model)."""

    model: Capabilities = field(default_factory=Capabilities)
    narrowed: tuple[tuple[tuple[str, str], Capabilities], ...] = ()

    def of_route(self, provider: str, upstream_model: str) -> Capabilities:
        for key, capabilities in self.narrowed:
            if key == (provider, upstream_model):
                return capabilities
        return self.model


def parse_capabilities(
    raw: Any, routes: list[tuple[str, str, Any]], *, kind: str, max_tokens: float | None, where: str
) -> ModelCapabilities:
    """The ``capabilities`` of a model of ``kind`` and of its ``routes`` ((provider, upstream model, the route's
    table or None) each); ``max_tokens`` is the maximum of the model's ``max_tokens`` parameter, if any."""
    from shared.catalog import CatalogError

    if kind not in BY_KIND:
        if raw is not None or any(table is not None for _, _, table in routes):
            raise CatalogError(f"{where}: {kind} models have no capabilities table")
        return ModelCapabilities()
    model = _with(Capabilities(), raw or {}, kind, where=f"{where}: capabilities")
    if kind == "text":
        ceiling = int(max_tokens) if max_tokens is not None else None
        if model.max_output is None:
            model = dataclasses.replace(model, max_output=ceiling)
        elif ceiling is not None and model.max_output > ceiling:
            raise CatalogError(f"{where}: capabilities.max_output is above the max_tokens parameter's maximum")
    if kind == "embedding" and model.dimensions is None:
        raise CatalogError(f"{where}: embedding models declare capabilities.dimensions (the vector size)")
    narrowed = []
    for provider, upstream_model, table in routes:
        if table is None:
            continue
        route_where = f"{where} (route {provider}): capabilities"
        if isinstance(table, dict) and "dimensions" in table:
            raise CatalogError(f"{route_where}: the vector size is the model's, the same on every route")
        route = _with(model, table, kind, where=route_where)
        for name in BY_KIND[kind]:
            if _adds(getattr(model, name), getattr(route, name)):
                raise CatalogError(f"{route_where}: a route may only take capabilities away, not add {name!r}")
        narrowed.append(((provider, upstream_model), route))
    return ModelCapabilities(model, tuple(narrowed))


def _adds(model: Any, route: Any) -> bool:
    """Whether a route's value promises more than its model's."""
    if isinstance(model, bool):
        return bool(route) and not model
    return model is not None and route is not None and route > model


def _with(base: Capabilities, raw: Any, kind: str, *, where: str) -> Capabilities:
    from shared.catalog import CatalogError

    if not isinstance(raw, dict):
        raise CatalogError(f"{where} must be a table")
    allowed = BY_KIND[kind]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise CatalogError(f"{where}: unknown {unknown} for a {kind} model; known: {', '.join(allowed)}")
    for name, value in raw.items():
        if name in FLAGS and not isinstance(value, bool):
            raise CatalogError(f"{where}: {name} must be true or false")
        if name in LIMITS and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise CatalogError(f"{where}: {name} must be a positive whole number")
    return dataclasses.replace(base, **raw)
