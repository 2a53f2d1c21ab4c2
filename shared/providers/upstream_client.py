"""The process's HTTP client for upstream APIs: httpx's API on aiohttp's connection pool, with a direct path
for the JSON calls every adapter makes.

``httpx.AsyncClient.request`` merges the client's URL, headers, cookies and query parameters into a new request,
runs the auth and redirect machinery and stores any cookie the upstream sets; on the JSON calls to an upstream
none of that applies (no redirects, no auth flow, and cookies must not travel from one customer's call to the
next). ``UpstreamClient.call`` builds the ``httpx.Request`` itself and sends it straight through the transport:
about half of the client's CPU per call (bench/RESULTS.md). Everything else (streams, output downloads with
their redirects) uses the ordinary client methods.

``UpstreamTransport`` is ``httpx_aiohttp.AiohttpTransport`` with what it recomputes per request kept instead:
the aiohttp timeout for each httpx timeout, and the parsed URL of each upstream endpoint (httpx's and yarl's).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx
import msgspec
from aiohttp import ClientSession, ClientTimeout
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions
from yarl import URL

_encode = msgspec.json.encode


@lru_cache(maxsize=256)
def _aiohttp_timeout(connect: float | None, read: float | None, pool: float | None) -> ClientTimeout:
    return ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


@lru_cache(maxsize=1024)
def _parsed_url(url: str) -> URL:
    return URL(url)


@lru_cache(maxsize=1024)
def _httpx_url(url: str) -> httpx.URL:
    """httpx parses and normalises every URL it is given (about a tenth of a call's CPU); an upstream's
    endpoints are a handful of strings."""
    return httpx.URL(url)


class UpstreamTransport(AiohttpTransport):
    """aiohttp under httpx, for plain HTTP(S) upstreams (no proxy): the same requests and answers as
    ``AiohttpTransport``, without re-parsing the URL and rebuilding the timeout of every request."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxy is not None:
            return await super().handle_async_request(request)
        if not isinstance(self.client, ClientSession):
            self.client = self.get_client()
        session = self.client
        timeout = request.extensions.get("timeout", {})
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream
            request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
        with map_aiohttp_exceptions():
            response = await session.request(
                request.method,
                _parsed_url(str(request.url)),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=_aiohttp_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )


class UpstreamClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` plus ``call``: one JSON request sent straight through the transport."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, user_agent: str, **kwargs: Any) -> None:
        super().__init__(transport=transport, headers={"User-Agent": user_agent}, **kwargs)
        self._direct = transport
        self._base_headers = (("user-agent", user_agent),)
        self._default_timeout = self.timeout.as_dict()

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: Any = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send ``body`` as JSON (None: no body) and read the whole answer. ``headers`` are sent with the
        client's User-Agent. Raises httpx's timeout and transport errors."""
        content = b"" if body is None else _encode(body)
        request = httpx.Request(
            method,
            _httpx_url(url),
            headers=[*self._base_headers, *headers.items()],
            content=content,
            extensions={"timeout": timeout.as_dict() if timeout is not None else self._default_timeout},
        )
        response = await self._direct.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
