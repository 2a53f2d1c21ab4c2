"""Progress a provider reports while it works, before it answers: the runner of a task sets where reports go
(``reporting_to``) and a provider reports (``report_progress``, or ``step_reporter`` from a drawing thread).

A report is a dict with any of ``percent`` (0-100), ``step`` and ``total_steps`` (with their ``unit``: "step",
"frame", "image"), ``queue_position``, ``upstream_status`` and ``logs`` (new log lines). Without a reporter
(synchronous requests, tests of a provider alone) reports go nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any

ProgressReport = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
StepCallback = Callable[[int, int], None]

_REPORTER: ContextVar[ProgressReport | None] = ContextVar("progress_reporter", default=None)
STEP_REPORT_INTERVAL_S = 0.1  # a drawing thread reports at most this often (and always its last step)
STEP_REPORT_TIMEOUT_S = 5.0


@contextlib.contextmanager
def reporting_to(report: ProgressReport | None) -> Iterator[None]:
    token = _REPORTER.set(report)
    try:
        yield
    finally:
        _REPORTER.reset(token)


async def report_progress(progress: dict[str, Any]) -> None:
    report = _REPORTER.get()
    if report is not None and progress:
        await report(progress)


def step_reporter(unit: str, *, offset: int = 0, total: int | None = None) -> StepCallback | None:
    """For work done in a thread (``asyncio.to_thread``): a ``(done, of)`` callback that reports each step as
    ``step``/``total_steps``/``percent`` on the event loop and waits for the report, so reports keep their order.
    ``offset`` and ``total`` place the thread's steps in a larger count (the third of four images). None when
    nobody listens. Call it from the event loop's thread, before starting the thread."""
    report = _REPORTER.get()
    if report is None:
        return None
    loop = asyncio.get_running_loop()
    last = [0.0]

    def on_step(done: int, of: int) -> None:
        now = time.monotonic()
        if done < of and now - last[0] < STEP_REPORT_INTERVAL_S:
            return
        last[0] = now
        step, steps = offset + done, total or of
        progress = {"step": step, "total_steps": steps, "unit": unit, "percent": round(100 * step / steps, 1)}
        future = asyncio.run_coroutine_threadsafe(report(progress), loop)
        with contextlib.suppress(Exception):  # progress is best effort; the work goes on
            future.result(STEP_REPORT_TIMEOUT_S)

    return on_step
