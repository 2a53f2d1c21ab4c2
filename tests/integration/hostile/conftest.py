"""An API server for the hostile-input tests, configured so that hostile input reaches the code behind every
route: sign-in throttles far above what the corpus sends, a simulated Stripe (billing answers instead of 503),
and a worker (image generations finish instead of timing out). The callers: nobody, an API key and a session
with its CSRF token, all of an admin (who reaches every route)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from shared.accounts.service import create_account
from shared.accounts.sessions import SessionStore
from shared.ledger.money import parse_credits
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, InProcessWorker, free_port
from tests.simulators.stripe import StripeSimulator

STRIPE_KEY = "sk_test_conduit_hostile"
WEBHOOK_SECRET = "whsec_conduit_hostile"


@pytest.fixture(scope="session")
async def hostile_stripe() -> AsyncIterator[StripeSimulator]:
    async with StripeSimulator(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, port=free_port()) as sim:
        yield sim


@pytest.fixture(scope="session")
def hostile_settings(env: dict[str, str], hostile_stripe: StripeSimulator) -> Settings:
    port = free_port()
    return Settings.from_env(
        {
            **env,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "AUTH_IP_RATE_PER_MIN": "1000000",
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": hostile_stripe.base_url,
            # event streams (GET /v1/events) close soon, so that probes reading to the end get their answer
            "EVENTS_MAX_STREAM_S": "2",
        }
    )


@pytest.fixture(scope="session")
async def hostile_api(services: Services, hostile_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(hostile_settings) as server:
        yield server


@pytest.fixture(scope="module")
async def hostile_worker(services: Services, hostile_settings: Settings) -> AsyncIterator[InProcessWorker]:
    async with InProcessWorker(hostile_settings) as running:
        yield running


@dataclass(frozen=True)
class Caller:
    name: str
    headers: tuple[tuple[bytes, bytes], ...]


async def callers(services: Services, settings: Settings) -> list[Caller]:
    """Nobody, and a new admin's API key and session."""
    created = await create_account(
        services.db, email=f"hostile-{uuid.uuid4().hex[:12]}@example.com", credits=parse_credits("50"), role="admin"
    )
    token, session = await SessionStore(services.redis, settings.auth).create(
        created.account_id, ip="127.0.0.1", user_agent="hostile"
    )
    return [
        Caller("nobody", ()),
        Caller("key", ((b"Authorization", f"Bearer {created.api_key.secret}".encode()),)),
        Caller(
            "session",
            ((b"Cookie", f"conduit_session={token}".encode()), (b"X-CSRF-Token", session.csrf_token.encode())),
        ),
    ]
