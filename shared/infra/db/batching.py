"""Statements that serve many callers at once (the database side of a group commit, ``shared.infra.group_commit``).

A batch statement is a transaction of its own: when PostgreSQL refuses it (a deadlock or serialization failure
after a couple of retries, or any other error of the statement) it changed nothing, and its items can then be
served one by one (``refusable``). A large batch goes in chunks of at most ``MAX_BATCH`` items, run
concurrently (``in_chunks``). A process keeps one batcher per database pool and event loop (``PerPool``). Used
by the billing of synchronous requests, the task submits' group commit, and the worker's task claims, completions
and attempt records.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import asyncpg

if TYPE_CHECKING:
    from shared.infra.db import Database

Item = TypeVar("Item")
Result = TypeVar("Result")
Batcher = TypeVar("Batcher")

MAX_BATCH = 32  # items per statement (ledger_place_holds takes at most 64: one subtransaction each)
BATCH_RETRIES = 2  # after a deadlock or serialization failure, before serving the items one by one


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError)


async def refusable(run: Callable[[], Awaitable[Result]], counts: MutableMapping[str, int]) -> Result | None:
    """Run one batch statement: its outcome, or None when PostgreSQL refused it (it then changed nothing) and the
    items are to be served one by one. Any other error (the outcome unknown, e.g. the connection lost) is raised.
    ``counts`` gains its ``retries`` and ``fallbacks`` (for tests and benchmarks)."""
    for attempt in range(BATCH_RETRIES + 1):
        try:
            return await run()
        except asyncpg.PostgresError as exc:
            if _retryable(exc) and attempt < BATCH_RETRIES:
                counts["retries"] = counts.get("retries", 0) + 1
                await asyncio.sleep(0.002 * (attempt + 1))
                continue
            counts["fallbacks"] = counts.get("fallbacks", 0) + 1
            return None
    raise AssertionError("unreachable")


async def in_chunks(
    items: list[Item], run: Callable[[list[Item]], Awaitable[list[Result | Exception]]]
) -> list[Result | Exception]:
    """``run`` over chunks of at most MAX_BATCH items, concurrently; a chunk that raises is the error of each
    of its items only (the other chunks' outcomes are kept)."""
    chunks = [items[start : start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)]
    outcomes = await asyncio.gather(*(run(chunk) for chunk in chunks), return_exceptions=True)
    results: list[Result | Exception] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            results.extend([outcome] * len(chunk))
        else:
            results.extend(outcome)
    return results


class PerPool(Generic[Batcher]):
    """``per_pool(db)``: the one ``make(db)`` of ``db``'s pool in the running event loop, made again when either
    changed (a batcher holds futures of one loop and connections of one pool; the tests start several)."""

    def __init__(self, make: Callable[[Database], Batcher]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Database, tuple[Any, asyncio.AbstractEventLoop, Batcher]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, db: Database) -> Batcher:
        loop = asyncio.get_running_loop()
        made = self._made.get(db)
        if made is None or made[0] is not db.pool or made[1] is not loop:
            made = self._made[db] = (db.pool, loop, self._make(db))
        return made[2]
