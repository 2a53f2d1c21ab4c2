"""Dependencies handed to route handlers: the process's services and the authenticated principal.

Two kinds of callers:

* programs, with an API key: ``Authorization: Bearer cdt_…`` (checked first when present);
* people, with the session cookie set by sign-in. A request on a session that changes anything (any method
  but GET/HEAD/OPTIONS) must also carry the session's CSRF token in ``X-CSRF-Token``, and its ``Origin``,
  when the browser sends one, must be an allowed origin (``PUBLIC_BASE_URL`` and ``ALLOWED_ORIGINS``).

``PrincipalDep`` (``provide_principal``) accepts either; ``SessionPrincipalDep`` (``provide_session_principal``)
only a session — for what an API key must not do, such as managing keys.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from shared.accounts.keys import Principal, authenticate
from shared.accounts.sessions import csrf_matches, session_principal
from shared.accounts.signup import AuthDeps
from shared.errors import PermissionDenied, Unauthenticated
from shared.services import Services

# Handler parameters are injected by name; these aliases mark them as dependencies explicitly.
ServicesDep: TypeAlias = NamedDependency[Services]
PrincipalDep: TypeAlias = NamedDependency[Principal]
SessionPrincipalDep: TypeAlias = NamedDependency[Principal]
AuthDep: TypeAlias = NamedDependency[AuthDeps]

SESSION_COOKIE = "conduit_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    )


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


async def _from_session(request: Request, services: Services, token: str) -> Principal:
    principal, session = await session_principal(services.db, services.sessions, token)
    if request.method not in SAFE_METHODS:
        check_origin(request, services)
        if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
            raise PermissionDenied(
                f"missing or wrong {CSRF_HEADER} header (the csrf_token returned by sign-in and GET /v1/auth/session)",
                code="csrf_failed",
            )
    return principal


async def provide_principal(request: Request, services: ServicesDep) -> Principal:
    token = bearer_token(request)
    if token == "":
        raise Unauthenticated("invalid API key: use 'Authorization: Bearer cdt_...'")
    if token is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await _from_session(request, services, cookie)
    return await authenticate(services.db, token, services.keys)


async def provide_session_principal(request: Request, services: ServicesDep) -> Principal:
    if request.headers.get("authorization"):
        raise PermissionDenied(
            "API keys cannot do this; sign in to the dashboard (a session) instead", code="session_required"
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthenticated("sign in first (POST /v1/auth/signin)", code="not_signed_in")
    return await _from_session(request, services, cookie)
