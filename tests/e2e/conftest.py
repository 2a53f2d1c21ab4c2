"""Browser tests: Debian's Chromium driven by Playwright (no browser download) against a running Conduit.

The suite's own API server, worker, simulated Stripe with its hosted Checkout page, and mail in the local
outbox. One browser for the session; each test gets a fresh context (cookies). Screenshots of the pages
the flows visit are written to ``.conduit/test/screenshots`` (``E2E_SCREENSHOTS`` overrides).

Without a Chromium (``CHROMIUM_PATH``, default ``/usr/bin/chromium``) or the ``playwright`` package, the
tests are skipped with one line saying how to enable them; ``make test`` installs Debian's ``chromium``
when run as root with apt available.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.services import Services
from shared.settings import Settings
from tests.harness import TEST_DATA_DIR, ApiServer, AsgiServer, InProcessWorker, free_port, wait_for
from tests.integration.accounts.oauth_provider import OAuthProvider
from tests.simulators.stripe_checkout import HostedCheckoutStripe

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
HOW_TO_ENABLE = "browser tests skipped: no Chromium at {path}; enable them with `apt-get install chromium` (as root)"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STRIPE_KEY = "sk_test_conduit_browser"
WEBHOOK_SECRET = "whsec_conduit_browser"
SCREENSHOTS = Path(os.environ.get("E2E_SCREENSHOTS", TEST_DATA_DIR / "screenshots"))

try:
    from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]


def chromium_missing() -> str | None:
    if async_playwright is None:
        return "browser tests skipped: the playwright package is missing (make install)"
    if not os.access(CHROMIUM, os.X_OK):
        return HOW_TO_ENABLE.format(path=CHROMIUM)
    return None


# Without a browser the tests of this folder are not collected, and the run ends with one line saying why.
MISSING = chromium_missing()
collect_ignore_glob = ["test_*.py"] if MISSING else []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MISSING:
        terminalreporter.write_line(MISSING, yellow=True)


@pytest.fixture(scope="session")
async def stripe_checkout() -> AsyncIterator[HostedCheckoutStripe]:
    async with HostedCheckoutStripe(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, port=free_port()) as sim:
        yield sim


@pytest.fixture(scope="session")
async def oauth_sim() -> AsyncIterator[OAuthProvider]:
    """Google and GitHub, simulated: their consent screen signs in whoever ``sign_in_as`` names."""
    provider = OAuthProvider()
    async with AsgiServer(provider.app(), provider.port, name="OAuth provider", lifespan="on"):
        yield provider


@pytest.fixture(scope="session")
def web_settings(env: dict[str, str], stripe_checkout: HostedCheckoutStripe, oauth_sim: OAuthProvider) -> Settings:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stripe_checkout.webhook_url = f"{base}/v1/billing/stripe/webhook"
    return Settings.from_env(
        {
            **env,
            **oauth_sim.env(),
            "PORT": str(port),
            "PUBLIC_BASE_URL": base,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": stripe_checkout.base_url,
            "AUTH_IP_RATE_PER_MIN": "100000",
            "SIGNUP_REWARD_CREDITS": "25",
            "SIGNUP_REWARD_VALIDITY_DAYS": "30",
        }
    )


@pytest.fixture(scope="session")
async def site(services: Services, web_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(web_settings) as server:
        yield server


@pytest.fixture
async def site_worker(services: Services, web_settings: Settings) -> AsyncIterator[InProcessWorker]:
    await services.redis.flushdb()
    async with InProcessWorker(web_settings) as running:
        yield running


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if MISSING:  # pragma: no cover - the tests are not collected then
        pytest.skip(MISSING)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Tab:
    """One page of a browser context, with what the tests check on every page: no console error (a CSP
    violation is one), and screenshots saved as artifacts."""

    def __init__(self, page: Page, base_url: str, name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.name = name
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # failed loads are judged by their response (below), where the URL is known
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(message.text)

    def _response(self, response: Any) -> None:
        if response.url.startswith(self.base_url) and response.status >= 400:
            self.problems.append(f"{response.status} {response.url}")

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.base_url + path)

    async def shot(self, label: str) -> None:
        await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    await ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        await ctx.close()


async def only_this_site(context: BrowserContext, base_url: str) -> list[str]:
    """Block every request of the context to another host; the list fills with the URLs that were refused."""
    elsewhere: list[str] = []

    async def route(route: Route) -> None:
        if route.request.url.startswith(f"{base_url}/"):
            await route.continue_()
        else:  # never fetched: recorded, for the test to fail on
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", route)
    return elsewhere


async def outbox_mail(outbox: Path, to: str, subject: str) -> str:
    """The text of the newest mail to ``to`` with ``subject`` written to the local outbox."""

    def read() -> str | None:
        for path in sorted(outbox.glob("*.eml"), reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == to and subject in str(message["Subject"]):
                body = message.get_body(preferencelist=("plain",))
                return str(body.get_content()) if body is not None else ""
        return None

    async def find() -> str | None:
        return await asyncio.to_thread(read)

    text: str = await wait_for(find, timeout=20, what=f"mail {subject!r} to {to}")
    return text


def first_link(text: str) -> str:
    found = re.search(r"https?://\S+", text)
    assert found, text
    return found.group(0)
