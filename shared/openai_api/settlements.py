"""Settlements of synchronous requests that run on their own, after the answer went out.

A chat completion is answered as soon as the upstream has answered; its settlement (the charge, the release
of the rest of the hold, the usage record: one statement) then runs in a task of its own, so the client does
not wait for a database commit it has no use for. The hold placed before the upstream call already keeps the
balance from going below zero; the settlement only lowers what is set aside to what was used.

What a client of this process sees stays consistent:

* ``settled(account_id)``: any request of that account other than a chat completion (balance, usage, ledger,
  the dashboard) first waits for the account's settlements still running here, so it reads them
  (``api.deps``). Another API process may show the hold for the few milliseconds a settlement takes.
* A hold refused for want of credits is retried once after the account's running settlements end
  (``shared.openai_api.chat.begin``): the unused part of a previous hold comes back first.
* ``drain``: the process waits for running settlements before closing its database pool at shutdown. One that
  cannot finish (the database is gone) leaves its hold pending; the abandoned-hold sweep voids it: such a
  request is not charged, never charged twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from functools import partial
from typing import Any

_running: set[asyncio.Task[Any]] = set()
_by_account: dict[uuid.UUID, set[asyncio.Task[Any]]] = {}


def detach(coro: Coroutine[Any, Any, Any], account_id: uuid.UUID | None = None) -> asyncio.Task[Any]:
    """Run ``coro`` to completion even if whoever awaits it is cancelled; with ``account_id``, ``settled``
    waits for it."""
    task = asyncio.get_running_loop().create_task(coro)
    _running.add(task)
    task.add_done_callback(_running.discard)
    if account_id is not None:
        _by_account.setdefault(account_id, set()).add(task)
        task.add_done_callback(partial(_forget, account_id))
    return task


def _forget(account_id: uuid.UUID, task: asyncio.Task[Any]) -> None:
    tasks = _by_account.get(account_id)
    if tasks is not None:
        tasks.discard(task)
        if not tasks:
            del _by_account[account_id]


async def settled(account_id: uuid.UUID, timeout_s: float = 5.0) -> bool:
    """Wait (at most ``timeout_s``) for the account's settlements running in this process. Returns whether
    there were any."""
    tasks = _by_account.get(account_id)
    if not tasks:
        return False
    await asyncio.wait(set(tasks), timeout=timeout_s)
    return True


async def drain(timeout_s: float = 15) -> None:
    """Wait for every settlement still running, before the process closes its database pool."""
    if _running:
        await asyncio.wait(set(_running), timeout=timeout_s)
