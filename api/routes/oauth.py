"""/v1/auth/oauth/{provider}: sign-in with Google or GitHub (authorization code flow with state and PKCE)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import Cookie
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from api.contract import raises
from api.deps import AuthDep, ServicesDep, provide_auth
from api.proxies import client_ip
from api.routes.auth import session_cookie, signed_in_body
from api.schemas.auth import OAuthSignedIn
from shared.accounts import oauth
from shared.accounts.second_factor import Challenge, SecondFactorRequired
from shared.accounts.service import get_account
from shared.infra.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamFailed

OAUTH_PROVIDER = (NotFound, "oauth_provider_not_found", "oauth_not_configured")
STATE_COOKIE_PATH = "/v1/auth/oauth"


def state_cookie(secure: bool, value: str, max_age: int) -> Cookie:
    # SameSite=Lax: the provider's redirect back to us is a top-level navigation, which Lax cookies follow.
    return Cookie(
        key=oauth.STATE_COOKIE,
        value=value,
        path=STATE_COOKIE_PATH,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="lax",
    )


class OAuthController(Controller):
    path = "/v1/auth/oauth"
    tags = ["auth"]
    dependencies = {"auth": Provide(provide_auth, sync_to_thread=False)}

    @get("/{provider:str}/start", operation_id="startOAuthSignIn", status_code=302)
    @raises(OAUTH_PROVIDER)
    async def start(
        self,
        provider: FromPath[str],
        auth: AuthDep,
        services: ServicesDep,
        redirect_to: Annotated[str | None, QueryParameter(max_length=2000)] = None,
        age_confirmed: FromQuery[bool] = False,
    ) -> Redirect:
        """Send the browser to the provider. ``age_confirmed=true`` is needed if this creates an account;
        ``redirect_to`` is where to land once signed in (otherwise the callback answers with JSON)."""
        url, state = await oauth.start(
            auth,
            services.redis,
            services.settings.public_base_url,
            provider,
            redirect_to=redirect_to,
            age_confirmed=age_confirmed,
        )
        cookie = state_cookie(auth.settings.session_cookie_secure, state, oauth.STATE_TTL_S)
        return Redirect(url, status_code=302, cookies=[cookie])

    @get(
        "/{provider:str}/callback",
        operation_id="finishOAuthSignIn",
        responses={
            303: ResponseSpec(
                None, generate_examples=False, description="Signed in: to the page asked for by redirect_to"
            )
        },
    )
    @raises(
        OAUTH_PROVIDER,
        (InvalidInput, "invalid_input", "oauth_state_mismatch", "oauth_denied", "oauth_failed",
         "oauth_email_unverified", "age_confirmation_required"),
        (PermissionDenied, "account_suspended"),
        (Conflict, "signup_in_progress"),
        (UpstreamFailed, "oauth_provider_error"),
    )  # fmt: skip
    async def callback(
        self,
        request: Request,
        provider: FromPath[str],
        auth: AuthDep,
        services: ServicesDep,
        code: Annotated[str | None, QueryParameter(max_length=2000)] = None,
        oauth_state: Annotated[str | None, QueryParameter(name="state", max_length=200)] = None,
        error: Annotated[str | None, QueryParameter(max_length=2000)] = None,
    ) -> Response[OAuthSignedIn | SecondFactorRequired]:
        signed_in = await oauth.finish(
            auth,
            services.redis,
            services.settings.public_base_url,
            provider,
            code=code,
            state=oauth_state,
            cookie_state=request.cookies.get(oauth.STATE_COOKIE),
            error=error,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )
        if isinstance(signed_in, Challenge):  # two-step sign-in: the sign-in page asks for the code
            clear = [state_cookie(auth.settings.session_cookie_secure, "", 0)]
            if signed_in.redirect_to:
                query = urlencode({"challenge": signed_in.token, "next": signed_in.redirect_to})
                return Redirect(f"/signin?{query}", status_code=303, cookies=clear)
            return Response(signed_in.public(), cookies=clear)
        session = signed_in.session
        cookies = [
            session_cookie(auth.settings, signed_in.token, int(session.expires_at - session.created_at)),
            state_cookie(auth.settings.session_cookie_secure, "", 0),
        ]
        if signed_in.redirect_to:
            return Redirect(signed_in.redirect_to, status_code=303, cookies=cookies)
        account = (await get_account(services.db, signed_in.account_id)).public()
        body = OAuthSignedIn(
            **msgspec.structs.asdict(signed_in_body(session, account)), account_created=signed_in.created
        )
        return Response(body, cookies=cookies)
