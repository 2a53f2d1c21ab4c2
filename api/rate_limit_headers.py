"""Rate limits on the HTTP side: checking a request's limits, and the rate-limit headers of every response.

Every authenticated request counts against its key's and its account's requests per minute (checked by
``provide_principal``); a submit also takes in-flight task slots (``provide_task_admission``). The outcome is
kept in the ASGI scope and a ``before_send`` hook writes the headers on the response, whatever it is
(success, error, the 429 itself, a streamed body):

    RateLimit-Limit: 600          the limit closest to running out (or the one that refused)
    RateLimit-Remaining: 597      requests left in it right now
    RateLimit-Reset: 1            seconds until it is fully available again
    Retry-After: 12               on a 429: seconds until a retry can succeed

A submit also carries ``X-Concurrency-Limit`` / ``X-Concurrency-Remaining``: the in-flight task limit closest
to running out and how many more tasks may start now.
"""

from __future__ import annotations

import math
import uuid

from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from shared.accounts.keys import Principal
from shared.ratelimits.request_limits import LimitCheck, LimitExceeded
from shared.services import Services

SCOPE_KEY = "conduit.rate_limit_headers"
TASK_ROUTE = "task"  # route ``opt={"rate_limit": TASK_ROUTE}``: the submit route checks its limits itself


def headers_for(check: LimitCheck) -> dict[str, str]:
    headers: dict[str, str] = {}
    if check.binding is not None:
        decision = check.binding.decision
        # refused for want of a slot: there is no time-based reset, retry in a second
        reset = 1 if check.binding.name.endswith("_tasks") else math.ceil(decision.reset_after_s)
        headers["RateLimit-Limit"] = str(decision.limit)
        headers["RateLimit-Remaining"] = str(decision.remaining)
        headers["RateLimit-Reset"] = str(max(0, reset))
    if check.concurrency is not None:
        headers["X-Concurrency-Limit"] = str(check.concurrency.decision.limit)
        headers["X-Concurrency-Remaining"] = str(check.concurrency.decision.remaining)
    return headers


async def enforce_limits(
    request: Request, services: Services, principal: Principal, *, task_id: uuid.UUID | None = None
) -> LimitCheck:
    """Check (and count) the request; remember its headers for the response. Raises ``LimitExceeded``."""
    try:
        check = await services.request_limits.check(principal, db=services.db, task_id=task_id)
    except LimitExceeded as exc:
        request.scope[SCOPE_KEY] = headers_for(exc.check)  # type: ignore[literal-required]
        raise
    request.scope[SCOPE_KEY] = headers_for(check)  # type: ignore[literal-required]
    return check


def checks_itself(request: Request) -> bool:
    return bool(request.route_handler.opt.get("rate_limit") == TASK_ROUTE)


async def add_rate_limit_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: the headers of the request's limit check, on whatever response it gets."""
    if message["type"] != "http.response.start":
        return
    headers: dict[str, str] | None = scope.get(SCOPE_KEY)  # type: ignore[assignment]
    if headers:
        mutable = MutableScopeHeaders.from_message(message)
        for name, value in headers.items():
            mutable[name] = value
