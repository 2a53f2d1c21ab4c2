"""Request ids, HTTP metrics and the ``/metrics`` route.

Every response carries ``X-Request-ID`` (the client's, when it sent a sane one, or a new one); logs written
while serving the request carry it too (``shared.infra.logs``). Each request is counted and timed by method, route
template (``/v1/tasks/{task_id}``, never the raw path) and status."""

from __future__ import annotations

import re
import time
from typing import Any

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ServicesDep
from api.errors import error_response
from api.proxies import client_ip, relayed_by_a_proxy
from shared.infra.ids import uuid7
from shared.infra.logs import request_id
from shared.infra.metrics import METRICS
from shared.infra.metrics.exposition import metrics_allowed, render

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.match(text):
                return text
    return uuid7().hex


def observability_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            route = str(scope.get("path_template") or "unmatched")
            method = scope.get("method", "")
            METRICS.inc("conduit_http_requests", {"method": method, "route": route, "status": status})
            METRICS.observe(
                "conduit_http_request_duration_seconds",
                {"method": method, "route": route},
                time.perf_counter() - started,
            )

    return middleware


@get("/metrics", tags=["health"], include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    """Prometheus metrics of every process. ``METRICS_TOKEN`` set: it is the bearer token; unset: loopback only,
    never a request relayed by a proxy (a proxy on this machine would otherwise make every client loopback)."""
    client = None if relayed_by_a_proxy(request) else client_ip(request)
    if not metrics_allowed(services.settings.operating.metrics_token, request.headers.get("authorization"), client):
        return error_response(404, "not_found_error", "route_not_found", "not found")
    body = await render(services.db, services.redis, services.providers)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
