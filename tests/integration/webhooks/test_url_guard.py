"""The URL guard at registration, at submit and again at send time."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from shared.infra.urlguard import UrlGuard
from shared.services import Services
from shared.webhooks.delivery import deliver
from shared.webhooks.endpoints import create_endpoint as create_endpoint_row
from tests.conftest import AccountFactory
from tests.integration.helpers import balance
from tests.integration.webhooks.conftest import RuntimeFactory, stub_resolver
from tests.integration.webhooks.flows import IMAGE, canceled_task, delivery, only_delivery
from tests.integration.webhooks.receiver import Receiver

FORBIDDEN = [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:8080/hook", "localhost resolves to 127.0.0.1, which is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://10.0.0.1/hook", "10.0.0.1 is a private address"),
    ("http://192.168.1.20/hook", "192.168.1.20 is a private address"),
    ("http://172.16.5.4/hook", "172.16.5.4 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://169.254.10.10/hook", "169.254.10.10 is a link-local address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is a carrier-grade NAT (shared) address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
    ("http://[fc00::1]/hook", "fc00::1 is a private address"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1 is a private address (embedded in an IPv6 address)"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address (embedded in an IPv6 address)"),
    ("http://2130706433/hook", "2130706433 resolves to 127.0.0.1, which is a loopback address"),
    ("http://8.8.8.8:22/hook", "port 22 is not allowed; use one of 80, 443, 8080, 8443"),
    ("http://no-such-host.invalid/hook", "the host 'no-such-host.invalid' could not be resolved"),
]


@pytest.mark.parametrize(("url", "why"), FORBIDDEN)
async def test_forbidden_endpoint_urls_are_refused_at_registration(
    url: str, why: str, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    response = await client.post("/v1/webhooks/endpoints", json={"url": url}, headers=account.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "url_not_allowed"
    assert error["param"] == "url"
    assert why in error["message"]
    listed = await client.get("/v1/webhooks/endpoints", headers=account.headers)
    assert listed.json()["data"] == []


@pytest.mark.parametrize(("url", "why"), FORBIDDEN)
async def test_forbidden_task_webhook_urls_are_refused_at_submit(
    url: str, why: str, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account(credits="10")
    body = {"model": "sdxl", "input": IMAGE, "webhook_url": url}
    response = await client.post("/v1/tasks", json=body, headers=account.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("url_not_allowed", "webhook_url")
    assert why in error["message"]
    assert (await client.get("/v1/tasks", headers=account.headers)).json()["data"] == []
    assert await balance(client, account) == (Decimal("10"), Decimal("0"))  # nothing held


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "url must be an absolute http(s) URL"),
        ("/relative/hook", "url must be an absolute http(s) URL"),
        ("http://user:secret@example.com/hook", "url must not contain credentials (user:password@)"),
        ("http://example.com/ho ok", "url must not contain whitespace or control characters"),
        ("http://example.com:99999/", "url is not a valid URL (Port out of range 0-65535)"),
    ],
)
async def test_malformed_urls_are_invalid_input(
    url: str, message: str, client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    response = await client.post("/v1/webhooks/endpoints", json={"url": url}, headers=account.headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_input",
        "message": message,
        "param": "url",
    }


async def test_a_hostname_resolving_to_a_private_address_is_refused() -> None:
    guard = UrlGuard(resolver=stub_resolver({"hooks.example.com": ["93.184.216.34", "10.1.2.3"]}))
    with pytest.raises(Exception, match=r"hooks.example.com resolves to 10.1.2.3, which is a private address"):
        await guard.check("https://hooks.example.com/in")  # one bad answer among good ones is enough
    allowed = UrlGuard(resolver=stub_resolver({"hooks.example.com": ["93.184.216.34"]}))
    assert (await allowed.check("https://hooks.example.com/in")).port == 443


async def test_loopback_needs_the_explicit_setting(lclient: httpx.AsyncClient, make_account: AccountFactory) -> None:
    """The API started with URL_GUARD_ALLOW_LOOPBACK=true accepts loopback (any port), still nothing else."""
    account = await make_account()
    for url in ("http://127.0.0.1:9/hook", "http://localhost:5005/hook", "http://[::1]:7000/"):
        response = await lclient.post("/v1/webhooks/endpoints", json={"url": url}, headers=account.headers)
        assert response.status_code == 201, response.text
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://100.64.0.1/"):
        response = await lclient.post("/v1/webhooks/endpoints", json={"url": url}, headers=account.headers)
        assert response.status_code == 400, response.text


async def test_the_guard_runs_again_at_send_time_when_dns_changed(
    make_account: AccountFactory, services: Services, make_runtime: RuntimeFactory, lclient: httpx.AsyncClient
) -> None:
    """Registered while the name pointed to a public address; at send time it points to the metadata service."""
    account = await make_account()
    dns = {"hooks.customer.example": ["93.184.216.34"]}
    registering = UrlGuard(resolver=stub_resolver(dns))
    await create_endpoint_row(services.db, registering, account.id, url="http://hooks.customer.example/in")
    delivery_id = await only_delivery(services, await canceled_task(lclient, account))
    dns["hooks.customer.example"] = ["169.254.169.254"]
    outcome = await deliver(make_runtime(allow_loopback=False, resolver=stub_resolver(dns)), delivery_id)
    assert outcome.next_attempt_at is not None  # a failed attempt; DNS may be fixed before the next one
    [attempt] = (await delivery(lclient, account, delivery_id))["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused by the URL guard: url: hooks.customer.example resolves to 169.254.169.254, which is a cloud "
        "metadata address; only public internet addresses are allowed"
    )


async def test_loopback_is_refused_at_send_time_without_the_setting(
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    lclient: httpx.AsyncClient,
) -> None:
    account = await make_account()
    delivery_id = await only_delivery(services, await canceled_task(lclient, account, webhook_url=receiver.url()))
    await deliver(make_runtime(allow_loopback=False), delivery_id)
    assert receiver.requests == []  # no connection was made
    [attempt] = (await delivery(lclient, account, delivery_id))["attempts"]
    assert "127.0.0.1 is a loopback address" in attempt["error"]


async def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    lclient: httpx.AsyncClient,
) -> None:
    """The name is resolved once, by the guard; the request goes to that address and still says its name."""
    account = await make_account()
    dns = {"receiver.test": ["127.0.0.1"]}
    url = f"http://receiver.test:{receiver.port}/named"
    await create_endpoint_row(
        services.db, UrlGuard(allow_loopback=True, resolver=stub_resolver(dns)), account.id, url=url
    )
    delivery_id = await only_delivery(services, await canceled_task(lclient, account))
    await deliver(make_runtime(resolver=stub_resolver(dns)), delivery_id)
    [request] = receiver.requests
    assert request.path == "/named"
    assert request.headers["host"] == f"receiver.test:{receiver.port}"
    assert (await delivery(lclient, account, delivery_id))["status"] == "delivered"
