"""The URL guard's decisions, with a resolver the test controls (no network)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from shared.infra.errors import InvalidInput
from shared.infra.urlguard import Resolver, UrlGuard, UrlNotAllowed, parse_url, refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.255.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("169.254.0.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%2", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT (shared) address"),
        ("100.127.255.254", "a carrier-grade NAT (shared) address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("::ffff:192.168.1.1", "a private address (embedded in an IPv6 address)"),
        ("2002:a9fe:a9fe::1", "a cloud metadata address (embedded in an IPv6 address)"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "a loopback address (embedded in an IPv6 address)"),  # NAT64 of 127.0.0.1
        ("192.0.2.10", "a private address"),  # documentation
        ("240.0.0.1", "a private address"),  # reserved
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("NXDOMAIN")
        return answers[host]

    return resolve


async def test_every_answer_must_be_public() -> None:
    guard = UrlGuard(resolver=resolver({"mixed.example": ["93.184.216.34", "::1"], "ok.example": ["93.184.216.34"]}))
    with pytest.raises(UrlNotAllowed, match=r"mixed\.example resolves to ::1, which is a loopback address"):
        await guard.check("https://mixed.example/")
    checked = await guard.check("https://ok.example:8443/path?q=1")
    assert (checked.host, checked.port, [str(a) for a in checked.addresses]) == ("ok.example", 8443, ["93.184.216.34"])


async def test_loopback_setting_allows_loopback_on_any_port_and_nothing_else() -> None:
    answers = {"localhost": ["127.0.0.1", "::1"], "intranet": ["10.0.0.7"]}
    guard = UrlGuard(allow_loopback=True, resolver=resolver(answers))
    assert (await guard.check("http://localhost:5173/hook")).port == 5173
    assert (await guard.check("http://[::1]:9/")).port == 9
    with pytest.raises(UrlNotAllowed, match="private"):
        await guard.check("http://intranet/")
    with pytest.raises(UrlNotAllowed, match="port 25 is not allowed"):
        await guard.check("http://8.8.8.8:25/")
    strict = UrlGuard(resolver=resolver(answers))
    with pytest.raises(UrlNotAllowed, match="loopback"):
        await strict.check("http://localhost:8080/hook")


async def test_allowed_ports() -> None:
    guard = UrlGuard()
    for url in ("http://8.8.8.8/", "https://8.8.8.8/", "http://8.8.8.8:8080/", "https://8.8.8.8:8443/"):
        await guard.check(url)
    for port in (22, 25, 6379, 5432, 8000):
        with pytest.raises(UrlNotAllowed, match=f"port {port} is not allowed"):
            await guard.check(f"http://8.8.8.8:{port}/")


async def test_unresolvable_and_slow_resolution_are_refused() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["93.184.216.34"]

    with pytest.raises(UrlNotAllowed, match="could not be resolved"):
        await UrlGuard(resolver=resolver({})).check("http://nowhere.example/")
    with pytest.raises(UrlNotAllowed, match="could not be resolved"):
        await UrlGuard(resolver=slow, resolve_timeout_s=0.05).check("http://slow.example/")


@pytest.mark.parametrize(
    "url",
    ["", "example.com/hook", "file:///etc/passwd", "gopher://x/", "http://", "http://a b/", "http://u@8.8.8.8/", 42],
)
def test_malformed_urls(url: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_url(url, param="webhook_url")
    assert caught.value.param == "webhook_url"
    assert not isinstance(caught.value, UrlNotAllowed)


def test_parsed_defaults() -> None:
    assert parse_url("https://Example.COM/x").host == "example.com"
    assert parse_url("https://example.com/x").port == 443
    assert parse_url("http://example.com/x").port == 80
