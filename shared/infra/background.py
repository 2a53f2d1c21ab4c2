"""The background tasks of a process: started with a name, kept, logged, and ended at shutdown.

Two kinds:

* work that outlives whatever started it: a request's settlement, a mail, the enqueue of a webhook delivery,
  the database side of a CSV export, an API key's last-use stamp (``spawn``). ``wait(key)`` waits for the
  running work spawned under ``key`` (the settlements of one account);
* loops that run as long as the process: the key-invalidation listener, the metrics flusher, the webhook
  outbox listener, the worker's heartbeat (``spawn_loop``).

The registry keeps a strong reference to every task (the event loop keeps only weak ones, so an unreferenced
task can vanish mid-run) and logs the exception of one that fails, which would otherwise be lost. ``drain``
runs at shutdown, before the connections close: it waits for the work (at most ``timeout_s``), cancels what
is still running after that, then cancels the loops and gives them a moment for their last step (the
metrics flusher's final flush). ``shared.services.Services`` owns the process's registry and drains it when
it closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from functools import partial
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

LOOP_STOP_S = 5.0  # how long a cancelled loop (or late work) may take to finish its cleanup at shutdown


class BackgroundTasks:
    def __init__(self) -> None:
        self._work: set[asyncio.Task[Any]] = set()
        self._loops: set[asyncio.Task[Any]] = set()
        self._by_key: dict[Hashable, set[asyncio.Task[Any]]] = {}

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str, key: Hashable | None = None) -> asyncio.Task[T]:
        """Run ``coro`` in a task of its own, to completion even if whoever awaits it is cancelled. With ``key``,
        ``wait(key)`` waits for it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._work.add(task)
        if key is not None:
            self._by_key.setdefault(key, set()).add(task)
        task.add_done_callback(partial(self._ended, key))
        return task

    def spawn_loop(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run a loop that lasts as long as the process; ``drain`` cancels it (after the work has ended)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._loops.add(task)
        task.add_done_callback(partial(self._ended, None))
        return task

    def running(self) -> list[str]:
        """The names of the tasks still running, work and loops."""
        return sorted(task.get_name() for task in self._work | self._loops)

    async def wait(self, key: Hashable, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) for the work running under ``key``. Returns whether there was any."""
        tasks = self._by_key.get(key)
        if not tasks:
            return False
        await asyncio.wait(set(tasks), timeout=timeout_s)
        return True

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: wait for the work, including work spawned meanwhile, for at most ``timeout_s``; cancel
        what is left, then the loops, and wait up to ``LOOP_STOP_S`` for them to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._work and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._work), timeout=left)
        late = set(self._work)
        if late:
            names = ", ".join(sorted(task.get_name() for task in late))
            log.warning("shutdown: %d background task(s) still running after %.0f s are cancelled: %s",
                        len(late), timeout_s, names)  # fmt: skip
        stopping = late | self._loops
        for task in stopping:
            task.cancel()
        if stopping:
            await asyncio.wait(stopping, timeout=LOOP_STOP_S)

    def _ended(self, key: Hashable | None, task: asyncio.Task[Any]) -> None:
        self._work.discard(task)
        self._loops.discard(task)
        if key is not None:
            tasks = self._by_key.get(key)
            if tasks is not None:
                tasks.discard(task)
                if not tasks:
                    del self._by_key[key]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %r failed", task.get_name(), exc_info=exc)
