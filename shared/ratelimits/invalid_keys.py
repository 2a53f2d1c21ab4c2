"""Requests with an API key that does not work (unknown, revoked, expired), limited per client IP.

Guessing keys must not be free, nor a cheap way to load the database: each request whose key has to be looked
up takes one from its client IP's budget (``INVALID_KEY_RATE_PER_MIN``) in an atomic step *before* the lookup,
and gives it back when the key works. Concurrent guesses can therefore never cause more lookups than the budget
holds, and a spent budget answers ``429 too_many_invalid_keys`` with ``Retry-After`` without touching the
database. Keys already refused are remembered for a short while by ``shared.accounts.key_cache.KeyCache`` (no lookup
at all), and still count against the budget. Working keys a process has cached skip all of this.
"""

from __future__ import annotations

from shared.infra.metrics import METRICS
from shared.ratelimits.limiter import Rate, RateLimiter, raise_if_limited


class InvalidKeyLimit:
    def __init__(self, limiter: RateLimiter, per_minute: int) -> None:
        self.limiter = limiter
        self.rate = Rate(per_minute, 60)

    @staticmethod
    def _key(ip: str) -> str:
        return f"keys:invalid:{ip}"

    async def reserve(self, ip: str) -> None:
        """Take one from ``ip``'s budget, or raise ``RateLimited`` when it is spent."""
        decision = await self.limiter.hit(self._key(ip), self.rate)
        if not decision.allowed:
            METRICS.inc("conduit_invalid_api_keys", {"outcome": "throttled"})
            raise_if_limited(
                decision,
                "too many requests with an invalid API key from this address; check the key and retry later",
                code="too_many_invalid_keys",
            )

    async def give_back(self, ip: str) -> None:
        """The key worked: its request does not count."""
        await self.limiter.refund(self._key(ip), self.rate)
