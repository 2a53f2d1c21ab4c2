"""Rate limits shared by every process, kept in Redis: the generic cell rate algorithm (GCRA) in one Lua script.

A limit is ``Rate(count, period_s, burst)``: on average ``count`` requests per ``period_s``, with up to
``burst`` requests at once (default: ``count``). Per key, Redis stores one number, the "theoretical arrival
time" (TAT) of the next request, and expires it once it no longer matters. Each check is one atomic
script call using Redis's own clock, so any number of API processes share the limit exactly.

    limiter = RateLimiter(redis)
    decision = await limiter.hit("signin:ip:203.0.113.7", Rate(30, 60))
    if not decision.allowed:
        ... decision.retry_after_s ...

``hit`` consumes ``cost`` (default 1) when allowed; ``peek`` tells whether a request of ``cost`` would be
allowed without consuming anything; ``refund`` gives back what a ``hit`` (or an ``admit``) consumed, so a
caller can reserve an attempt atomically before an expensive check and return it when the check passes
(the sign-in throttle does); ``reset`` forgets a key. ``Decision`` carries what rate-limit headers need:
``limit``, ``remaining``, ``retry_after_s`` (0 when allowed) and ``reset_after_s`` (until the full burst is
available again).

Concurrent calls of one kind (``hit`` and ``peek``, ``refund``, ``admit``) share one pipelined round trip, so a
burst of requests costs Redis one exchange rather than one connection each.

``admit`` checks several limits at once, all or nothing, in one script call (one round trip): GCRA rates and
concurrency slots (a sorted set per limit whose members are what is in flight, each with an expiry as a
backstop). ``release`` frees a member's slots. API requests use it through ``shared.ratelimits.request_limits``.
The scripts are in ``shared.ratelimits.limiter_scripts``.

When Redis cannot be reached (or does not answer within ``timeout_s``), a limiter built with
``fail_open=True`` lets the request through (a ``Decision`` with ``degraded=True``) and one built with
``fail_open=False`` raises ``ServiceUnavailable``; with ``fail_open=None`` (the default) the error propagates.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.infra.errors import RateLimited, ServiceUnavailable
from shared.infra.group_commit import GroupCommit
from shared.infra.redis_scripts import Arg, LuaScript, ScriptCall, run_scripts
from shared.ratelimits.limiter_scripts import ADMIT, ADMIT_MANY, GCRA, REFUND, RELEASE

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "conduit:rl:"


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` requests per ``period_s`` on average, ``burst`` (default ``count``) at once."""

    count: int
    period_s: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.period_s <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError(f"invalid rate {self!r}")

    @property
    def emission_ms(self) -> float:
        return self.period_s * 1000.0 / self.count

    @property
    def tolerance(self) -> int:
        return self.burst if self.burst is not None else self.count


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int  # the burst: requests allowed at once from a fresh state
    remaining: int  # requests of cost 1 allowed right now (after this one, if it was consumed)
    retry_after_s: float  # when a refused request would be allowed; 0 if allowed; inf if it never can be
    reset_after_s: float  # until the full burst is available again
    degraded: bool = False  # Redis could not be asked; allowed because the limiter fails open


@dataclass(frozen=True, slots=True)
class Slot:
    """A concurrency limit: at most ``limit`` members of the set ``key`` at once."""

    key: str
    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"invalid slot limit {self!r}")


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits one ``admit`` checks, in the script's terms (see ``RateLimiter.policy``)."""

    keys: tuple[bytes, ...]
    spec: bytes
    limits: tuple[int, ...]  # per rate (its burst) then per slot (its limit)
    n_rates: int


class _ScriptBatch:
    """Runs one Lua script for many concurrent callers in one pipelined round trip (``shared.infra.group_commit``).
    Each caller gets its own result or error."""

    def __init__(self, redis: Redis, script: str) -> None:
        self.redis = redis
        self.script = LuaScript(script)
        self._batches: GroupCommit[tuple[Sequence[str | bytes], Sequence[Arg]], Any] = GroupCommit(self._execute)

    async def run(self, keys: Sequence[str | bytes], args: Sequence[Arg]) -> Any:
        return await self._batches.submit((keys, args))

    async def _execute(self, batch: list[tuple[Sequence[str | bytes], Sequence[Arg]]]) -> list[Any]:
        return await run_scripts(self.redis, [ScriptCall(self.script, keys, args) for keys, args in batch])


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of ``RateLimiter.admit``: one decision per rate, then one per slot, in the order given."""

    allowed: bool
    rates: tuple[Decision, ...]
    slots: tuple[Decision, ...]
    degraded: bool = False  # Redis could not be asked; allowed because the limiter fails open


class RateLimiter:
    def __init__(
        self, redis: Redis, *, prefix: str = KEY_PREFIX, fail_open: bool | None = None, timeout_s: float = 1.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.fail_open = fail_open
        self.timeout_s = timeout_s
        self._gcra = _ScriptBatch(redis, GCRA)
        self._batch = _ScriptBatch(redis, ADMIT)
        self._release = LuaScript(RELEASE)
        self._admit_many = redis.register_script(ADMIT_MANY)
        self._refund = _ScriptBatch(redis, REFUND)
        self._last_warning = 0.0

    @property
    def slot_index(self) -> str:
        """The set of every slot set's key (for the repair sweep)."""
        return self.prefix + "slots"

    def policy(self, rates: Sequence[tuple[str, Rate]], slots: Sequence[Slot] = (), *, ttl_s: float = 3600) -> Policy:
        """What ``admit`` checks, prepared once (callers cache it: it is the same for every request of a caller)."""
        keys = [self.prefix + key for key, _ in rates] + [self.prefix + slot.key for slot in slots] + [self.slot_index]
        spec: list[float | int] = [len(rates), len(slots), max(1, int(ttl_s * 1000))]
        for _, rate in rates:
            spec += [rate.emission_ms, rate.tolerance]
        spec += [slot.limit for slot in slots]
        return Policy(
            keys=tuple(key.encode() for key in keys),  # bytes: sent as they are, nothing to encode per call
            spec=" ".join(repr(v) for v in spec).encode(),
            limits=tuple([rate.tolerance for _, rate in rates] + [slot.limit for slot in slots]),
            n_rates=len(rates),
        )

    async def admit(
        self, rates: Sequence[tuple[str, Rate]], slots: Sequence[Slot] = (), *, member: str = "", ttl_s: float = 3600
    ) -> Admission:
        """Consume one request of every rate and take a slot for ``member`` in every slot set, if all allow;
        otherwise consume nothing. One atomic script call."""
        if slots and not member:
            raise ValueError("a member is needed to take slots")
        return await self.admit_policy(self.policy(rates, slots, ttl_s=ttl_s), member)

    async def admit_policy(self, policy: Policy, member: str = "") -> Admission:
        """``admit`` with a prepared policy. Concurrent calls share one pipelined round trip."""
        raw = await self._guarded(lambda: self._batch.run(policy.keys, (member.encode(), policy.spec)), None)
        n_rates = policy.n_rates
        if raw is None:
            fake = tuple(Decision(True, limit, limit, 0.0, 0.0, True) for limit in policy.limits)
            return Admission(True, fake[:n_rates], fake[n_rates:], True)
        decisions = []
        allowed_all = True
        for n, limit in enumerate(policy.limits):
            allowed, remaining, retry_ms, reset_ms = raw[4 * n : 4 * n + 4]
            allowed_all = allowed_all and bool(allowed)
            decisions.append(
                Decision(
                    bool(allowed),
                    limit,
                    max(0, remaining),
                    math.inf if retry_ms < 0 else retry_ms / 1000.0,
                    max(0.0, reset_ms / 1000.0),
                )
            )
        return Admission(allowed_all, tuple(decisions[:n_rates]), tuple(decisions[n_rates:]))

    async def release(self, slot_keys: Sequence[str], *members: str) -> None:
        """Free the ``members``' slots. Errors propagate (callers that can rely on a repair sweep swallow them)."""
        if members:
            [answer] = await run_scripts(self.redis, [self.release_call(slot_keys, *members)])
            if isinstance(answer, Exception):
                raise answer

    def release_call(self, slot_keys: Sequence[str], *members: str) -> ScriptCall:
        """The call that frees the ``members``' slots, for a caller that runs it in a pipeline of its own
        (``shared.infra.redis_scripts.run_scripts``)."""
        return ScriptCall(self._release, [self.prefix + key for key in slot_keys], list(members))

    async def admit_many(self, slots: Sequence[Slot], members: Sequence[str], *, ttl_s: float = 3600) -> Admission:
        """Take a slot in every set for every one of ``members`` if every set has room for all of them; otherwise
        take nothing. One atomic script call. A refused slot's decision tells how many slots are left."""
        keys = [self.prefix + slot.key for slot in slots] + [self.slot_index]
        args: list[str | int] = [max(1, int(ttl_s * 1000)), len(members), *members, *(slot.limit for slot in slots)]
        raw = await self._guarded(lambda: self._admit_many(keys=keys, args=args), None)
        if raw is None:
            fake = tuple(Decision(True, slot.limit, slot.limit, 0.0, 0.0, True) for slot in slots)
            return Admission(True, (), fake, True)
        decisions = tuple(
            Decision(bool(raw[2 * n]), slot.limit, max(0, raw[2 * n + 1]), 0.0 if raw[2 * n] else math.inf, 0.0)
            for n, slot in enumerate(slots)
        )
        return Admission(all(d.allowed for d in decisions), (), decisions)

    async def _guarded(self, call: Callable[[], Awaitable[T]], degraded: T) -> T:
        """Run a Redis call under the timeout, and apply the fail-open / fail-closed policy to its failure."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            if self.fail_open is None:
                raise
            now = time.monotonic()
            if now - self._last_warning > 10:
                self._last_warning = now
                log.warning(
                    "rate limiter: Redis unavailable (%s); failing %s", exc, "open" if self.fail_open else "closed"
                )
            if self.fail_open:
                return degraded
            raise ServiceUnavailable("rate limiting is unavailable right now; retry shortly") from exc

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Consume ``cost`` if allowed."""
        return await self._run(key, rate, cost, dry=False)

    async def peek(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Would ``cost`` be allowed now? Consumes nothing."""
        return await self._run(key, rate, cost, dry=True)

    async def refund(self, key: str, rate: Rate, cost: int = 1) -> None:
        """Give back ``cost`` requests consumed from ``key`` (a reservation whose check passed). Best effort: when
        Redis cannot be reached the reservation simply stays consumed, as if the check had failed."""
        if cost < 0:
            raise ValueError("cost cannot be negative")
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._refund.run([self.prefix + key], [repr(rate.emission_ms), cost])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limiter: could not refund %s (%s)", key, exc)

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def _run(self, key: str, rate: Rate, cost: int, *, dry: bool) -> Decision:
        if cost < 0:
            raise ValueError("cost cannot be negative")
        keys = [self.prefix + key]
        args: list[Arg] = [repr(rate.emission_ms), rate.tolerance, cost, 1 if dry else 0]
        raw = await self._guarded(lambda: self._gcra.run(keys, args), None)
        if raw is None:
            return Decision(True, rate.tolerance, rate.tolerance, 0.0, 0.0, degraded=True)
        allowed, remaining, retry_ms, reset_ms = raw
        return Decision(
            allowed=bool(allowed),
            limit=rate.tolerance,
            remaining=max(0, int(remaining)),
            retry_after_s=math.inf if int(retry_ms) < 0 else max(0.0, int(retry_ms) / 1000.0),
            reset_after_s=max(0.0, int(reset_ms) / 1000.0),
        )


def raise_if_limited(decision: Decision, message: str, *, code: str = "rate_limited") -> None:
    """Turn a refused decision into the one error shape (429 with ``Retry-After``)."""
    if not decision.allowed:
        retry = decision.retry_after_s if math.isfinite(decision.retry_after_s) else decision.reset_after_s
        raise RateLimited(message, retry_after_s=max(retry, 1.0), code=code)
