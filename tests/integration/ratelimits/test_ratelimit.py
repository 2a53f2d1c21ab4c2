"""The shared GCRA rate limiter, against real Redis (the API rate limits are built on it)."""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest

from shared.infra.errors import RateLimited
from shared.ratelimits.limiter import Rate, RateLimiter, raise_if_limited
from shared.services import Services
from tests.harness import wait_for


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_burst_then_steady_rate(services: Services) -> None:
    limiter = RateLimiter(services.redis)
    k, rate = key(), Rate(5, 60)  # 5 per minute: one every 12 s, 5 at once
    decisions = [await limiter.hit(k, rate) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert all(d.limit == 5 and d.retry_after_s == 0 for d in decisions[:5])
    refused = decisions[5]
    assert 11 < refused.retry_after_s <= 12
    assert 59 < refused.reset_after_s <= 60
    with pytest.raises(RateLimited) as raised:
        raise_if_limited(refused, "slow down", code="too_many")
    assert raised.value.code == "too_many"
    assert 11 < raised.value.retry_after_s <= 12


async def test_tokens_come_back_at_the_rate(services: Services) -> None:
    limiter = RateLimiter(services.redis)
    k, rate = key(), Rate(10, 1, burst=2)  # one every 100 ms, 2 at once
    assert (await limiter.hit(k, rate)).allowed and (await limiter.hit(k, rate)).allowed
    assert not (await limiter.hit(k, rate)).allowed

    async def allowed_again() -> bool:
        return (await limiter.hit(k, rate)).allowed

    await wait_for(allowed_again, timeout=5, interval=0.02, what="a token to come back")


async def test_peek_consumes_nothing_and_costs_can_exceed_the_burst(services: Services) -> None:
    limiter = RateLimiter(services.redis)
    k, rate = key(), Rate(3, 60)
    for _ in range(5):
        peeked = await limiter.peek(k, rate)
        assert peeked.allowed and peeked.remaining == 3
    assert (await limiter.hit(k, rate, cost=2)).remaining == 1
    assert (await limiter.peek(k, rate, cost=2)).allowed is False
    impossible = await limiter.hit(k, rate, cost=4)
    assert not impossible.allowed and math.isinf(impossible.retry_after_s)
    await limiter.reset(k)
    assert (await limiter.peek(k, rate)).remaining == 3


async def test_concurrent_hits_never_exceed_the_burst(services: Services) -> None:
    limiter = RateLimiter(services.redis)
    k, rate = key(), Rate(20, 3600)
    decisions = await asyncio.gather(*(limiter.hit(k, rate) for _ in range(100)))
    assert sum(d.allowed for d in decisions) == 20
    ttl = await services.redis.pttl("conduit:rl:" + k)
    assert 0 < ttl <= 3600 * 1000  # the state expires once it no longer matters


async def test_a_refund_gives_back_what_was_consumed_and_never_more(services: Services) -> None:
    limiter = RateLimiter(services.redis)
    k, rate = key(), Rate(3, 3600)
    assert all([(await limiter.hit(k, rate)).allowed for _ in range(3)])
    assert not (await limiter.peek(k, rate)).allowed
    await limiter.refund(k, rate)  # e.g. the password turned out to be right
    assert (await limiter.peek(k, rate)).remaining == 1
    for _ in range(5):  # more refunds than hits: back to a full burst, not beyond it
        await limiter.refund(k, rate)
    assert (await limiter.peek(k, rate)).remaining == 3
    assert await services.redis.exists("conduit:rl:" + k) == 0  # a full burst needs no state
    await limiter.refund(key(), rate)  # nothing consumed yet: nothing happens
    with pytest.raises(ValueError, match="negative"):
        await limiter.refund(k, rate, cost=-1)


def test_invalid_rates_are_refused() -> None:
    for args in ((0, 1), (1, 0), (1, 1, 0)):
        with pytest.raises(ValueError, match="invalid rate"):
            Rate(*args)
