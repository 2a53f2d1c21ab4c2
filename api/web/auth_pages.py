"""Sign-up, sign-in, email verification and password reset pages.

The forms post JSON to ``/v1/auth/...`` from the page's script (the API checks the ``Origin``); the
verification link in the mail lands here and verifies through the same ``shared.accounts.signup`` service
as ``GET /v1/auth/verify-email``.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from api.deps import AuthDep, ServicesDep, provide_auth
from api.web.context import VisitorDep, page, provide_visitor
from shared.accounts import signup
from shared.accounts.redirects import same_site_path
from shared.infra.errors import InvalidInput
from shared.ledger.money import Credits

Token = Annotated[str, QueryParameter(max_length=200)]
Next = Annotated[str, QueryParameter(name="next", max_length=500)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: ``target`` if it is a path on this site (``same_site_path``), else the
    dashboard."""
    return same_site_path(target) or "/dashboard"


class AuthPages(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"visitor": Provide(provide_visitor), "auth": Provide(provide_auth, sync_to_thread=False)}

    @get("/signup")
    async def sign_up(self, visitor: VisitorDep, auth: AuthDep) -> Template | Redirect:
        if visitor.signed_in:
            return Redirect("/dashboard", status_code=303)
        return page("signup.html", visitor, oauth=_oauth_providers(auth))

    @get("/signin")
    async def sign_in(
        self, visitor: VisitorDep, auth: AuthDep, next_path: Next = "/dashboard", challenge: Token = ""
    ) -> Template | Redirect:
        """``challenge``: a Google/GitHub sign-in of an account with two-step sign-in, waiting for its code."""
        target = safe_next(next_path)
        if visitor.signed_in:
            return Redirect(target, status_code=303)
        return page("signin.html", visitor, next=target, oauth=_oauth_providers(auth), challenge=challenge)

    @get("/verify-email")
    async def verify_email(
        self, visitor: VisitorDep, auth: AuthDep, services: ServicesDep, token: Token = ""
    ) -> Template:
        """The link in the verification mail."""
        try:
            _, email = await signup.verify_email(auth, token)
        except InvalidInput as exc:
            return page("verified.html", visitor, 400, verified=False, message=exc.message)
        reward = Credits(services.settings.auth.signup_reward)
        return page("verified.html", visitor, verified=True, email=email, reward=reward)

    @get("/reset-password")
    async def reset_password(self, visitor: VisitorDep, token: Token = "") -> Template:
        """Without a token: ask for the mail. With one (the link in the mail): choose a new password."""
        return page("reset.html", visitor, token=token)


def _oauth_providers(auth: AuthDep) -> list[tuple[str, str]]:
    providers = [("google", "Google", auth.settings.google), ("github", "GitHub", auth.settings.github)]
    return [(key, label) for key, label, conf in providers if conf.configured]
