"""The permission a route needs, declared on the route (or its controller) and checked with the principal.

    class KeyController(Controller):
        opt = requires("keys.read")          # every route of the controller...

        @post("/", opt=requires("keys.manage"))   # ...unless the route says otherwise
        async def create(...): ...

``api.deps`` checks it against the caller's member role (``shared.teams.roles``) when it resolves the
principal, before the handler runs. A route that declares nothing: reads need ``account.read``, changes
``members.manage`` (owners and admins)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from shared.accounts.keys import Principal
from shared.teams.roles import UNDECLARED_READ, UNDECLARED_WRITE, check_permission, roles_with

PERMISSION_OPT = "permission"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def requires(permission: str) -> dict[str, Any]:
    """The route ``opt`` declaring the permission a route needs."""
    roles_with(permission)  # an unknown permission fails at import, not at request time
    return {PERMISSION_OPT: permission}


def route_permission(request: Request[Any, Any, Any]) -> str:
    declared = request.route_handler.opt.get(PERMISSION_OPT)
    if declared:
        return str(declared)
    return UNDECLARED_READ if request.method in _SAFE_METHODS else UNDECLARED_WRITE


def check_route_permission(request: Request[Any, Any, Any], principal: Principal) -> None:
    check_permission(principal.member_role, route_permission(request))
