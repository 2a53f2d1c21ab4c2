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
allowed without consuming anything (e.g. check before an expensive step, consume only on failure);
``reset`` forgets a key. ``Decision`` carries what rate-limit headers need: ``limit``, ``remaining``,
``retry_after_s`` (0 when allowed) and ``reset_after_s`` (until the full burst is available again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import RateLimited

KEY_PREFIX = "conduit:rl:"

# KEYS[1] the key. ARGV: emission interval (ms per request), burst, cost, dry run (1/0).
# Returns {allowed (1/0), remaining, retry_after_ms, reset_after_ms}.
_GCRA = """
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local dry = ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tolerance = emission * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local new_tat = tat + emission * cost
local allow_at = new_tat - tolerance
if now < allow_at then
    local remaining = math.floor((now - (tat - tolerance)) / emission)
    if remaining < 0 then remaining = 0 end
    local retry = allow_at - now
    if cost > burst then retry = -1 end
    return {0, remaining, retry, tat - now}
end
if not dry and cost > 0 then
    redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
end
local remaining = math.floor((now - allow_at) / emission)
local reset = new_tat - now
if dry or cost == 0 then
    remaining = math.floor((now - (tat - tolerance)) / emission)
    reset = tat - now
end
return {1, remaining, 0, reset}
"""


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


class RateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_GCRA)

    async def hit(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Consume ``cost`` if allowed."""
        return await self._run(key, rate, cost, dry=False)

    async def peek(self, key: str, rate: Rate, cost: int = 1) -> Decision:
        """Would ``cost`` be allowed now? Consumes nothing."""
        return await self._run(key, rate, cost, dry=True)

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def _run(self, key: str, rate: Rate, cost: int, *, dry: bool) -> Decision:
        if cost < 0:
            raise ValueError("cost cannot be negative")
        allowed, remaining, retry_ms, reset_ms = await self._script(
            keys=[self.prefix + key], args=[repr(rate.emission_ms), rate.tolerance, cost, 1 if dry else 0]
        )
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
