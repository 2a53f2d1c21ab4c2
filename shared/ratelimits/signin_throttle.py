"""The limits on the unauthenticated account endpoints, on top of ``shared.ratelimits.limiter``.

* per client IP: every sign-in, sign-up and "mail me a link" request (``AUTH_IP_RATE_PER_MIN``);
* wrong passwords: ``SIGNIN_MAX_FAILURES`` per ``SIGNIN_FAILURE_WINDOW_S`` per budget. An address has one budget
  shared by every client without a device cookie for it (``shared.accounts.devices``), and each device cookie
  has one of its own, so an attacker's burst cannot lock the owner's browser out. An attempt is reserved from
  its budget, together with the client IP's request (not checked for a device cookie), in one atomic step
  before the password is checked, and given back once the password proves right: concurrent attempts never
  check more wrong passwords than the budget holds;
* per email address, mails sent (3 per hour), so nobody can flood someone's inbox through us.

The per-address limits apply whether or not the address has an account, so they reveal nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.accounts.settings import AuthSettings
from shared.infra.metrics import METRICS
from shared.ratelimits.limiter import Rate, RateLimiter, raise_if_limited

MAILS_PER_ADDRESS = Rate(3, 3600)
IP_LIMITED = "too many requests from this address; slow down"
FAILURES_LIMITED = "too many failed sign-in attempts for this account; try again later"


def _address(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def signin_failures_rate(settings: AuthSettings) -> Rate:
    return Rate(settings.signin_max_failures, settings.signin_failure_window_s)


def _ip_rate(settings: AuthSettings) -> Rate:
    return Rate(settings.auth_ip_rate_per_min, 60)


async def throttle_ip(limiter: RateLimiter, settings: AuthSettings, ip: str) -> None:
    decision = await limiter.hit(f"auth:ip:{ip}", _ip_rate(settings))
    raise_if_limited(decision, IP_LIMITED, code="too_many_requests")


async def throttle_mail(limiter: RateLimiter, email: str) -> None:
    decision = await limiter.hit(f"auth:mail:{_address(email)}", MAILS_PER_ADDRESS)
    raise_if_limited(decision, "too many mails requested for this address; try again later", code="too_many_mails")


@dataclass(frozen=True, slots=True)
class PasswordAttempt:
    """A password check reserved from a failure budget: kept if the password is wrong, given back if right."""

    budget_key: str
    rate: Rate
    client: str  # "device" (a valid device cookie for the address) or "untrusted": the metrics' label


async def reserve_password_attempt(
    limiter: RateLimiter, settings: AuthSettings, email: str, *, ip: str, device_id: str | None
) -> PasswordAttempt:
    """Reserve one attempt for ``email`` (normalised), or raise ``RateLimited`` (429 with ``Retry-After``)."""
    failures = signin_failures_rate(settings)
    if device_id is not None:
        attempt = PasswordAttempt(f"auth:signin:device:{device_id}", failures, "device")
        rates = [(attempt.budget_key, failures)]
    else:
        attempt = PasswordAttempt(f"auth:signin:{_address(email)}", failures, "untrusted")
        rates = [(f"auth:ip:{ip}", _ip_rate(settings)), (attempt.budget_key, failures)]
    admission = await limiter.admit(rates)
    if not admission.allowed:
        METRICS.inc("conduit_signin_attempts", {"outcome": "throttled", "client": attempt.client})
        for (key, _), decision in zip(rates, admission.rates, strict=True):
            if key == attempt.budget_key:
                raise_if_limited(decision, FAILURES_LIMITED, code="too_many_signin_attempts")
            else:
                raise_if_limited(decision, IP_LIMITED, code="too_many_requests")
    return attempt


async def give_back_password_attempt(limiter: RateLimiter, attempt: PasswordAttempt) -> None:
    """The password was right: the attempt does not count against the budget."""
    await limiter.refund(attempt.budget_key, attempt.rate)
