"""Reading the API's Server-Sent Event streams over real HTTP (httpx + httpx-sse)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.conftest import TestAccount


@dataclass
class Received:
    """What a stream delivered: its events (type, id, data) and how many comment lines (heartbeats) it had."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    ended: bool = False

    @property
    def types(self) -> list[str]:
        return [event for event, _, _ in self.events]

    @property
    def ids(self) -> list[str]:
        return [event_id for _, event_id, _ in self.events]


async def read_stream(
    client: httpx.AsyncClient,
    account: TestAccount,
    path: str,
    *,
    last_event_id: str | None = None,
    until: int | None = None,
    timeout: float = 60,
    received: Received | None = None,
) -> Received:
    """Read the stream at ``path`` until it ends (or ``until`` events arrived), within ``timeout``."""
    headers = dict(account.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    received = received if received is not None else Received()

    async def read() -> None:
        async with aconnect_sse(client, "GET", path, headers=headers, timeout=timeout) as source:
            assert source.response.status_code == 200, await source.response.aread()
            assert source.response.headers["content-type"].startswith("text/event-stream")
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue  # a heartbeat comment
                received.events.append((sse.event, sse.id, json.loads(sse.data)))
                if until is not None and len(received.events) >= until:
                    return
        received.ended = True

    await asyncio.wait_for(read(), timeout)
    return received
