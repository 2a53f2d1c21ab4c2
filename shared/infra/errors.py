"""Domain errors. They carry a machine code, a human message and optionally the offending parameter;
they carry no HTTP status: ``api.errors`` maps each class to one in a single table."""

from __future__ import annotations


class ConduitError(Exception):
    """Base class. ``code`` is stable and documented; ``message`` is safe to show to the caller."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


class InvalidInput(ConduitError):
    code = "invalid_input"


class NotFound(ConduitError):
    code = "not_found"


class Unauthenticated(ConduitError):
    code = "invalid_api_key"


class PermissionDenied(ConduitError):
    code = "permission_denied"


class InsufficientCredits(ConduitError):
    code = "insufficient_credits"


class SpendCapExceeded(InsufficientCredits):
    """The API key's own spend cap (set by its owner) does not leave enough for this request."""

    code = "spend_cap_exceeded"


class BudgetExceeded(InsufficientCredits):
    """The API key's budget for the current period (day, week or month) does not leave enough for this request."""

    code = "budget_exceeded"


class Conflict(ConduitError):
    code = "conflict"


class RateLimited(ConduitError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class ModelUnavailable(ConduitError):
    """The model exists but no route can serve it right now (no credentials, circuits open)."""

    code = "model_unavailable"


class UpstreamFailed(ConduitError):
    """Every route failed; the caller may retry later."""

    code = "upstream_error"


class ServiceUnavailable(ConduitError):
    """A dependency of the service (e.g. Redis for rate limits, with ``RATE_LIMIT_ON_REDIS_ERROR=closed``) is
    unreachable right now; the caller may retry shortly."""

    code = "service_unavailable"


class PayloadTooLarge(InvalidInput):
    """One part of the request (e.g. an attachment) is over its size cap."""

    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    """The body is in a format the route does not read (e.g. not JSON where JSON is expected)."""

    code = "unsupported_media_type"


class BillingUnavailable(ConduitError):
    """Payments are not configured on this server (no Stripe keys)."""

    code = "billing_unavailable"
