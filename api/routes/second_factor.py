"""/v1/auth/second-factor: two-step sign-in with an authenticator app (TOTP) and recovery codes, for the
signed-in person (a session only). See ``shared.accounts.second_factor``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.deps import SESSION_COOKIE, AuthDep, SessionPrincipalDep, provide_auth, provide_session_principal
from api.permissions import requires
from shared.accounts import second_factor


class CodeBody(msgspec.Struct, forbid_unknown_fields=True):
    code: str


class SecondFactorController(Controller):
    opt = requires("self")
    path = "/v1/auth/second-factor"
    tags = ["auth"]
    dependencies = {
        "auth": Provide(provide_auth, sync_to_thread=False),
        "principal": Provide(provide_session_principal),
    }

    @get("/")
    async def status(self, principal: SessionPrincipalDep, auth: AuthDep) -> dict[str, Any]:
        """Whether two-step sign-in is on, and how many recovery codes are left."""
        return await second_factor.status(auth, principal.person)

    @post("/setup", status_code=200)
    async def setup(self, principal: SessionPrincipalDep, auth: AuthDep) -> dict[str, Any]:
        """A new secret for an authenticator app (``secret``, ``otpauth_uri``, ``qr_svg``); confirm it with
        ``/enable`` within 15 minutes."""
        return await second_factor.start_enrolment(auth, principal.person)

    @post("/enable", status_code=200)
    async def enable(
        self, request: Request, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]
    ) -> dict[str, Any]:
        """Turn two-step sign-in on with a ``code`` from the app. Answers the recovery codes, shown only here.
        This session counts as signed in with a second factor from now on."""
        enabled = await second_factor.confirm_enrolment(auth, principal.person, data.code)
        await auth.sessions.mark_second_factor(request.cookies.get(SESSION_COOKIE, ""))
        return enabled

    @post("/disable", status_code=200)
    async def disable(self, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]) -> dict[str, Any]:
        """Turn it off, confirmed with a current code or a recovery code."""
        return await second_factor.disable(auth, principal.person, data.code)

    @post("/recovery-codes", status_code=200)
    async def recovery_codes(
        self, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]
    ) -> dict[str, Any]:
        """New recovery codes (the old ones stop working), confirmed with a current code."""
        return await second_factor.new_recovery_codes(auth, principal.person, data.code)
