"""Staff: who may run the operator and support console, and the audit log of everything staff do.

* Roles: ``support`` answers tickets and reads the console; ``admin`` also acts on accounts, tasks,
  providers, billing and staff roles. Every check is made where the action is (``require_staff``).
* A person's session reaches a staff route only after a second factor (TOTP or a recovery code,
  ``shared.accounts.second_factor``): a staff member without one is sent to enrol first.
* Every staff action, and every refused attempt of a staff member, is appended to ``staff_audit_log``
  (``shared.staff.audit``), which the database itself keeps append-only.
"""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass

from shared.accounts.keys import Principal
from shared.infra.errors import PermissionDenied

STAFF_ROLES = ("support", "admin")
ADMIN_ROLE = "admin"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does a staff action, as the audit log records it."""

    account_id: uuid.UUID | None  # None: the command line
    role: str
    via: str  # "api" (an API key), "console" (a person's session), "cli", "strike_rule" (moderation strikes)
    ip: str = ""
    name: str = ""  # shown when the account has no address (the command line's user and host)

    @property
    def label(self) -> str:
        """How the ledger names this actor in a description."""
        return self.name or f"{self.role} {self.account_id}"

    @classmethod
    def of(cls, principal: Principal, ip: str) -> Actor:
        return cls(principal.person, principal.role, "console" if principal.via_session else "api", ip)

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = "unknown"
        return cls(None, "operator", "cli", name=f"cli:{user}@{socket.gethostname()}")


def second_factor_missing(principal: Principal) -> bool:
    """A person's session that has not passed a second factor (API keys are not sign-ins)."""
    return principal.via_session and not principal.second_factor


def require_staff(principal: Principal, *, admin: bool = False) -> None:
    """Staff routes need role ``support`` or ``admin`` (``admin`` only, with ``admin=True``), and a session that
    passed its second factor."""
    if admin and principal.role != ADMIN_ROLE:
        raise PermissionDenied("only administrators can do this", code="admin_only")
    if principal.role not in STAFF_ROLES:
        raise PermissionDenied("only support staff can use these routes", code="staff_only")
    if second_factor_missing(principal):
        raise PermissionDenied(
            "staff sign-in needs a second factor: set up an authenticator app in the dashboard's settings, "
            "then sign in again with its code",
            code="second_factor_required",
        )
