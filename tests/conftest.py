"""Fixtures shared by the whole suite. See ``tests/harness.py`` for what runs where."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.accounts.service import create_account
from shared.ledger.invariants import check_ledger
from shared.ledger.money import parse_credits
from shared.services import Services
from shared.settings import Settings
from tests.harness import (
    TEST_DATA_DIR,
    ApiServer,
    InProcessWorker,
    TestServers,
    flush_redis,
    free_port,
    fresh_storage,
    reset_database,
    start_servers,
    test_env,
)
from tests.simulators import Simulators


@pytest.fixture(scope="session")
def servers() -> Iterator[TestServers]:
    servers = start_servers()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def storage_dir() -> Path:
    return fresh_storage(TEST_DATA_DIR)


@pytest.fixture(scope="session")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def env(servers: TestServers, api_port: int, storage_dir: Path, simulators: Simulators) -> dict[str, str]:
    return test_env(servers, port=api_port, storage_dir=storage_dir, **simulators.env())


@pytest.fixture(scope="session")
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture(scope="session")
async def prepared(servers: TestServers) -> None:
    await reset_database(servers.database_url)
    await flush_redis(servers.redis_url)


@pytest.fixture(scope="session")
async def services(prepared: None, settings: Settings) -> AsyncIterator[Services]:
    services = await Services.start(settings, db_pool_max=40)
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture(scope="session")
async def api(services: Services, settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(settings) as server:
        yield server


@pytest.fixture
async def client(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        yield http


@pytest.fixture
async def worker(services: Services, settings: Settings) -> AsyncIterator[InProcessWorker]:
    """A running in-process worker; the queue is emptied first so earlier tests' jobs do not leak in."""
    await services.redis.flushdb()
    async with InProcessWorker(settings) as running:
        yield running


@dataclass(frozen=True)
class TestAccount:
    id: uuid.UUID
    email: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


AccountFactory = Callable[..., Awaitable[TestAccount]]


@pytest.fixture
def make_account(services: Services) -> AccountFactory:
    async def make(credits: str = "10", role: str = "user") -> TestAccount:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        created = await create_account(services.db, email=email, credits=parse_credits(credits), role=role)
        return TestAccount(id=created.account_id, email=email, key=created.api_key.secret)

    return make


@pytest.fixture(autouse=True)
async def ledger_invariants(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After every test that touched the database, the money invariants must hold for every account."""
    yield
    if "services" not in request.fixturenames:
        return
    services: Services = request.getfixturevalue("services")
    problems = await check_ledger(services.db)
    assert problems == [], f"ledger invariants violated: {problems}"


# -- provider simulators ----------------------------------------------------------------------


@pytest.fixture(scope="session")
async def simulators() -> AsyncIterator[Simulators]:
    """One simulator per upstream protocol, for the whole session (their URLs are in every test's env)."""
    async with Simulators.create() as sims:
        yield sims


@pytest.fixture
def sims(simulators: Simulators) -> Simulators:
    """The simulators, with no calls, jobs, files or scripted faults left from earlier tests."""
    simulators.reset()
    return simulators
