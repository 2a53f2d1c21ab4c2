"""Who is looking at a page, and how a page is answered.

A page reads the session cookie set by sign-in (``POST /v1/auth/signin``) through the same
``session_principal`` as the API. Pages themselves only read: every change is made by the page's script
calling the JSON API with the session's CSRF token (``X-CSRF-Token``, from the page's ``csrf-token`` meta
tag), so the API's own checks (CSRF, Origin, rate limits, validation) apply to the website too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote

from litestar import Request
from litestar.di import NamedDependency
from litestar.response import Redirect, Template

from api.deps import SESSION_COOKIE, ServicesDep
from api.web.security import add_page_headers
from shared.accounts.keys import Principal
from shared.accounts.sessions import Session, session_principal
from shared.infra.errors import PermissionDenied, Unauthenticated
from shared.openai_api import settlements


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in person (``principal`` and ``session``), or nobody."""

    principal: Principal | None = None
    session: Session | None = None

    @property
    def signed_in(self) -> bool:
        return self.principal is not None

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""


VisitorDep: TypeAlias = NamedDependency[Visitor]
MemberDep: TypeAlias = NamedDependency[Principal]


class SignInRequired(Exception):
    """A dashboard page without a session: the browser is sent to the sign-in page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


async def provide_visitor(request: Request[Any, Any, Any], services: ServicesDep) -> Visitor:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return Visitor()
    try:
        principal, session = await session_principal(services.db, services.sessions, token)
    except (Unauthenticated, PermissionDenied):  # ended, expired or suspended: the page is shown signed out
        return Visitor()
    await settlements.settled(
        services.background, principal.account_id
    )  # pages show the account's chat completions settled
    return Visitor(principal, session)


async def provide_member(request: Request[Any, Any, Any], visitor: VisitorDep) -> Principal:
    if visitor.principal is None:  # back to the same page (with its query) once signed in
        query = request.url.query
        raise SignInRequired(f"{request.url.path}?{query}" if query else request.url.path)
    return visitor.principal


def signin_redirect(path: str) -> Redirect:
    return Redirect(f"/signin?next={quote(path, safe='/')}", status_code=303)


def page(template: str, visitor: Visitor, status_code: int = 200, *, private: bool = False, **context: Any) -> Template:
    """A rendered page with the security headers; dashboard pages (``private``) are never cached."""
    response = Template(
        template_name=template,
        context={"visitor": visitor, "csrf_token": visitor.csrf_token, **context},
        status_code=status_code,
    )
    add_page_headers(response, private=private or visitor.signed_in)
    return response
