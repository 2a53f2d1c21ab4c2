"""A server span per HTTP request while tracing is on (``shared.infra.tracing``): OpenTelemetry's ASGI middleware,
through Litestar's OpenTelemetry integration. It joins the trace of the client's W3C ``traceparent`` header when
the request carries one. Spans are named by the route template (``GET /v1/tasks/{task_id}``), never the raw path
(a request no route matches: by its method alone).
Off, the app has no such middleware at all."""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Middleware, Receive, Scope, Send
from opentelemetry.trace import get_current_span

from shared.infra import tracing


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's name when it starts, before routing: the method alone (``_named_by_route`` completes it)."""
    return str(scope.get("method", "")), {}


def _named_by_route(app: ASGIApp) -> ASGIApp:
    """Once the request is routed: the server span is named by the method and the route template."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("path_template")
        if route:
            span = get_current_span()
            span.update_name(f"{scope.get('method', '')} {route}")
            span.set_attribute("http.route", str(route))
        await app(scope, receive, send)

    return middleware


def traced_requests() -> list[Middleware]:
    """The app's tracing middleware: none while tracing is off. Litestar runs OpenTelemetry's around the whole
    app (before routing); ``_named_by_route`` runs with the routed request."""
    provider = tracing.provider()
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig

    config = OpenTelemetryConfig(
        tracer_provider=provider,
        scope_span_details_extractor=_span_details,
        exclude_spans=["receive", "send"],  # one span per request, not one per ASGI message
    )
    return [config.middleware, _named_by_route]
