"""Dependencies handed to route handlers: the process's services and the authenticated principal.

Two kinds of callers:

* programs, with an API key: ``Authorization: Bearer cdt_…`` (checked first when present);
* people, with the session cookie set by sign-in, acting on their own account, the account they switched to,
  or the account named by the ``X-Conduit-Account`` header (one they are a member of; another is a 404). A
  request on a session that changes anything (any method but GET/HEAD/OPTIONS) must also carry the session's
  CSRF token in ``X-CSRF-Token``, and its ``Origin``, when the browser sends one, must be an allowed origin
  (``PUBLIC_BASE_URL`` and ``ALLOWED_ORIGINS``).

``PrincipalDep`` (``provide_principal``) accepts either; ``SessionPrincipalDep`` (``provide_session_principal``)
only a session — for what an API key must not do, such as managing keys.

Both check the permission the route declares (``api.permissions``) against the caller's role in the account,
and both count the request against the caller's rate limits (``api.rate_limit_headers``); a task submit takes
its in-flight slots through ``TaskAdmissionDep`` instead, in the same single check.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from api.access_log import note_account, note_key
from api.contract import API_KEY, SESSION, accepts, raises
from api.permissions import check_route_permission
from api.proxies import client_ip
from api.rate_limit_headers import checks_itself, enforce_limits
from shared.accounts.devices import DEVICE_COOKIE
from shared.accounts.keys import Principal, authenticate
from shared.accounts.sessions import ACCOUNT_HEADER, csrf_matches, session_principal
from shared.accounts.signin import PasswordClient
from shared.accounts.signup import AuthDeps
from shared.infra.errors import NotFound, PermissionDenied, RateLimited, ServiceUnavailable, Unauthenticated
from shared.infra.ids import parse_uuid, uuid7
from shared.openai_api import settlements
from shared.ratelimits.request_limits import LimitExceeded
from shared.services import Services
from shared.tasks.submit import idempotency_key_used
from shared.teams.audit import AccountActor


@dataclass(slots=True)
class TaskAdmission:
    """A submit's admission under the rate limits: the id its task will have, whose in-flight slots are taken.
    Set ``created`` once the task exists; otherwise the slots are given back when the request ends."""

    task_id: uuid.UUID
    created: bool = False


# Handler parameters are injected by name; these aliases mark them as dependencies explicitly.
ServicesDep: TypeAlias = NamedDependency[Services]
PrincipalDep: TypeAlias = NamedDependency[Principal]
SessionPrincipalDep: TypeAlias = NamedDependency[Principal]
AuthDep: TypeAlias = NamedDependency[AuthDeps]
TaskAdmissionDep: TypeAlias = NamedDependency[TaskAdmission]
ActorDep: TypeAlias = NamedDependency[AccountActor]

SESSION_COOKIE = "conduit_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SETTLES_LATER = "settles_later"  # route ``opt``: answered before its settlement, which it need not wait for

# What authenticating a caller can refuse, whatever the credential; and what counting its request can.
_SESSION_REFUSALS = (PermissionDenied, "account_suspended", "csrf_failed", "origin_not_allowed", "role_forbidden")
_OTHER_ACCOUNT = (NotFound, "account_not_found")  # X-Conduit-Account names an account the caller is not in
_LIMITS = ((RateLimited, "rate_limited", "too_many_invalid_keys"), (ServiceUnavailable, "service_unavailable"))


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_auth(services: ServicesDep) -> AuthDeps:
    return AuthDeps(
        db=services.db,
        mailer=services.mailer,
        limiter=services.limiter,
        sessions=services.sessions,
        settings=services.settings.auth,
        devices=services.devices,
    )


def password_client(request: Request) -> PasswordClient:
    """Who is trying a password: the client's IP and the browser's sign-in device cookie."""
    return PasswordClient(ip=client_ip(request), device_cookie=request.cookies.get(DEVICE_COOKIE))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""  # present but not a bearer credential: "invalid", not "missing"
    return token.strip()


def check_origin(request: Request, services: Services) -> None:
    """Refuse a browser request sent from a page on another site (cross-site request forgery)."""
    origin = request.headers.get("origin")
    if origin and origin.lower() not in services.settings.auth.allowed_origins:
        raise PermissionDenied(f"requests from {origin} are not allowed", code="origin_not_allowed")


def requested_account(request: Request) -> uuid.UUID | None:
    """The account the ``X-Conduit-Account`` header names, if any."""
    header = request.headers.get(ACCOUNT_HEADER)
    if header is None:
        return None
    account_id = parse_uuid(header.strip())
    if account_id is None:
        raise NotFound(f"no account {header[:64]!r} among yours", code="account_not_found", param=ACCOUNT_HEADER)
    return account_id


async def session_caller(
    request: Request, services: Services, token: str, *, allow_suspended: bool = False
) -> Principal:
    """The principal of a session cookie, with the CSRF and Origin checks of a change."""
    principal, session = await session_principal(
        services.db, services.sessions, token, requested_account(request), allow_suspended=allow_suspended
    )
    if request.method not in SAFE_METHODS:
        check_origin(request, services)
        if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
            raise PermissionDenied(
                f"missing or wrong {CSRF_HEADER} header (the csrf_token returned by sign-in and GET /v1/auth/session)",
                code="csrf_failed",
            )
    return principal


@accepts(API_KEY, SESSION)
@raises(
    (Unauthenticated, "missing_api_key", "invalid_api_key", "revoked_api_key", "expired_api_key", "session_expired"),
    _SESSION_REFUSALS,
    _OTHER_ACCOUNT,
    *_LIMITS,
)
async def provide_principal(request: Request, services: ServicesDep) -> Principal:
    principal = await _identify(request, services)
    note_account(principal.account_id)
    check_route_permission(request, principal)
    if not checks_itself(request):
        await enforce_limits(request, services, principal)
    await _read_settled(request, services, principal)
    return principal


async def _read_settled(request: Request, services: Services, principal: Principal) -> None:
    """Chat completions are answered before they are settled; anything else the account asks of this process
    sees their settlements (``shared.openai_api.settlements``). Chat completions themselves do not wait."""
    if not request.route_handler.opt.get(SETTLES_LATER):
        await settlements.settled(services.background, principal.account_id)


async def _identify(request: Request, services: Services) -> Principal:
    token = bearer_token(request)
    note_key(token)
    if token == "":
        raise Unauthenticated("invalid API key: use 'Authorization: Bearer cdt_...'")
    if token is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await session_caller(request, services, cookie)
    principal = await authenticate(
        services.db, token, services.keys, invalid_keys=services.invalid_keys, ip=client_ip(request)
    )
    account_id = requested_account(request)
    if account_id is not None and account_id != principal.account_id:  # a key acts on its own account only
        raise NotFound(f"no account {account_id} among yours", code="account_not_found", param=ACCOUNT_HEADER)
    return principal


@accepts(SESSION)
@raises(
    (Unauthenticated, "not_signed_in", "session_expired"),
    (*_SESSION_REFUSALS, "session_required"),
    _OTHER_ACCOUNT,
    *_LIMITS,
)
async def provide_session_principal(request: Request, services: ServicesDep) -> Principal:
    if request.headers.get("authorization"):
        raise PermissionDenied(
            "API keys cannot do this; sign in to the dashboard (a session) instead", code="session_required"
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("sign in first (POST /v1/auth/signin)", code="not_signed_in")
    principal = await session_caller(request, services, cookie)
    note_account(principal.account_id)
    check_route_permission(request, principal)
    await enforce_limits(request, services, principal)
    await _read_settled(request, services, principal)
    return principal


def provide_actor(request: Request, principal: PrincipalDep) -> AccountActor:
    """The caller as the account's audit trail records a change they make."""
    return AccountActor.of(principal, client_ip(request))


@raises((RateLimited, "too_many_concurrent_tasks"))
async def provide_task_admission(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> AsyncIterator[TaskAdmission]:
    admission = TaskAdmission(task_id=uuid7())
    try:
        check = await enforce_limits(request, services, principal, task_id=admission.task_id)
    except LimitExceeded as exc:
        key = request.headers.get("idempotency-key")
        refused_slot = exc.check.binding is not None and exc.check.binding.name.endswith("_tasks")
        if not (key and refused_slot and await idempotency_key_used(services.db, principal.account_id, key)):
            raise
        # The retry of a submit that created its task already: it starts nothing, so it needs no slot.
        check = await enforce_limits(request, services, principal)
    try:
        yield admission
    finally:
        if check.slot_taken and not admission.created:  # refused, invalid, a replay, or failed: no task
            await services.request_limits.slots.release(principal.account_id, principal.api_key_id, admission.task_id)
