"""Moderation: staff review (``/v1/admin/moderation``: the events, clearing a false positive, lifting a
suspension) and the appeal a suspended account can still make (``POST /v1/moderation/appeals``)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.access_log import note_account
from api.contract import API_KEY, SESSION, accepts, raises
from api.deps import SESSION_COOKIE, PrincipalDep, ServicesDep, bearer_token, session_caller
from api.permissions import check_route_permission, requires
from api.proxies import client_ip
from api.rate_limit_headers import enforce_limits
from api.routes.admin import ActorDep, provide_admin
from api.routes.staff_support import STAFF, StaffDep
from shared.accounts.keys import Principal, authenticate
from shared.infra.errors import NotFound, PermissionDenied, RateLimited, ServiceUnavailable, Unauthenticated
from shared.moderation.appeals import AppealBody, AppealTicket, open_appeal
from shared.moderation.review import (
    EventFilters,
    LiftedSuspension,
    ModerationEventList,
    ModerationEventView,
    clear_event,
    lift_suspension,
    list_events,
)

Limit = Annotated[int, QueryParameter(ge=1, le=100)]


class ClearBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class ModerationReviewController(Controller):
    path = "/v1/admin/moderation"
    tags = ["admin"]
    dependencies = STAFF
    opt = requires("staff")

    @get("/events", operation_id="listModerationEvents")
    async def events(
        self,
        staff: StaffDep,
        services: ServicesDep,
        limit: Limit = 50,
        after: FromQuery[str | None] = None,
        account: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        cleared: FromQuery[bool | None] = None,
    ) -> ModerationEventList:
        """Blocks and flags, newest first (support staff and admins)."""
        filters = EventFilters(account=account, category=category, action=action, cleared=cleared)
        page = await list_events(services.db, filters, limit=limit, after=after)
        return ModerationEventList("list", page.items, page.has_more, page.next_cursor)

    @post("/events/{event_id:str}/clear", operation_id="clearModerationEvent", status_code=200)
    async def clear(
        self, staff: StaffDep, services: ServicesDep, event_id: FromPath[str], data: JSONBody[ClearBody]
    ) -> ModerationEventView:
        """A false positive: the event stops counting as a strike (a ``reason`` is required)."""
        return await clear_event(services.db, event_id, actor=staff, reason=data.reason)

    @post(
        "/accounts/{account:str}/lift-suspension",
        operation_id="liftSuspension",
        status_code=200,
        dependencies={"admin": Provide(provide_admin)},  # the controller's principal, checked for the admin role
    )
    async def lift(
        self, admin: ActorDep, services: ServicesDep, account: FromPath[str], data: JSONBody[ClearBody]
    ) -> LiftedSuspension:
        """Admins: clear the account's strikes and reinstate it."""
        return await lift_suspension(services.db, services.redis, account, actor=admin, reason=data.reason)


@accepts(API_KEY, SESSION)
@raises(
    (Unauthenticated, "missing_api_key", "invalid_api_key", "revoked_api_key", "expired_api_key", "session_expired"),
    (PermissionDenied, "role_forbidden", "csrf_failed", "origin_not_allowed"),
    (NotFound, "account_not_found"),
    (RateLimited, "rate_limited", "too_many_invalid_keys"),
    ServiceUnavailable,
)
async def provide_appellant(request: Request[Any, Any, Any], services: ServicesDep) -> Principal:
    """The caller, by an API key or a website session (with its CSRF token), its account active or suspended
    (the one route a suspended account may use)."""
    token = bearer_token(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if token is None and cookie:
        principal = await session_caller(request, services, cookie, allow_suspended=True)
    else:
        principal = await authenticate(
            services.db, token, services.keys, invalid_keys=services.invalid_keys, ip=client_ip(request),
            allow_suspended=True,
        )  # fmt: skip
    note_account(principal.account_id)
    check_route_permission(request, principal)
    await enforce_limits(request, services, principal)
    return principal


class AppealController(Controller):
    path = "/v1/moderation"
    tags = ["moderation"]
    opt = requires("support.write")

    @post(
        "/appeals",
        operation_id="createModerationAppeal",
        status_code=201,
        dependencies={"principal": Provide(provide_appellant)},
    )
    async def appeal(self, principal: PrincipalDep, services: ServicesDep, data: JSONBody[AppealBody]) -> AppealTicket:
        """A suspended account's appeal (with one of its API keys, or signed in on the website): opens a support
        ticket about the suspension."""
        return await open_appeal(services.db, services.storage, services.settings.support, principal, data.message)
