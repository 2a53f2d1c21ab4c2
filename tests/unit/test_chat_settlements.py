"""A settlement that runs on its own (its client left) is waited for when the API process shuts down."""

from __future__ import annotations

import asyncio

from shared.openai_api import settlements


async def test_shutdown_waits_for_settlements_still_running() -> None:
    settled: list[str] = []

    async def settlement() -> None:
        await asyncio.sleep(0.2)
        settled.append("charged")

    settlements.detach(settlement())
    await settlements.drain(timeout_s=5)
    assert settled == ["charged"]


async def test_shutdown_does_not_wait_forever_for_a_stuck_settlement() -> None:
    stuck = settlements.detach(asyncio.sleep(60))
    started = asyncio.get_running_loop().time()
    await settlements.drain(timeout_s=0.1)
    assert asyncio.get_running_loop().time() - started < 5
    stuck.cancel()
