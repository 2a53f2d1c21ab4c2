"""Signed-in people for the staff tests: a browser-like client holding a session cookie and its CSRF token,
opened straight in the session store (the sign-in flow itself has its own tests)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shared.services import Services


class SessionClient:
    """An httpx client with a person's session: the cookie, and ``X-CSRF-Token`` on every change."""

    def __init__(self, http: httpx.AsyncClient, csrf: str, account_id: uuid.UUID) -> None:
        self.http = http
        self.csrf = csrf
        self.account_id = account_id

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, headers={"X-CSRF-Token": self.csrf}, **kwargs)

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers={"X-CSRF-Token": self.csrf})


async def open_session(
    services: Services, base_url: str, account_id: uuid.UUID, *, second_factor: bool = True
) -> SessionClient:
    token, session = await services.sessions.create(
        account_id, ip="127.0.0.1", user_agent="staff tests", second_factor=second_factor
    )
    http = httpx.AsyncClient(base_url=base_url, timeout=30, cookies={"conduit_session": token})
    return SessionClient(http, session.csrf_token, account_id)
