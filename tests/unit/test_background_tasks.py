"""The process's background tasks: kept, logged, drained at shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.infra.background import BackgroundTasks


async def test_work_still_running_at_shutdown_is_awaited_including_work_it_spawns() -> None:
    background = BackgroundTasks()
    finished: list[str] = []

    async def later() -> None:
        await asyncio.sleep(0.05)
        finished.append("later")

    async def work() -> None:
        await asyncio.sleep(0.05)
        background.spawn(later(), name="spawned while draining")
        finished.append("work")

    task = background.spawn(work(), name="work")
    async with asyncio.timeout(10):
        await background.drain(timeout_s=5)
    assert finished == ["work", "later"]
    assert task.done() and not task.cancelled()
    assert background.running() == []


async def test_an_exception_in_a_background_task_is_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    background = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("the settlement query failed")

    async def fine() -> str:
        return "ok"

    with caplog.at_level(logging.ERROR, logger="shared.infra.background"):
        failing = background.spawn(broken(), name="request settlement")
        healthy = background.spawn(fine(), name="mail")
        await background.drain(timeout_s=5)
    assert failing.done() and healthy.result() == "ok"
    [record] = [r for r in caplog.records if r.name == "shared.infra.background"]
    assert "request settlement" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "the settlement query failed"


async def test_shutdown_with_a_hung_task_ends_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    background = BackgroundTasks()
    never = asyncio.Event()
    done = asyncio.Event()

    async def quick() -> None:
        done.set()

    hung = background.spawn(never.wait(), name="hung SMTP send")
    background.spawn(quick(), name="quick")
    with caplog.at_level(logging.WARNING, logger="shared.infra.background"):
        async with asyncio.timeout(10):  # fails the test instead of hanging it
            await background.drain(timeout_s=0.2)
    assert done.is_set()
    assert hung.cancelled()  # not left behind to run against closed connections
    assert "hung SMTP send" in caplog.text and "quick" not in caplog.text
    assert background.running() == []


async def test_loops_stop_after_the_work_and_finish_their_last_step() -> None:
    background = BackgroundTasks()
    events: list[str] = []

    async def flusher() -> None:
        try:
            await asyncio.Event().wait()  # runs until cancelled
        finally:
            events.append("final flush")

    async def settlement() -> None:
        await asyncio.sleep(0.05)
        events.append("settled")

    background.spawn_loop(flusher(), name="metrics flusher")
    background.spawn(settlement(), name="request settlement")
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await background.drain(timeout_s=5)
    assert events == ["settled", "final flush"]  # the last flush sees what the work counted
    assert background.running() == []
