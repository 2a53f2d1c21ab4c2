"""Every route that acts for an account declares the permission it needs (``api.permissions.requires``), and the
table of roles says what each role may do: the one place role checks live."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.permissions import PERMISSION_OPT, requires
from shared.infra.errors import PermissionDenied
from shared.settings import Settings
from shared.teams.roles import MEMBER_ROLES, PERMISSIONS, check_permission

APP = create_app(Settings())
PRINCIPALS = {"principal"}  # the website's pages only read (their forms call these routes)


def account_routes() -> list[tuple[str, str, dict[str, object]]]:
    found = []
    for route in APP.routes:
        for handler in getattr(route, "route_handlers", []):
            if PRINCIPALS & set(handler.resolve_dependencies()) and route.path.startswith("/v1"):
                for method in sorted(set(getattr(handler, "http_methods", [])) - {"OPTIONS"}):
                    found.append((method, route.path, handler.opt))
    return found


def test_every_account_route_declares_its_permission() -> None:
    routes = account_routes()
    assert len(routes) > 50
    undeclared = [f"{method} {path}" for method, path, opt in routes if PERMISSION_OPT not in opt]
    assert undeclared == [], "add opt=requires(...) (api.permissions) to these routes or their controller"
    assert {opt[PERMISSION_OPT] for _, _, opt in routes} <= set(PERMISSIONS)


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("viewer", "keys.manage", False),
        ("viewer", "billing.read", True),
        ("developer", "billing.manage", False),
        ("developer", "members.manage", False),
        ("developer", "tasks.run", True),
        ("billing", "billing.manage", True),
        ("billing", "tasks.run", False),
        ("admin", "members.manage", True),
        ("admin", "account.delete", False),
        ("owner", "account.delete", True),
    ],
)
def test_the_role_table(role: str, permission: str, allowed: bool) -> None:
    if allowed:
        check_permission(role, permission)
    else:
        with pytest.raises(PermissionDenied) as refused:
            check_permission(role, permission)
        assert refused.value.code == "role_forbidden" and permission in refused.value.message


def test_every_role_reads_and_the_owner_does_everything() -> None:
    for permission, roles in PERMISSIONS.items():
        assert "owner" in roles, permission
    assert set(MEMBER_ROLES) == set(PERMISSIONS["account.read"])
    with pytest.raises(ValueError, match="unknown permission"):
        requires("keys.destroy")
