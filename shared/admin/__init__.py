"""Operator actions: what the admin API (``/v1/admin``) and the ``conduit`` CLI both call.

Every action takes its dependencies as arguments; money moves only through ``shared.ledger``."""

from __future__ import annotations

from shared.infra.errors import PermissionDenied

ADMIN_ROLE = "admin"


def require_admin(role: str) -> None:
    """Admin routes are for role ``admin`` only (users and support staff get ``403 admin_only``)."""
    if role != ADMIN_ROLE:
        raise PermissionDenied("only administrators can use these routes", code="admin_only")
