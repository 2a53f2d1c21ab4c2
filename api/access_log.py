"""The access log: one line per HTTP request, written when its response has been sent.

The line (logger ``conduit.access``, a JSON object per line like every log line) holds the method, the route
template (``/v1/tasks/{task_id}``: never the raw path, whose query may carry a file URL's signature), the status,
the duration, the response body's size, the request id and, once the request is authenticated, the account id
and the API key's visible prefix (``cdt_3kT9xQab``) — never a secret, a cookie or a body. ``ACCESS_LOG=false``
turns it off.

The route's authentication (``api.deps``) tells who is calling through ``note_key`` and ``note_account``; they
write into the request's ``AccessEntry``, which the observability middleware keeps in a context variable.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from dataclasses import dataclass

from shared.accounts.keys import KEY_PATTERN, VISIBLE_PREFIX_LENGTH

log = logging.getLogger("conduit.access")


@dataclass(slots=True)
class AccessEntry:
    """What the access line says about the caller, filled in while the request is served."""

    account_id: uuid.UUID | None = None
    key_prefix: str | None = None
    bytes_sent: int = 0


current_entry: contextvars.ContextVar[AccessEntry | None] = contextvars.ContextVar("access_entry", default=None)


def note_key(secret: str | None) -> None:
    """The request presented this API key: its visible prefix goes in the line (a string that is not a Conduit
    key, perhaps another service's secret pasted by mistake, is never written)."""
    entry = current_entry.get()
    if entry is not None and secret and KEY_PATTERN.match(secret):
        entry.key_prefix = secret[:VISIBLE_PREFIX_LENGTH]


def note_account(account_id: uuid.UUID) -> None:
    """The request is authenticated as this account."""
    entry = current_entry.get()
    if entry is not None:
        entry.account_id = account_id


def write(entry: AccessEntry, method: str, route: str, status: int, duration_s: float) -> None:
    duration_ms = round(duration_s * 1000, 2)
    log.info(
        "%s %s %d %.2fms",
        method,
        route,
        status,
        duration_ms,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "bytes": entry.bytes_sent,
            "account_id": str(entry.account_id) if entry.account_id is not None else None,
            "key_prefix": entry.key_prefix,
        },
    )
