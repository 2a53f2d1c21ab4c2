"""When the API loses PostgreSQL (a restart of the server or of PgBouncer), requests answer 503
``database_unavailable`` with ``Retry-After``, which clients retry, never 500; the request changed nothing, and the
next request after the database is back succeeds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Iterator

import httpx
import pytest
from litestar import get, post
from litestar.params import FromPath, FromQuery

from api.deps import ServicesDep
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import wait_for
from tests.integration.helpers import submit
from tests.integration.http.test_unhandled_errors import Lines
from tests.integration.operating.test_operating import metric_sample
from tests.integration.proxy import proxied_api

WRITE_ROUTE = "/v1/test-database/slow-write/{account_id:uuid}"
PROBE = "/* lost-connection probe */"
UNAVAILABLE = {
    "error": {
        "type": "service_unavailable_error",
        "code": "database_unavailable",
        "message": "the database is unavailable; retry shortly",
        "param": None,
    }
}


@post(WRITE_ROUTE, include_in_schema=False, status_code=200)
async def slow_write(account_id: FromPath[uuid.UUID], sleep_s: FromQuery[float], services: ServicesDep) -> None:
    """A write, then a slow query, in one transaction: the connection can be cut between the two."""
    async with services.db.transaction() as conn:
        await conn.execute("UPDATE accounts SET billing_email = 'lost@example.com' WHERE id = $1", account_id)
        await conn.execute(f"SELECT pg_sleep($1) {PROBE}", sleep_s)


@get("/test-database/page", include_in_schema=False)
async def page_reading_the_database(services: ServicesDep) -> str:
    """A website page (not under /v1) that reads the database."""
    return str(await services.db.fetchval("SELECT 1"))


@pytest.fixture
def logged() -> Iterator[Lines]:
    lines = Lines()
    logger = logging.getLogger("conduit.api")
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)


async def _unavailable_count(http: httpx.AsyncClient, method: str, route: str) -> float:
    text = (await http.get("/metrics")).text
    return metric_sample(text, "conduit_http_database_unavailable_total", method=method, route=route)


async def test_a_connection_terminated_mid_request_answers_503_and_the_write_is_rolled_back(
    settings: Settings, services: Services, make_account: AccountFactory, logged: Lines
) -> None:
    account = await make_account()
    route = WRITE_ROUTE.replace(":uuid", "")
    async with (
        proxied_api(settings, slow_write) as (server, _, _),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        before = await _unavailable_count(http, "POST", route)
        pending = http.post(f"/v1/test-database/slow-write/{account.id}", params={"sleep_s": 30})

        async def terminate() -> int:
            # The API's backend, blocked in the probe's pg_sleep, after its UPDATE: kill it as a restart would.
            killed = await services.db.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' "
                "AND query LIKE $1",
                f"%{PROBE}",
            )
            return int(killed)

        request = asyncio.ensure_future(pending)
        await wait_for(terminate, timeout=20, what="the probe's query to run, to terminate its backend")
        response = await request

        assert response.status_code == 503, response.text
        assert response.json() == UNAVAILABLE
        assert response.headers["retry-after"] == "2"
        assert await _unavailable_count(http, "POST", route) == before + 1
        # the UPDATE did not commit: the request changed nothing
        assert await services.db.fetchval("SELECT billing_email FROM accounts WHERE id = $1", account.id) is None

        # the pool replaces the dead connection: the next request goes through
        again = await http.post(f"/v1/test-database/slow-write/{account.id}", params={"sleep_s": 0})
        assert again.status_code == 200, again.text
        written = await services.db.fetchval("SELECT billing_email FROM accounts WHERE id = $1", account.id)
        assert written == "lost@example.com"

    # one warning line, without a stack trace, and nothing logged as a crash
    assert [line for line in logged.lines if line["level"] == "ERROR"] == []
    warnings = [line for line in logged.lines if line["level"] == "WARNING"]
    assert len(warnings) == 1, warnings
    path = f"/v1/test-database/slow-write/{account.id}"
    assert str(warnings[0]["message"]).startswith(f"database unavailable on POST {path}: ")
    assert "exception" not in warnings[0]


async def _balance(http: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await http.get("/v1/account", headers=account.headers)


async def test_while_the_database_is_unreachable_requests_answer_503_and_change_nothing(
    settings: Settings, make_account: AccountFactory, logged: Lines
) -> None:
    account = await make_account(credits="10")
    async with (
        proxied_api(settings, page_reading_the_database) as (server, pg, _),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
    ):
        up = await _balance(http, account)
        assert up.status_code == 200, up.text
        before = await _unavailable_count(http, "POST", "/v1/tasks")

        await pg.stop()  # PgBouncer restarting: open connections cut, new ones refused
        for _ in range(3):
            down = await _balance(http, account)
            assert down.status_code == 503, down.text
            assert down.json() == UNAVAILABLE
            assert down.headers["retry-after"] == "2"
        page = await http.get("/test-database/page")
        assert page.status_code == 503  # the website answers with its error page, and the same Retry-After
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "2"
        submitted = await submit(http, account, "sdxl", prompt="a lighthouse at dusk")
        assert submitted.status_code == 503, submitted.text
        assert submitted.json() == UNAVAILABLE

        await pg.start()
        back = await wait_for(
            lambda: _ok(_balance(http, account)), timeout=30, what="the account to answer again after the restart"
        )
        assert back.json()["balance"] == up.json()["balance"]  # no hold was placed
        tasks = await http.get("/v1/tasks", headers=account.headers)
        assert tasks.status_code == 200, tasks.text
        assert tasks.json()["data"] == []  # no task was created
        assert await _unavailable_count(http, "POST", "/v1/tasks") == before + 1

    assert [line for line in logged.lines if line["level"] == "ERROR"] == []
    assert all("exception" not in line for line in logged.lines if line["level"] == "WARNING")


async def _ok(pending: Awaitable[httpx.Response]) -> httpx.Response | None:
    response = await pending
    return response if response.status_code == 200 else None
