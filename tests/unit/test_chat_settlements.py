"""A settlement that runs on its own (its client left) is waited for when the API process shuts down."""

from __future__ import annotations

import asyncio
import uuid

from shared.infra.background import BackgroundTasks
from shared.openai_api import settlements


async def test_shutdown_waits_for_settlements_still_running() -> None:
    background = BackgroundTasks()
    settled: list[str] = []

    async def settlement() -> None:
        await asyncio.sleep(0.2)
        settled.append("charged")

    settlements.detach(background, settlement(), uuid.uuid4())
    await background.drain(timeout_s=5)
    assert settled == ["charged"]


async def test_shutdown_does_not_wait_forever_for_a_stuck_settlement() -> None:
    background = BackgroundTasks()
    stuck = settlements.detach(background, asyncio.sleep(60), uuid.uuid4())
    started = asyncio.get_running_loop().time()
    await background.drain(timeout_s=0.1)
    assert asyncio.get_running_loop().time() - started < 5
    stuck.cancel()


async def test_an_accounts_reads_wait_for_its_own_settlements_only() -> None:
    background = BackgroundTasks()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    release = asyncio.Event()
    done: list[str] = []

    async def settlement() -> None:
        await release.wait()
        done.append("mine")

    settlements.detach(background, settlement(), mine)
    assert await settlements.settled(background, theirs) is False  # nothing of theirs: no wait at all
    asyncio.get_running_loop().call_soon(release.set)
    assert await settlements.settled(background, mine) is True
    assert done == ["mine"]
    assert await settlements.settled(background, mine) is False  # settled: nothing left to wait for
