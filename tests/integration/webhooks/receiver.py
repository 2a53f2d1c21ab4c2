"""A webhook receiver for tests: a real HTTP server (uvicorn) in the test process that records every request
and answers from a script of responses (status, headers, or hang until released)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.harness import AsgiServer, Started, free_port


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False  # wait until the receiver is released (or stopped) before answering


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    def verify(self, secret: str) -> Any:
        """The payload, if the signature verifies with ``secret`` (raises WebhookVerificationError if not)."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


class Receiver(Started):
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()  # set by every request
        self.server = AsgiServer(self.app, self.port, name="webhook receiver", interface="asgi3")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order; then with ``default``."""
        self.script.extend(replies)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(Received(scope["path"], headers, body, time.monotonic()))
        self.arrived.set()
        reply = self.script.popleft() if self.script else self.default
        if reply.hang:
            await self.release.wait()
        raw_headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def wait_requests(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {count} webhook request(s); got {len(self.requests)}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.5))
        return self.requests

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        self.release.set()
        await self.server.stop(force=True)
