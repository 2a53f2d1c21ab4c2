"""Dependencies handed to route handlers: the process's services and the authenticated principal."""

from __future__ import annotations

from typing import TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from shared.accounts.keys import Principal, authenticate
from shared.errors import Unauthenticated
from shared.services import Services

# Handler parameters are injected by name; these aliases mark them as dependencies explicitly.
ServicesDep: TypeAlias = NamedDependency[Services]
PrincipalDep: TypeAlias = NamedDependency[Principal]


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return ""  # present but not a bearer credential: "invalid", not "missing"
    return token.strip()


async def provide_principal(request: Request, services: ServicesDep) -> Principal:
    token = bearer_token(request)
    if token == "":
        raise Unauthenticated("invalid API key: use 'Authorization: Bearer cdt_...'")
    return await authenticate(services.db, token, services.keys)
