"""Fixtures for the account tests: a real SMTP server, a simulated Google/GitHub OAuth provider, and an API
server configured to use both (its own port and settings, so the rest of the suite is unaffected)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.accounts.devices import DeviceCookies
from shared.accounts.sessions import SessionStore
from shared.accounts.signup import AuthDeps
from shared.infra.mail import Mailer
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, AsgiServer, TestServers, free_port, test_env
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.accounts.oauth_provider import OAuthProvider

PASSWORD = "correct horse 42"


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="session")
async def oauth_provider() -> AsyncIterator[OAuthProvider]:
    provider = OAuthProvider()
    async with AsgiServer(provider.app(), provider.port, name="OAuth provider", lifespan="on"):
        yield provider


@pytest.fixture(scope="session")
def accounts_settings(
    servers: TestServers, storage_dir: Path, mailbox: Mailbox, oauth_provider: OAuthProvider
) -> Settings:
    port = free_port()
    env = test_env(
        servers,
        port=port,
        storage_dir=storage_dir,
        **mailbox.env(),
        **oauth_provider.env(),
        AUTH_IP_RATE_PER_MIN="100000",  # every test comes from 127.0.0.1; the IP limit has its own test
        SIGNUP_REWARD_CREDITS="25",
        SIGNUP_REWARD_VALIDITY_DAYS="30",
        ALLOWED_ORIGINS="https://dashboard.conduit.test",
    )
    return Settings.from_env(env)


@pytest.fixture(scope="session")
async def accounts_api(services: Services, accounts_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(accounts_settings) as server:
        yield server


@pytest.fixture
def auth_deps(services: Services, accounts_settings: Settings) -> AuthDeps:
    """The account services wired like the accounts API (same SMTP server), for tests below the HTTP layer."""
    return AuthDeps(
        db=services.db,
        mailer=Mailer(accounts_settings.mail, services.background),
        limiter=services.limiter,
        sessions=SessionStore(services.redis, accounts_settings.auth),
        settings=accounts_settings.auth,
        devices=DeviceCookies(accounts_settings.signing_key()),
    )


class Browser:
    """A person's browser: a cookie jar, and the CSRF token of its session sent on every change."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60)
        self.csrf: str | None = None

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.csrf and method not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def signin(self, email: str, password: str = PASSWORD) -> httpx.Response:
        response = await self.http.post("/v1/auth/signin", json={"email": email, "password": password})
        if response.status_code == 200:
            self.csrf = response.json()["csrf_token"]
        return response

    def session_cookie(self) -> str | None:
        return self.http.cookies.get("conduit_session")

    async def aclose(self) -> None:
        await self.http.aclose()


BrowserFactory = Callable[[], Browser]


@pytest.fixture
async def browser(accounts_api: ApiServer) -> AsyncIterator[BrowserFactory]:
    opened: list[Browser] = []

    def open_browser() -> Browser:
        opened.append(Browser(accounts_api.base_url))
        return opened[-1]

    try:
        yield open_browser
    finally:
        for b in opened:
            await b.aclose()


def new_email(tag: str = "person") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class Person:
    email: str
    password: str
    account_id: uuid.UUID
    browser: Browser


PersonFactory = Callable[..., Awaitable[Person]]


@pytest.fixture
def person(browser: BrowserFactory, mailbox: Mailbox, services: Services) -> PersonFactory:
    """Sign up through the API, follow the verification mail, and sign in: a person with a session."""

    async def make(tag: str = "person", password: str = PASSWORD) -> Person:
        email = new_email(tag)
        b = browser()
        signup = await b.http.post(
            "/v1/auth/signup", json={"email": email, "password": password, "age_confirmed": True}
        )
        assert signup.status_code == 202, signup.text
        mail = await mailbox.wait(email, "Confirm your email")
        verified = await b.http.get("/v1/auth/verify-email", params={"token": mail.token()})
        assert verified.status_code == 200, verified.text
        signed_in = await b.signin(email, password)
        assert signed_in.status_code == 200, signed_in.text
        account_id = await services.db.fetchval("SELECT id FROM accounts WHERE email = $1", email)
        return Person(email, password, account_id, b)

    return make
