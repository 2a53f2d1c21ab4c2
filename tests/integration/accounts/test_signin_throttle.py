"""The password throttle under attack: concurrent wrong passwords never get more checks than the budget, from one
client IP or from many, and a browser that signed in before keeps signing in through an attacker's burst.

Each attacker is a real client IP: the server sees connections from distinct loopback addresses (127.0.x.y)."""

from __future__ import annotations

import asyncio
from collections import Counter
from http.cookies import SimpleCookie

import httpx

from tests.harness import ApiServer
from tests.integration.accounts.conftest import BrowserFactory, PersonFactory

DEVICE_COOKIE = "conduit_device"
WRONG = "not the password 1"
BURST = 50
BUDGET = 5  # SIGNIN_MAX_FAILURES


def client_from(api: ApiServer, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.base_url, timeout=120, transport=httpx.AsyncHTTPTransport(local_address=ip))


async def wrong_passwords(clients: list[httpx.AsyncClient], email: str) -> Counter[tuple[int, str]]:
    """Send one wrong password per client, all at once; count the answers by status and error code."""
    body = {"email": email, "password": WRONG}
    answers = await asyncio.gather(*(client.post("/v1/auth/signin", json=body) for client in clients))
    return Counter((answer.status_code, answer.json()["error"]["code"]) for answer in answers)


ATTACK_OUTCOME = {(401, "invalid_credentials"): BUDGET, (429, "too_many_signin_attempts"): BURST - BUDGET}


async def test_concurrent_wrong_passwords_from_one_ip_are_checked_at_most_the_budget(
    person: PersonFactory, accounts_api: ApiServer
) -> None:
    someone = await person("burst-one-ip")
    async with client_from(accounts_api, "127.0.2.1") as attacker:
        assert await wrong_passwords([attacker] * BURST, someone.email) == ATTACK_OUTCOME
        locked = await attacker.post("/v1/auth/signin", json={"email": someone.email, "password": someone.password})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 60


async def test_concurrent_wrong_passwords_from_many_ips_are_checked_at_most_the_budget(
    person: PersonFactory, accounts_api: ApiServer
) -> None:
    someone = await person("burst-many-ips")
    attackers = [client_from(accounts_api, f"127.0.3.{n}") for n in range(1, BURST + 1)]
    try:
        assert await wrong_passwords(attackers, someone.email) == ATTACK_OUTCOME
    finally:
        await asyncio.gather(*(attacker.aclose() for attacker in attackers))


async def test_the_owners_browser_signs_in_during_an_attack_burst(
    person: PersonFactory, browser: BrowserFactory, accounts_api: ApiServer
) -> None:
    owner = await person("owner")  # signed in once: this browser holds a device cookie for the address
    assert (await owner.browser.post("/v1/auth/signout")).status_code == 204
    attackers = [client_from(accounts_api, f"127.0.4.{n}") for n in range(1, BURST + 1)]
    try:
        attack, during = await asyncio.gather(
            wrong_passwords(attackers, owner.email), owner.browser.signin(owner.email)
        )
    finally:
        await asyncio.gather(*(attacker.aclose() for attacker in attackers))
    assert attack == ATTACK_OUTCOME
    assert during.status_code == 200, during.text
    # Right after the burst, a browser that never signed in waits like the attackers ...
    stranger = browser()
    refused = await stranger.signin(owner.email)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_signin_attempts"
    # ... and the owner's browser still signs in, again and again.
    for _ in range(3):
        assert (await owner.browser.signin(owner.email)).status_code == 200
    assert (await owner.browser.get("/v1/account")).json()["email"] == owner.email


async def test_a_device_cookie_has_a_budget_of_its_own_for_its_own_address_only(
    person: PersonFactory, browser: BrowserFactory
) -> None:
    owner, neighbour = await person("device-owner"), await person("device-neighbour")
    cookie = owner.browser.http.cookies.get(DEVICE_COOKIE)
    assert cookie
    # Wrong passwords typed in the owner's browser use up that browser's budget ...
    for _ in range(BUDGET):
        assert (await owner.browser.signin(owner.email, WRONG)).status_code == 401
    assert (await owner.browser.signin(owner.email)).status_code == 429
    # ... not the address's: other browsers are unaffected.
    assert (await browser().signin(owner.email)).status_code == 200

    # The cookie names one address: for another one, its holder is any client.
    attacker = browser()
    for _ in range(BUDGET):
        assert (await attacker.signin(neighbour.email, WRONG)).status_code == 401
    assert (await owner.browser.signin(neighbour.email)).status_code == 429
    assert (await neighbour.browser.signin(neighbour.email)).status_code == 200
    # The cookie is what counts, wherever it is sent from; one that was tampered with is no cookie at all.
    genuine = neighbour.browser.http.cookies.get(DEVICE_COOKIE)
    assert genuine
    device_id, signature = genuine.split("~")[0].split(".")
    tampered = f"{device_id[:-1]}{'B' if device_id.endswith('A') else 'A'}.{signature}"
    for value, status in ((tampered, 429), (genuine, 200)):
        holder = browser()
        holder.http.cookies.set(DEVICE_COOKIE, value, path="/v1")
        assert (await holder.signin(neighbour.email)).status_code == status


async def test_the_device_cookie_is_http_only_strict_and_names_no_address(person: PersonFactory) -> None:
    someone = await person("device-cookie")
    response = await someone.browser.signin(someone.email)
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{DEVICE_COOKIE}=")]
    cookie = SimpleCookie(header)[DEVICE_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/v1"
    assert int(cookie["max-age"]) == 180 * 24 * 3600
    assert someone.email.split("@")[0] not in cookie.value
    # A browser that signs in to a second address keeps its entry for the first.
    other = await person("device-cookie-second")
    assert (await someone.browser.signin(other.email)).status_code == 200
    entries = someone.browser.http.cookies.get(DEVICE_COOKIE) or ""
    assert len(entries.split("~")) == 2
