"""What a route promises in the OpenAPI document beyond its success type: the errors it can answer and the
credentials it accepts, declared once where they arise and gathered per operation by ``api.openapi_document``.

* ``@raises(NotFound, (PermissionDenied, "csrf_failed"), ...)`` on a route handler, or on a dependency provider
  (``provide_principal``, ``provide_admin``, ...): every route that uses it documents those errors, each under its
  class's status (``api.errors.DOMAIN_ERRORS``) with its code (the class's default, or the codes given).
* ``@accepts(API_KEY, SESSION)`` on an authentication provider: every route that uses it lists those security
  schemes (a session changing anything also sends the CSRF header); a route using none is public.
* ``@reads(TicketBody, files=True)`` on a route that parses its body itself (JSON, or with ``files`` also
  ``multipart/form-data`` with the same fields and file parts): the document shows that body.

The errors that come from a route's shape need no declaration: a body or parameters can be refused (400), a
body can be too large or not JSON (413, 415), a path names an object that may not exist (404), anything
can fail on our side (500), and the database can be unreachable for a moment (503 ``database_unavailable``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import msgspec

from shared.infra.errors import ConduitError

F = TypeVar("F", bound=Callable[..., Any])

# An error a route can answer: its class (with the class's code), or its class and the codes it can carry.
ErrorSpec: TypeAlias = type[ConduitError] | tuple[type[ConduitError], str, *tuple[str, ...]]

# The security schemes of the document (their definitions: api.openapi_document).
API_KEY = "apiKey"  # Authorization: Bearer cdt_...
SESSION = "session"  # the session cookie set by sign-in
CSRF = "csrf"  # X-CSRF-Token, sent with the session cookie on any request that changes something

_RAISES = "__conduit_raises__"
_ACCEPTS = "__conduit_accepts__"
_READS = "__conduit_reads__"


def raises(*errors: ErrorSpec) -> Callable[[F], F]:
    """Declare the domain errors a route handler or a dependency provider can raise (beyond its shape's)."""

    def mark(fn: F) -> F:
        setattr(fn, _RAISES, (*getattr(fn, _RAISES, ()), *errors))
        return fn

    return mark


def accepts(*schemes: str) -> Callable[[F], F]:
    """Declare the credentials an authentication provider accepts (``API_KEY``, ``SESSION``)."""

    def mark(fn: F) -> F:
        setattr(fn, _ACCEPTS, schemes)
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class ReadBody:
    """A body a route reads itself: ``fields`` (a struct of text, number and boolean fields) as JSON unless
    ``multipart_only``; with ``files`` also as multipart/form-data, with any number of ``files`` parts (True) or
    the named file parts (``required_files`` among them required)."""

    fields: type[msgspec.Struct]
    files: bool | tuple[str, ...] = False
    required_files: tuple[str, ...] = ()
    multipart_only: bool = False


def reads(
    body: type[msgspec.Struct],
    *,
    files: bool | tuple[str, ...] = False,
    required_files: tuple[str, ...] = (),
    multipart_only: bool = False,
) -> Callable[[F], F]:
    """Declare the body a route handler reads itself (see ``ReadBody``)."""

    def mark(fn: F) -> F:
        setattr(fn, _READS, ReadBody(body, files, required_files, multipart_only))
        return fn

    return mark


def declared_body(fn: Callable[..., Any]) -> ReadBody | None:
    """The body declared on ``fn`` with ``reads``, or None."""
    body: ReadBody | None = getattr(fn, _READS, None)
    return body


def declared_errors(fn: Callable[..., Any]) -> list[tuple[type[ConduitError], tuple[str, ...]]]:
    """The errors declared on ``fn``: each class with the codes it can carry."""
    found = []
    for spec in getattr(fn, _RAISES, ()):
        if isinstance(spec, tuple):
            cls, *codes = spec
            found.append((cls, tuple(codes)))
        else:
            found.append((spec, (spec.code,)))
    return found


def accepted_schemes(fns: Iterable[Callable[..., Any]]) -> tuple[str, ...] | None:
    """The credentials accepted by the first authentication provider among ``fns`` (None: the route is public)."""
    for fn in fns:
        schemes: tuple[str, ...] | None = getattr(fn, _ACCEPTS, None)
        if schemes is not None:
            return schemes
    return None
