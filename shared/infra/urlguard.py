"""The URL guard: URLs that users hand us (webhook targets today, input images later) may only reach the
public internet.

A URL passes when it is absolute ``http``/``https`` without credentials, its port is one of
``ALLOWED_PORTS``, and **every** address its host resolves to is a public unicast address: no loopback,
private (RFC 1918, ``fc00::/7``), link-local (``169.254/16``, ``fe80::/10``), cloud metadata
(``169.254.169.254``, ``fd00:ec2::254``), carrier-grade NAT (``100.64/10``), multicast, unspecified,
reserved or documentation ranges, and the IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
6to4, NAT64) are judged by that IPv4 address.

The check runs when a URL is registered and again for every connection: ``UrlGuard.client()`` builds an
httpx client whose network backend resolves the host, checks the answers and connects to an address it
checked (TLS still verifies the certificate against the host name), so a DNS answer that changed since
registration cannot reach an internal service. The client never follows redirects and ignores proxy
environment variables; ``read_capped`` bounds how much of a response is read.

``URL_GUARD_ALLOW_LOOPBACK=true`` (development and tests only) lets URLs reach loopback addresses
(``127.0.0.0/8``, ``::1``, ``localhost``) on any port. Nothing else is ever allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.auto import AutoBackend

from shared.infra.errors import InvalidInput

IPAddress: typing.TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: typing.TypeAlias = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_PORTS = frozenset({80, 443, 8080, 8443})
MAX_URL_LENGTH = 2048
DEFAULT_RESOLVE_TIMEOUT_S = 5.0

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlNotAllowed(InvalidInput):
    """The URL is malformed or would reach something other than the public internet."""

    code = "url_not_allowed"


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    url: str
    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why this address may not be reached (a phrase for the error message), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = refusal(embedded)
            return f"{inner} (embedded in an IPv6 address)" if inner else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def parse_url(url: object, *, param: str = "url") -> ParsedUrl:
    """The syntax part of the check (no DNS): an absolute http(s) URL with a host and no credentials.

    Raises ``InvalidInput`` (code ``invalid_input``); address and port refusals are ``UrlNotAllowed``."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"{param} must be an absolute http(s) URL", param=param)
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"{param} must be at most {MAX_URL_LENGTH} characters", param=param)
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput(f"{param} must not contain whitespace or control characters", param=param)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{param} is not a valid URL ({exc})", param=param) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{param} must be an absolute http(s) URL", param=param)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{param} must not contain credentials (user:password@)", param=param)
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return ParsedUrl(url=url, scheme=parts.scheme, host=parts.hostname, port=port)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class UrlGuard:
    """Checks user-supplied URLs; ``client()`` makes HTTP requests that only reach checked addresses."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        resolver: Resolver | None = None,
        allowed_ports: Iterable[int] = ALLOWED_PORTS,
        resolve_timeout_s: float = DEFAULT_RESOLVE_TIMEOUT_S,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.resolver = resolver or system_resolver
        self.allowed_ports = frozenset(allowed_ports)
        self.resolve_timeout_s = resolve_timeout_s

    async def check(self, url: object, *, param: str = "url") -> CheckedUrl:
        """Parse, resolve and check a URL; raises ``UrlNotAllowed`` with a message naming the problem."""
        parsed = parse_url(url, param=param)
        addresses = await self.addresses(parsed.host, parsed.port, param=param)
        return CheckedUrl(url=parsed.url, host=parsed.host, port=parsed.port, addresses=addresses)

    async def addresses(self, host: str, port: int, *, param: str = "url") -> tuple[IPAddress, ...]:
        """Every address ``host`` resolves to, all of them checked; at least one."""
        literal = _literal(host)
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            try:
                async with asyncio.timeout(self.resolve_timeout_s):
                    answers = await self.resolver(host, port)
            except (OSError, TimeoutError, UnicodeError) as exc:
                raise UrlNotAllowed(f"{param}: the host {host!r} could not be resolved", param=param) from exc
            found = []
            for answer in answers:
                ip = _literal(answer.split("%", 1)[0])
                if ip is not None and ip not in found:
                    found.append(ip)
            if not found:
                raise UrlNotAllowed(f"{param}: the host {host!r} could not be resolved", param=param)
        all_loopback = all(self._loopback(ip) for ip in found)
        for ip in found:
            if self.allow_loopback and self._loopback(ip):
                continue
            reason = refusal(ip)
            if reason is not None:
                subject = host if literal is not None else f"{host} resolves to {ip}, which"
                raise UrlNotAllowed(
                    f"{param}: {subject} is {reason}; only public internet addresses are allowed", param=param
                )
        if port not in self.allowed_ports and not (self.allow_loopback and all_loopback):
            ports = ", ".join(str(p) for p in sorted(self.allowed_ports))
            raise UrlNotAllowed(f"{param}: port {port} is not allowed; use one of {ports}", param=param)
        return tuple(found)

    @staticmethod
    def _loopback(ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    def client(self, *, timeout_s: float, user_agent: str = "Conduit") -> httpx.AsyncClient:
        """An httpx client for user-supplied URLs: guarded connections, no redirects, no proxies."""
        return httpx.AsyncClient(
            transport=GuardedTransport(self),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
        )


class GuardedBackend(AsyncNetworkBackend):
    """An httpcore network backend that resolves and checks the host itself, then connects to a checked
    address. The connection keeps the host name for TLS (SNI and certificate checks) and the Host header."""

    def __init__(self, guard: UrlGuard) -> None:
        self.guard = guard
        self.inner = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> AsyncNetworkStream:
        addresses = await self.guard.addresses(host.strip("[]"), port)
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> AsyncNetworkStream:  # pragma: no cover - never asked for: the client has no uds
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, guard: UrlGuard) -> None:
        super().__init__(trust_env=False)
        # httpx has no parameter for the network backend; the pool it built is replaced by the same pool
        # with ours (the arguments are httpx's defaults for a transport without proxy).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(guard),
        )


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of a streamed response body (undecoded). Returns (body, truncated)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        take = chunk[: limit - size]
        chunks.append(take)
        size += len(take)
        if size >= limit:
            return b"".join(chunks), True
    return b"".join(chunks), False
