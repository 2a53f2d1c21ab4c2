"""Short retries of transient upstream failures, inside a time budget (tenacity).

Retried: ``RetryableError`` (timeouts, connection errors, 429, 500/502/503/504, malformed responses) with
exponential backoff and jitter; a 429's ``Retry-After`` is honoured when it is within ``retry_after_cap_s``
(a longer one means "not now": the caller moves on to the next route). Never retried: ``PermanentError``
and ``RouteError``. No attempt starts after the budget, and each attempt is cut off when it runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from shared.infra.metrics import METRICS
from shared.providers.base import ProviderError, RetryableError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 4
    budget_s: float = 60.0
    retry_after_cap_s: float = 20.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0


def _retryable(cap_s: float) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if not isinstance(exc, RetryableError):
            return False
        return exc.retry_after_s is None or exc.retry_after_s <= cap_s

    return check


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_backoff_s, max=policy.max_backoff_s, jitter=policy.initial_backoff_s
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RetryableError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return float(backoff(state))

    return wait


async def with_retries(
    fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *, budget_s: float | None = None, provider: str = ""
) -> T:
    """Call ``fn`` until it succeeds, fails permanently, or the attempts or the time budget run out. With
    ``provider``, its failed calls and retries are counted (metrics).

    The first attempt runs without tenacity's machinery (most calls succeed at once, and building and stepping a
    retry loop cost more than the rest of this function); a failure worth retrying is then handed to tenacity as
    its first attempt, so the waits, the stop conditions and the re-raised error are tenacity's, as if it had made
    every attempt."""
    budget = policy.budget_s if budget_s is None else min(budget_s, policy.budget_s)
    loop = asyncio.get_running_loop()
    ends = loop.time() + budget
    retryable = _retryable(policy.retry_after_cap_s)
    try:
        return await _attempt(fn, ends - loop.time(), provider)
    except RetryableError as exc:
        if policy.max_attempts < 2 or not retryable(exc):
            raise
        first_failure = exc
    retrying = AsyncRetrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(ends - loop.time()),
        wait=_wait(policy),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if attempt.retry_state.attempt_number == 1:
                raise first_failure  # the attempt made above: tenacity waits and decides from it
            if provider:
                METRICS.inc("conduit_provider_retries", {"provider": provider})
            return await _attempt(fn, ends - loop.time(), provider)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def _attempt(fn: Callable[[], Awaitable[T]], remaining_s: float, provider: str) -> T:
    """One call of ``fn``, cut off when the budget's ``remaining_s`` run out."""
    if remaining_s <= 0:
        raise RetryableError("the provider did not answer within the time budget", code="upstream_timeout")
    try:
        async with asyncio.timeout(remaining_s):
            return await fn()
    except TimeoutError:
        if provider:
            METRICS.inc("conduit_provider_errors", {"provider": provider, "code": "upstream_timeout"})
        raise RetryableError("the provider did not answer within the time budget", code="upstream_timeout") from None
    except ProviderError as exc:
        if provider:
            METRICS.inc("conduit_provider_errors", {"provider": provider, "code": exc.code})
        raise
