"""Request ids, HTTP metrics, the access log and the ``/metrics`` route.

Every response carries ``X-Request-ID`` (the client's, when it sent a sane one, or a new one); logs written
while serving the request carry it too (``shared.infra.logs``). Each request is counted and timed by method, route
template (``/v1/tasks/{task_id}``, never the raw path) and status, and written to the access log
(``api.access_log``) when that is on."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import AccessEntry, current_entry
from api.access_log import write as write_access_line
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


def observability_middleware(*, access_log: bool) -> Callable[[ASGIApp], ASGIApp]:
    """Request ids and HTTP metrics for every request, and its access line unless ``access_log`` is off."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            rid = _incoming_id(scope)
            token = request_id.set(rid)
            entry = AccessEntry() if access_log else None
            entry_token = current_entry.set(entry)
            started = time.perf_counter()
            status = 500

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = list(message.get("headers", []))
                    headers.append((b"x-request-id", rid.encode()))
                    message["headers"] = headers
                elif entry is not None and message["type"] == "http.response.body":
                    entry.bytes_sent += len(message.get("body", b""))
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = str(scope.get("path_template") or "unmatched")
                method = str(scope.get("method", ""))
                if entry is not None:
                    write_access_line(entry, method, route, status, elapsed)  # with the request id, still set
                current_entry.reset(entry_token)
                request_id.reset(token)
                METRICS.inc("conduit_http_requests", {"method": method, "route": route, "status": status})
                METRICS.observe("conduit_http_request_duration_seconds", {"method": method, "route": route}, elapsed)

        return middleware

    return wrap


@get("/metrics", tags=["health"], include_in_schema=False)
async def metrics(request: Request[Any, Any, Any], services: ServicesDep) -> Response[Any]:
    """Prometheus metrics of every process. ``METRICS_TOKEN`` set: it is the bearer token; unset: loopback only,
    never a request relayed by a proxy (a proxy on this machine would otherwise make every client loopback)."""
    client = None if relayed_by_a_proxy(request) else client_ip(request)
    if not metrics_allowed(services.settings.operating.metrics_token, request.headers.get("authorization"), client):
        return error_response(404, "not_found_error", "route_not_found", "not found")
    body = await render(services.db, services.redis, services.providers)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
