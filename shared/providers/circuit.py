"""A circuit breaker per upstream provider, shared by every worker process through Redis.

closed -> open after ``threshold`` consecutive failed calls (each after its retries); open -> half-open
after ``cooldown_s``: one caller (in any process) gets to probe, the others are still refused; the
probe's success closes the circuit, its failure opens it for another cool-down. A probe that never
reports (its worker died) is superseded after another cool-down.

State lives in one hash per provider, changed only by Lua scripts (atomic across processes). On the happy
path a process asks Redis at most once per ``local_ttl_s`` per provider (a healthy answer is remembered that
long, and forgotten at the first local failure), so a circuit opened by another process is noticed within
that time, and a busy worker does not pay a Redis round trip per upstream call.
"""

from __future__ import annotations

import enum
import time

from redis.asyncio import Redis

KEY_PREFIX = "conduit:circuit:"
_TTL_MS = 3_600_000  # forget an idle provider's failure count after an hour

_ALLOW = """
local s = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probe_until', 'held')
if s[4] == '1' then return 0 end
local now = tonumber(ARGV[1])
local failures = tonumber(s[1] or '0')
local open_until = tonumber(s[2] or '0')
if open_until == 0 then
    if failures > 0 then return 2 end
    return 1
end
if now < open_until then return 0 end
if now < tonumber(s[3] or '0') then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
return 3
"""

_FAILURE = """
if redis.call('HGET', KEYS[1], 'held') == '1' then return 0 end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if failures >= tonumber(ARGV[2]) or open_until > 0 then
    redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[1]) + tonumber(ARGV[3]), 'probe_until', 0)
    return 1
end
return 0
"""

# A success forgets the failures, unless an operator holds the circuit open.
_SUCCESS = """
if redis.call('HGET', KEYS[1], 'held') ~= '1' then redis.call('DEL', KEYS[1]) end
return 1
"""


class Gate(enum.IntEnum):
    OPEN = 0  # refuse: the provider is failing
    CLOSED = 1  # healthy, nothing recorded
    CLOSED_WITH_FAILURES = 2  # healthy so far, but recent failures are counted
    PROBE = 3  # half-open: this call is the probe

    @property
    def allowed(self) -> bool:
        return self is not Gate.OPEN


class CircuitBreaker:
    def __init__(self, redis: Redis, *, threshold: int = 5, cooldown_s: float = 30.0, local_ttl_s: float = 1.0) -> None:
        self.redis = redis
        self.threshold = threshold
        self.cooldown_ms = int(cooldown_s * 1000)
        self.local_ttl_s = local_ttl_s
        self._healthy_until: dict[str, float] = {}

    @staticmethod
    def _key(provider: str) -> str:
        return KEY_PREFIX + provider

    async def allow(self, provider: str) -> Gate:
        if self._healthy_until.get(provider, 0.0) > time.monotonic():
            return Gate.CLOSED
        args = (self._key(provider), str(_now_ms()), str(self.cooldown_ms))
        gate = Gate(int(await self.redis.eval(_ALLOW, 1, *args)))  # type: ignore[misc]
        if gate is Gate.CLOSED:
            self._healthy_until[provider] = time.monotonic() + self.local_ttl_s
        return gate

    async def record_success(self, provider: str, gate: Gate) -> None:
        if gate in (Gate.CLOSED_WITH_FAILURES, Gate.PROBE):
            await self.redis.eval(_SUCCESS, 1, self._key(provider))  # type: ignore[misc]

    async def record_failure(self, provider: str) -> bool:
        """Count a failed call; True when this failure opened (or re-opened) the circuit."""
        self._healthy_until.pop(provider, None)
        args = (self._key(provider), str(_now_ms()), str(self.threshold), str(self.cooldown_ms), str(_TTL_MS))
        opened = await self.redis.eval(_FAILURE, 1, *args)  # type: ignore[misc]
        return bool(opened)

    async def state(self, provider: str) -> dict[str, object]:
        """What operators see (admin API, metrics): ``closed`` / ``open`` / ``half_open``, the failure count,
        and until when an open circuit refuses calls."""
        raw = await self.redis.hmget(self._key(provider), ["failures", "open_until", "probe_until", "held"])  # type: ignore[misc]
        failures, open_until, probe_until, held = (int(value or 0) for value in raw)
        now = _now_ms()
        if held:
            return {"state": "open", "failures": failures, "open_until_ms": None, "held_open": True}
        if open_until == 0:
            state = "closed"
        elif now < open_until or now < probe_until:
            state = "open" if now < open_until else "half_open"
        else:
            state = "half_open"  # the cool-down ended: the next call is a probe
        return {"state": state, "failures": failures, "open_until_ms": open_until or None, "held_open": False}

    async def hold_open(self, provider: str) -> None:
        """An operator opens the circuit by hand: every process skips the provider (within ``local_ttl_s``)
        until ``reset``; failures and successes do not change it meanwhile."""
        await self.redis.hset(self._key(provider), mapping={"held": 1, "open_until": _now_ms(), "probe_until": 0})  # type: ignore[misc]
        await self.redis.persist(self._key(provider))

    async def reset(self, provider: str) -> None:
        """Close the circuit (by hand, or a probe's success): the failure count starts again from zero."""
        await self.redis.delete(self._key(provider))


def _now_ms() -> int:
    return int(time.time() * 1000)
