"""/v1/auth/second-factor: two-step sign-in with an authenticator app (TOTP) and recovery codes, for the
signed-in person (a session only). See ``shared.accounts.second_factor``."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import JSONBody

from api.contract import raises
from api.deps import SESSION_COOKIE, AuthDep, SessionPrincipalDep, provide_auth, provide_session_principal
from api.permissions import requires
from shared.accounts import second_factor
from shared.accounts.second_factor import SecondFactorChange, SecondFactorEnrolment, SecondFactorStatus
from shared.infra.errors import Conflict, InvalidInput, RateLimited

WRONG_CODE = (InvalidInput, "invalid_input", "invalid_code")
THROTTLED = (RateLimited, "too_many_code_attempts")


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

    @get("/", operation_id="getSecondFactor")
    async def status(self, principal: SessionPrincipalDep, auth: AuthDep) -> SecondFactorStatus:
        """Whether two-step sign-in is on, and how many recovery codes are left."""
        return await second_factor.status(auth, principal.person)

    @post("/setup", operation_id="setUpSecondFactor", status_code=200)
    @raises((Conflict, "totp_enabled", "account_deleted"))
    async def setup(self, principal: SessionPrincipalDep, auth: AuthDep) -> SecondFactorEnrolment:
        """A new secret for an authenticator app (``secret``, ``otpauth_uri``, ``qr_svg``); confirm it with
        ``/enable`` within 15 minutes."""
        return await second_factor.start_enrolment(auth, principal.person)

    @post("/enable", operation_id="enableSecondFactor", status_code=200)
    @raises(WRONG_CODE, (Conflict, "totp_enabled", "totp_enrolment_expired"), THROTTLED)
    async def enable(
        self, request: Request, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]
    ) -> SecondFactorChange:
        """Turn two-step sign-in on with a ``code`` from the app. Answers the recovery codes, shown only here.
        This session counts as signed in with a second factor from now on."""
        enabled = await second_factor.confirm_enrolment(auth, principal.person, data.code)
        await auth.sessions.mark_second_factor(request.cookies.get(SESSION_COOKIE, ""))
        return enabled

    @post("/disable", operation_id="disableSecondFactor", status_code=200)
    @raises(WRONG_CODE, THROTTLED)
    async def disable(
        self, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]
    ) -> SecondFactorChange:
        """Turn it off, confirmed with a current code or a recovery code."""
        return await second_factor.disable(auth, principal.person, data.code)

    @post("/recovery-codes", operation_id="createRecoveryCodes", status_code=200)
    @raises(WRONG_CODE, THROTTLED)
    async def recovery_codes(
        self, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[CodeBody]
    ) -> SecondFactorChange:
        """New recovery codes (the old ones stop working), confirmed with a current code."""
        return await second_factor.new_recovery_codes(auth, principal.person, data.code)
