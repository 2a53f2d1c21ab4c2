"""Many concurrent callers, one round trip: the group commit of a database, for Redis pipelines.

Each caller waits for its own result; while one batch is in flight, the calls that arrive meanwhile are
gathered into the next one. At low load a batch is one call. Used by the task enqueue (``shared.infra.queue``),
the rate-limit script (``shared.ratelimits.limiter``), the billing of synchronous requests
(``shared.ledger.request_holds``), the task submits (``shared.tasks.creation``) and the worker's task claims,
completions and attempt records (``shared.tasks``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """``execute(batch)`` answers every item of a batch, in order: a result, or an exception for that item.
    If it raises, every caller of that batch gets the exception.

    With ``alone(item)``, a call that finds nothing under way (no batch in flight, no call waiting) runs
    ``alone`` itself, in the caller's task, instead of a batch of one: no task or futures at low load. It
    counts as the batch in flight: the calls that arrive meanwhile wait and go together when it ends."""

    def __init__(
        self,
        execute: Callable[[list[Item]], Awaitable[list[Result | Exception]]],
        alone: Callable[[Item], Awaitable[Result]] | None = None,
    ) -> None:
        self._execute = execute
        self._alone = alone
        self._alone_running = False
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _flushing(self) -> bool:
        return self._flusher is not None and not self._flusher.done()

    async def submit(self, item: Item) -> Result:
        if self._alone is not None and not self._alone_running and not self._pending and not self._flushing():
            self._alone_running = True
            try:
                return await self._alone(item)
            finally:
                self._alone_running = False
                if self._pending and not self._flushing():
                    self._flusher = asyncio.create_task(self._flush())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._alone_running and not self._flushing():
            self._flusher = asyncio.create_task(self._flush())
        # A caller that gives up cancels only its own future: its item still goes with the batch, whose flush
        # skips answering a future that is already done.
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._execute([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
