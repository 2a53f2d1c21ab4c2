"""shared.infra.group_commit: batches while one is in flight; with ``alone``, a call at low load runs by itself."""

from __future__ import annotations

import asyncio

import pytest

from shared.infra.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()

    async def _run(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1

    async def execute(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await self._run()
        return [ValueError(n) if n < 0 else n * 10 for n in items]

    async def run_alone(self, item: int) -> int:
        self.alone.append(item)
        await self._run()
        if item < 0:
            raise ValueError(item)
        return item * 10


async def test_without_alone_a_lone_call_is_a_batch_of_one() -> None:
    rec = Recorder()
    rec.release.set()
    commit: GroupCommit[int, int] = GroupCommit(rec.execute)
    assert await commit.submit(1) == 10
    assert rec.batches == [[1]]


async def test_a_lone_call_runs_alone_and_the_calls_meanwhile_go_together_after_it() -> None:
    rec = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(rec.execute, alone=rec.run_alone)
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    others = [asyncio.create_task(commit.submit(n)) for n in (2, -3, 4)]
    await asyncio.sleep(0.01)
    assert rec.alone == [1] and rec.batches == []  # the others wait for the call in flight
    rec.release.set()
    assert await first == 10
    results = await asyncio.gather(*others, return_exceptions=True)
    assert results[0] == 20 and isinstance(results[1], ValueError) and results[2] == 40
    assert rec.batches == [[2, -3, 4]]
    assert rec.most_in_flight == 1
    assert await commit.submit(5) == 50  # idle again: alone
    assert rec.alone == [1, 5]


@pytest.mark.parametrize("how", ["raises", "cancelled"])
async def test_the_waiting_calls_go_even_when_the_lone_call_fails(how: str) -> None:
    rec = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(rec.execute, alone=rec.run_alone)
    first = asyncio.create_task(commit.submit(-1))
    await asyncio.sleep(0)
    second = asyncio.create_task(commit.submit(2))
    await asyncio.sleep(0)
    if how == "cancelled":
        first.cancel()
    else:
        rec.release.set()
    with pytest.raises(asyncio.CancelledError if how == "cancelled" else ValueError):
        await first
    rec.release.set()
    assert await asyncio.wait_for(second, 1) == 20
    assert rec.batches == [[2]]


@pytest.mark.parametrize("item", [3, -3])  # answered with a result, or with an error nobody reads
async def test_a_caller_that_gives_up_leaves_its_batch_going(item: int) -> None:
    rec = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(rec.execute)
    callers = [asyncio.create_task(commit.submit(n)) for n in (1, item, 4)]
    await asyncio.sleep(0.01)
    assert rec.batches == [[1, item, 4]] and rec.in_flight == 1
    callers[1].cancel()
    rec.release.set()
    assert await asyncio.wait_for(asyncio.gather(callers[0], callers[2]), 1) == [10, 40]
    with pytest.raises(asyncio.CancelledError):
        await callers[1]
    assert await commit.submit(5) == 50  # the next batch goes as usual
