"""Who the client is: the connection's peer, or, when the peer is a trusted proxy, the address it relayed.

``FORWARDED_ALLOW_IPS`` names the proxies (load balancers) whose ``X-Forwarded-For`` and ``X-Forwarded-Proto``
are believed; by default none, so a header sent by anyone else changes nothing. The app applies the setting
itself, with uvicorn's ``ProxyHeadersMiddleware`` built from ``Settings``, and ``conduit web`` turns uvicorn's
own proxy handling off (its default would trust 127.0.0.1): this one setting decides the address that per-IP
limits, sessions and the ``/metrics`` loopback rule see. From a trusted proxy, the client is the right-most
address in ``X-Forwarded-For`` that is not itself a trusted proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from litestar import Request
from litestar.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

UNKNOWN_CLIENT = "unknown"  # no peer address (a Unix socket): such clients share their per-IP limits


def trusted_proxies_middleware(trusted: Sequence[str]) -> list[Callable[[ASGIApp], ASGIApp]]:
    """The middleware that believes the trusted proxies' headers; none when no proxy is trusted."""
    if not trusted:
        return []
    hosts = list(trusted)

    def middleware(app: ASGIApp) -> ASGIApp:
        return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=hosts))

    return [middleware]


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client and request.client.host else UNKNOWN_CLIENT


def relayed_by_a_proxy(request: Request[Any, Any, Any]) -> bool:
    """Whether the request says it passed through a proxy (trusted or not)."""
    return "x-forwarded-for" in request.headers or "forwarded" in request.headers
