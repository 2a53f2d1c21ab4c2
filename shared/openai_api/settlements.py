"""Settlements of synchronous requests that run on their own, after the answer went out.

A chat completion is answered as soon as the upstream has answered; its settlement (the charge, the release
of the rest of the hold, the usage record: one statement) then runs in a background task of the process
(``shared.infra.background``), so the client does not wait for a database commit it has no use for. The hold
placed before the upstream call already keeps the balance from going below zero; the settlement only lowers
what is set aside to what was used.

What a client of this process sees stays consistent:

* ``settled(background, account_id)``: any request of that account other than a chat completion (balance,
  usage, ledger, the dashboard) first waits for the account's settlements still running here, so it reads them
  (``api.deps``). Another API process may show the hold for the few milliseconds a settlement takes.
* A hold refused for want of credits is retried once after the account's running settlements end
  (``shared.openai_api.chat.begin``): the unused part of a previous hold comes back first.
* At shutdown the process drains its background tasks before closing its database pool. A settlement that
  cannot finish (the database is gone) leaves its hold pending; the abandoned-hold sweep voids it: such a
  request is not charged, never charged twice.

A caller that must commit a request's settlement with a change of its own (a batch line's result: charged
exactly when its result is recorded, so a line that runs again after a crash is not charged twice) runs the
request inside ``collected()``: the request's settlements are then handed to it instead of running here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from shared.infra.background import BackgroundTasks
from shared.ledger.settlement import Settlement

T = TypeVar("T")


def _key(account_id: uuid.UUID) -> tuple[str, uuid.UUID]:
    return ("settlement", account_id)


def detach(background: BackgroundTasks, coro: Coroutine[Any, Any, T], account_id: uuid.UUID) -> asyncio.Task[T]:
    """Run the settlement ``coro`` to completion even if whoever awaits it is cancelled; ``settled`` waits
    for it."""
    return background.spawn(coro, name="request settlement", key=_key(account_id))


async def settled(background: BackgroundTasks, account_id: uuid.UUID, timeout_s: float = 5.0) -> bool:
    """Wait (at most ``timeout_s``) for the account's settlements running in this process. Returns whether
    there were any."""
    return await background.wait(_key(account_id), timeout_s)


_collecting: contextvars.ContextVar[list[Settlement] | None] = contextvars.ContextVar("settlements", default=None)


@contextlib.contextmanager
def collected() -> Iterator[list[Settlement]]:
    """Within the block (in this asyncio task), requests' settlements are appended to the list yielded instead of
    running: the caller commits them (``shared.ledger.settle_request_in``) with its own change."""
    into: list[Settlement] = []
    token = _collecting.set(into)
    try:
        yield into
    finally:
        _collecting.reset(token)


def collector() -> list[Settlement] | None:
    """Where settlements go instead of running (``collected``), if anywhere."""
    return _collecting.get()
