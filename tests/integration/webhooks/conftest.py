"""Fixtures for the webhook tests: a receiver, an API and workers that may reach loopback URLs
(URL_GUARD_ALLOW_LOOPBACK=true, as a developer would set it), and a delivery runtime with a test clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.infra.urlguard import Resolver, UrlGuard
from shared.services import Services
from shared.settings import Settings
from shared.webhooks.delivery import WebhookRuntime
from tests.conftest import AccountFactory, TestAccount
from tests.harness import ApiServer, InProcessWorker, free_port
from tests.integration.webhooks.flows import canceled_task, only_delivery
from tests.integration.webhooks.receiver import Receiver


class ManualClock:
    """An injectable "now" that only moves when a test says so."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.current = start or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.current

    def advance(self, seconds: float) -> dt.datetime:
        self.current += dt.timedelta(seconds=seconds)
        return self.current


@pytest.fixture(scope="session")
def loopback_settings(env: dict[str, str]) -> Settings:
    return Settings.from_env({**env, "PORT": str(free_port()), "URL_GUARD_ALLOW_LOOPBACK": "true"})


@pytest.fixture(scope="session")
async def loopback_api(services: Services, loopback_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(loopback_settings) as server:
        yield server


@pytest.fixture
async def lclient(loopback_api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an API that accepts loopback webhook URLs."""
    async with httpx.AsyncClient(base_url=loopback_api.base_url, timeout=30) as http:
        yield http


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@dataclass(frozen=True)
class PendingDelivery:
    account: TestAccount
    task_id: str
    id: uuid.UUID


@pytest.fixture
async def pending(
    lclient: httpx.AsyncClient, make_account: AccountFactory, services: Services, receiver: Receiver
) -> PendingDelivery:
    """A new account's canceled task whose own webhook_url is the receiver: one delivery, not yet attempted."""
    account = await make_account()
    task_id = await canceled_task(lclient, account, webhook_url=receiver.url())
    return PendingDelivery(account, task_id, await only_delivery(services, task_id))


@pytest.fixture
async def wh_worker(services: Services, loopback_settings: Settings) -> AsyncIterator[InProcessWorker]:
    """A running worker that may deliver to loopback URLs."""
    await services.redis.flushdb()
    async with InProcessWorker(loopback_settings) as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    # A minute ahead of the database, so that deliveries the test creates next are already due.
    return ManualClock(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))


RuntimeFactory = Callable[..., WebhookRuntime]


@pytest.fixture
async def make_runtime(services: Services, clock: ManualClock) -> AsyncIterator[RuntimeFactory]:
    """Delivery runtimes driven by the test clock (no worker: the test calls ``deliver`` itself)."""
    clients: list[httpx.AsyncClient] = []

    def make(
        *, allow_loopback: bool = True, resolver: Resolver | None = None, timeout_s: float = 5, lease_s: float = 30
    ) -> WebhookRuntime:
        guard = UrlGuard(allow_loopback=allow_loopback, resolver=resolver)
        http = guard.client(timeout_s=timeout_s)
        clients.append(http)
        return WebhookRuntime(
            db=services.db, signer=services.signer, http=http, timeout_s=timeout_s, lease_s=lease_s, clock=clock
        )

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture(autouse=True)
async def no_leftover_deliveries(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Deliveries a test left pending must not be sent by later tests' workers to receivers that are gone."""
    yield
    if "services" in request.fixturenames:
        services: Services = request.getfixturevalue("services")
        await services.db.execute(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, locked_until = NULL "
            "WHERE status = 'pending'"
        )


def stub_resolver(answers: dict[str, list[str]]) -> Resolver:
    """A resolver whose answers a test controls (mutate ``answers`` to change DNS between calls)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError(f"no such host {host}")
        return list(answers[host])

    return resolve


def json_of(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()
