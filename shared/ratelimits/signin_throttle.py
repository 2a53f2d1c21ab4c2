"""The limits on the unauthenticated account endpoints, on top of ``shared.ratelimits.limiter``.

* per client IP: every sign-in, sign-up and "mail me a link" request (``AUTH_IP_RATE_PER_MIN``);
* per email address, wrong passwords: ``SIGNIN_MAX_FAILURES`` per ``SIGNIN_FAILURE_WINDOW_S``, checked before
  the password and consumed only by a failure;
* per email address, mails sent (3 per hour), so nobody can flood someone's inbox through us.

The per-address limits apply whether or not the address has an account, so they reveal nothing.
"""

from __future__ import annotations

import hashlib

from shared.ratelimits.limiter import Decision, Rate, RateLimiter, raise_if_limited
from shared.settings import AuthSettings

MAILS_PER_ADDRESS = Rate(3, 3600)


def _address(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def signin_failures_rate(settings: AuthSettings) -> Rate:
    return Rate(settings.signin_max_failures, settings.signin_failure_window_s)


async def throttle_ip(limiter: RateLimiter, settings: AuthSettings, ip: str) -> None:
    decision = await limiter.hit(f"auth:ip:{ip}", Rate(settings.auth_ip_rate_per_min, 60))
    raise_if_limited(decision, "too many requests from this address; slow down", code="too_many_requests")


async def throttle_mail(limiter: RateLimiter, email: str) -> None:
    decision = await limiter.hit(f"auth:mail:{_address(email)}", MAILS_PER_ADDRESS)
    raise_if_limited(decision, "too many mails requested for this address; try again later", code="too_many_mails")


async def check_signin_failures(limiter: RateLimiter, settings: AuthSettings, email: str) -> None:
    decision = await limiter.peek(f"auth:signin:{_address(email)}", signin_failures_rate(settings))
    raise_if_limited(
        decision, "too many failed sign-in attempts for this account; try again later", code="too_many_signin_attempts"
    )


async def record_signin_failure(limiter: RateLimiter, settings: AuthSettings, email: str) -> Decision:
    return await limiter.hit(f"auth:signin:{_address(email)}", signin_failures_rate(settings))
