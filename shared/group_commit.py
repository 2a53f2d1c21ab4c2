"""Many concurrent callers, one round trip: the group commit of a database, for Redis pipelines.

Each caller waits for its own result; while one batch is in flight, the calls that arrive meanwhile are
gathered into the next one. At low load a batch is one call. Used by the task enqueue (``shared.queue``) and
the rate-limit script (``shared.ratelimit``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """``execute(batch)`` answers every item of a batch, in order: a result, or an exception for that item.
    If it raises, every caller of that batch gets the exception."""

    def __init__(self, execute: Callable[[list[Item]], Awaitable[list[Result | Exception]]]) -> None:
        self._execute = execute
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)  # a caller that gives up does not break the batch

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
