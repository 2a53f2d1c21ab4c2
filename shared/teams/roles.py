"""Member roles and the one table of what each may do.

Every route that acts for an account declares the permission it needs (``api.permissions.requires``); the
principal dependency checks it against this table before the handler runs, so a route never checks roles
itself. A caller without it gets ``403`` with the code ``role_forbidden`` naming the permission and the roles
that have it. (Whether the object belongs to the account is another question: another account's object is a
``404``.)

An API key acts with the role it was created with (its creator's role then; keys made before teams, and keys
made by the command line, act as the owner). A route that declares nothing is readable by every role and
changeable only by owners and admins (``UNDECLARED_READ`` / ``UNDECLARED_WRITE``).
"""

from __future__ import annotations

from shared.infra.errors import InvalidInput, PermissionDenied

OWNER = "owner"
ADMIN = "admin"
DEVELOPER = "developer"
BILLING = "billing"
VIEWER = "viewer"
MEMBER_ROLES = (OWNER, ADMIN, DEVELOPER, BILLING, VIEWER)
EVERYONE = frozenset(MEMBER_ROLES)

# permission -> the roles that have it
PERMISSIONS: dict[str, frozenset[str]] = {
    "account.read": EVERYONE,  # the account, its balance and ledger, models, rate limits
    "account.delete": frozenset({OWNER}),
    "members.read": EVERYONE,
    "members.manage": frozenset({OWNER, ADMIN}),  # invite, change roles, remove, member budgets
    "keys.read": EVERYONE,
    "keys.manage": frozenset({OWNER, ADMIN, DEVELOPER}),  # create, change (limits, budgets), revoke, rotate
    "tasks.read": EVERYONE,
    "tasks.run": frozenset({OWNER, ADMIN, DEVELOPER}),  # tasks, chat, completions, embeddings, images
    "usage.read": EVERYONE,
    "billing.read": frozenset({OWNER, ADMIN, BILLING, VIEWER}),  # orders and receipts
    "billing.manage": frozenset({OWNER, ADMIN, BILLING}),  # buy, refund, billing address, alerts, promo codes
    "webhooks.read": frozenset({OWNER, ADMIN, DEVELOPER, VIEWER}),
    "webhooks.manage": frozenset({OWNER, ADMIN, DEVELOPER}),
    "support.read": EVERYONE,
    "support.write": frozenset({OWNER, ADMIN, DEVELOPER, BILLING}),
    "audit.read": frozenset({OWNER, ADMIN}),
    # the person's own sign-in (sessions, password, second factor, switching accounts), whatever their role
    "self": EVERYONE,
    # staff routes: they check the person's staff role themselves (``shared.staff.require_staff``)
    "staff": EVERYONE,
}
UNDECLARED_READ = "account.read"
UNDECLARED_WRITE = "members.manage"


def roles_with(permission: str) -> frozenset[str]:
    try:
        return PERMISSIONS[permission]
    except KeyError:
        raise ValueError(f"unknown permission {permission!r}") from None


def allowed(role: str, permission: str) -> bool:
    return role in roles_with(permission)


def check_permission(role: str, permission: str) -> None:
    """Raise ``PermissionDenied`` (``role_forbidden``) unless ``role`` has ``permission``."""
    if allowed(role, permission):
        return
    holders = ", ".join(r for r in MEMBER_ROLES if r in PERMISSIONS[permission])
    raise PermissionDenied(
        f"your role in this account ({role}) does not allow {permission}; it needs one of: {holders}",
        code="role_forbidden",
    )


def check_member_role(role: str, param: str = "role") -> str:
    if role not in MEMBER_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(MEMBER_ROLES)}", code="invalid_role", param=param)
    return role
