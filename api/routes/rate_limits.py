"""/v1/rate-limits: the limits in force for the caller (its key and its account) and what is left of them."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import Provide

from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.ratelimits.request_limits import RateLimits


class RateLimitController(Controller):
    path = "/v1/rate-limits"
    opt = requires("account.read")
    tags = ["rate limits"]
    dependencies = {"principal": Provide(provide_principal)}

    @get("/", operation_id="getRateLimits")
    async def rate_limits(self, principal: PrincipalDep, services: ServicesDep) -> RateLimits:
        """Requests per minute (limit, remaining, seconds until fully reset) and in-flight tasks (limit, now),
        for the API key (null with a session) and for the account. This request itself has been counted."""
        return await services.request_limits.describe(principal)
