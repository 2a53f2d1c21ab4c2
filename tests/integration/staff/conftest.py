"""Fixtures of the staff tests: sessions of staff members and customers on the suite's API server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shared.services import Services
from tests.conftest import AccountFactory, TestAccount
from tests.harness import ApiServer
from tests.integration.staff.sessions import SessionClient, open_session

SessionFactory = Callable[..., Awaitable[tuple[TestAccount, SessionClient]]]


@pytest.fixture
async def signed_in(services: Services, api: ApiServer, make_account: AccountFactory) -> AsyncIterator[SessionFactory]:
    """``await signed_in(role, second_factor=True, credits="10")``: an account and a session of its person."""
    opened: list[SessionClient] = []

    async def make(
        role: str = "user", *, second_factor: bool = True, credits: str = "10"
    ) -> tuple[TestAccount, SessionClient]:
        account = await make_account(credits=credits, role=role)
        session = await open_session(services, api.base_url, account.id, second_factor=second_factor)
        opened.append(session)
        return account, session

    try:
        yield make
    finally:
        for session in opened:
            await session.http.aclose()
