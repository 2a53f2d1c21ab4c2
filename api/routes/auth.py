"""/v1/auth: sign-up, email verification, sign-in and sign-out, sessions, passwords."""

from __future__ import annotations

import html
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.di import Provide
from litestar.enums import MediaType, RequestEncodingType
from litestar.params import Body, FromPath, JSONBody, QueryParameter

from api.contract import raises
from api.deps import (
    SESSION_COOKIE,
    AuthDep,
    ServicesDep,
    SessionPrincipalDep,
    check_origin,
    password_client,
    provide_auth,
    provide_session_principal,
)
from api.permissions import requires
from api.proxies import client_ip
from api.schemas.auth import AuthRequest, EmailVerification, PasswordReset, SignedIn, pending
from shared.accounts import signin, signup
from shared.accounts.devices import DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE_S, DEVICE_COOKIE_PATH
from shared.accounts.second_factor import Challenge, SecondFactorRequired
from shared.accounts.service import Account, get_account
from shared.accounts.sessions import Session, SessionInfo
from shared.accounts.settings import AuthSettings
from shared.accounts.signup import AuthDeps
from shared.infra.errors import InvalidInput, NotFound, PermissionDenied, RateLimited, Unauthenticated
from shared.infra.pagination import ListEnvelope, list_envelope
from shared.services import Services

# What the routes that take a password or send a mail can refuse besides their input
FOREIGN_ORIGIN = (PermissionDenied, "origin_not_allowed")
THROTTLED = (RateLimited, "too_many_signin_attempts", "too_many_requests", "too_many_mails", "too_many_code_attempts")
WEAK_PASSWORD = (InvalidInput, "invalid_input", "weak_password")
INVALID_TOKEN = (InvalidInput, "invalid_token")


class SignUpBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: str
    age_confirmed: bool = False


class EmailBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    token: str


class SignInBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    password: str


class SecondFactorBody(msgspec.Struct, forbid_unknown_fields=True):
    challenge: str
    code: str


class ResetBody(msgspec.Struct, forbid_unknown_fields=True):
    token: str
    password: str


class ChangePasswordBody(msgspec.Struct, forbid_unknown_fields=True):
    current_password: str
    new_password: str


def session_cookie(settings: AuthSettings, token: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        max_age=max_age,
        httponly=True,
        secure=settings.session_cookie_secure,
        samesite="strict" if settings.session_cookie_samesite == "strict" else "lax",
    )


def device_cookie(settings: AuthSettings, value: str) -> Cookie:
    """The browser's sign-in device cookie (``shared.accounts.devices``): sent only to the API, never to scripts."""
    return Cookie(
        key=DEVICE_COOKIE,
        value=value,
        path=DEVICE_COOKIE_PATH,
        max_age=DEVICE_COOKIE_MAX_AGE_S,
        httponly=True,
        secure=settings.session_cookie_secure,
        samesite="strict",
    )


def signed_in_body(session: Session, account: Account) -> SignedIn:
    return SignedIn(
        object="signed_in", account=account, session=session.public(current=True), csrf_token=session.csrf_token
    )


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem;margin:.3rem 0;width:100%;box-sizing:border-box}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(
        page,
        status_code=status,
        media_type=MediaType.HTML,
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


async def signed_in_response(services: Services, auth: AuthDeps, signed_in: signin.SignedIn) -> Response[SignedIn]:
    """The answer that opens a session: its cookie, and the browser's device cookie."""
    session = signed_in.session
    account = (await get_account(services.db, session.account_id)).public()
    return Response(
        signed_in_body(session, account),
        cookies=[
            session_cookie(auth.settings, signed_in.token, int(session.expires_at - session.created_at)),
            device_cookie(auth.settings, signed_in.device_cookie),
        ],
    )


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]
    opt = requires("self")
    dependencies = {"auth": Provide(provide_auth, sync_to_thread=False)}

    @post("/signup", operation_id="signUp", status_code=202)
    @raises(WEAK_PASSWORD, (InvalidInput, "age_confirmation_required"), FOREIGN_ORIGIN, THROTTLED)
    async def sign_up(
        self, request: Request, data: JSONBody[SignUpBody], auth: AuthDep, services: ServicesDep
    ) -> AuthRequest:
        check_origin(request, services)
        email = await signup.sign_up(
            auth, email=data.email, password=data.password, age_confirmed=data.age_confirmed, ip=client_ip(request)
        )
        return pending(email)

    @get("/verify-email", operation_id="verifyEmailLink")
    @raises(INVALID_TOKEN)
    async def verify_email_link(
        self, auth: AuthDep, token: Annotated[str, QueryParameter(max_length=200)]
    ) -> EmailVerification:
        """The link in the verification mail."""
        account_id, email = await signup.verify_email(auth, token)
        return EmailVerification(object="email_verification", verified=True, account_id=str(account_id), email=email)

    @post("/verify-email", operation_id="verifyEmail", status_code=200)
    @raises(INVALID_TOKEN)
    async def verify_email(self, auth: AuthDep, data: JSONBody[TokenBody]) -> EmailVerification:
        account_id, email = await signup.verify_email(auth, data.token)
        return EmailVerification(object="email_verification", verified=True, account_id=str(account_id), email=email)

    @post("/verify-email/resend", operation_id="resendVerificationEmail", status_code=202)
    @raises(FOREIGN_ORIGIN, THROTTLED)
    async def resend_verification(
        self, request: Request, data: JSONBody[EmailBody], auth: AuthDep, services: ServicesDep
    ) -> AuthRequest:
        check_origin(request, services)
        email = await signup.resend_verification(auth, email=data.email, ip=client_ip(request))
        return pending(email)

    @post("/signin", operation_id="signIn", status_code=200)
    @raises(
        (Unauthenticated, "invalid_credentials"),
        (PermissionDenied, "email_not_verified", "account_suspended", "origin_not_allowed"),
        THROTTLED,
    )
    async def sign_in(
        self, request: Request, data: JSONBody[SignInBody], auth: AuthDep, services: ServicesDep
    ) -> Response[SignedIn | SecondFactorRequired]:
        check_origin(request, services)
        signed_in = await signin.sign_in(
            auth,
            email=data.email,
            password=data.password,
            client=password_client(request),
            user_agent=request.headers.get("user-agent", ""),
        )
        if isinstance(signed_in, Challenge):  # two-step sign-in: no session until the code
            return Response(signed_in.public())
        return await signed_in_response(services, auth, signed_in)  # type: ignore[return-value]  # Response is invariant

    @post("/signin/second-factor", operation_id="signInSecondFactor", status_code=200)
    @raises(
        (InvalidInput, "invalid_input", "invalid_code", "challenge_expired"),
        (Unauthenticated, "invalid_credentials"),
        (PermissionDenied, "account_suspended", "origin_not_allowed"),
        THROTTLED,
    )
    async def second_factor(
        self, request: Request, data: JSONBody[SecondFactorBody], auth: AuthDep, services: ServicesDep
    ) -> Response[SignedIn]:
        """The second step of a two-step sign-in: the ``challenge`` from ``/signin`` and a ``code`` (from the
        authenticator app, or a recovery code) open the session."""
        check_origin(request, services)
        signed_in, _ = await signin.pass_second_factor(
            auth,
            challenge=data.challenge,
            code=data.code,
            client=password_client(request),
            user_agent=request.headers.get("user-agent", ""),
        )
        return await signed_in_response(services, auth, signed_in)

    @post(
        "/signout",
        operation_id="signOut",
        status_code=204,
        dependencies={"principal": Provide(provide_session_principal)},
    )
    async def sign_out(self, principal: SessionPrincipalDep, auth: AuthDep) -> Response[None]:
        assert principal.session_id is not None
        await auth.sessions.revoke(principal.person, principal.session_id)
        return Response(None, status_code=204, cookies=[session_cookie(auth.settings, "", 0)])

    @get("/session", operation_id="getSession", dependencies={"principal": Provide(provide_session_principal)})
    async def current_session(
        self, request: Request, principal: SessionPrincipalDep, auth: AuthDep, services: ServicesDep
    ) -> SignedIn:
        session = await auth.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            raise NotFound("session not found", code="session_not_found")
        account = (await get_account(services.db, principal.account_id)).public()
        account.has_password = await signin.account_has_password(auth, principal.person)
        return signed_in_body(session, account)

    @get("/sessions", operation_id="listSessions", dependencies={"principal": Provide(provide_session_principal)})
    async def list_sessions(self, principal: SessionPrincipalDep, auth: AuthDep) -> ListEnvelope[SessionInfo]:
        sessions = await auth.sessions.list(principal.person)
        return list_envelope([s.public(current=s.id == principal.session_id) for s in sessions])

    @delete(
        "/sessions/{session_id:str}",
        operation_id="revokeSession",
        status_code=204,
        dependencies={"principal": Provide(provide_session_principal)},
    )
    @raises((NotFound, "session_not_found"))
    async def revoke_session(self, principal: SessionPrincipalDep, auth: AuthDep, session_id: FromPath[str]) -> None:
        if not await auth.sessions.revoke(principal.person, session_id):
            raise NotFound(f"no session {session_id}", code="session_not_found", param="session_id")

    @post(
        "/password",
        operation_id="changePassword",
        status_code=204,
        dependencies={"principal": Provide(provide_session_principal)},
    )
    @raises((InvalidInput, "invalid_input", "weak_password", "no_password", "invalid_credentials"), THROTTLED)
    async def change_password(
        self, request: Request, principal: SessionPrincipalDep, auth: AuthDep, data: JSONBody[ChangePasswordBody]
    ) -> None:
        await signin.change_password(
            auth,
            principal,
            current_password=data.current_password,
            new_password=data.new_password,
            client=password_client(request),
        )

    @post("/password-reset", operation_id="requestPasswordReset", status_code=202)
    @raises(FOREIGN_ORIGIN, THROTTLED)
    async def request_reset(
        self, request: Request, data: JSONBody[EmailBody], auth: AuthDep, services: ServicesDep
    ) -> AuthRequest:
        check_origin(request, services)
        email = await signup.request_password_reset(auth, email=data.email, ip=client_ip(request))
        return pending(email)

    @post("/password-reset/confirm", operation_id="confirmPasswordReset", status_code=200)
    @raises((InvalidInput, "invalid_input", "invalid_token", "weak_password"))
    async def confirm_reset(self, auth: AuthDep, data: JSONBody[ResetBody]) -> PasswordReset:
        await signup.reset_password(auth, token=data.token, password=data.password)
        return PasswordReset(object="password_reset", reset=True, message="password changed; sign in with it")

    @get("/password-reset", include_in_schema=False)
    async def reset_page(self, token: Annotated[str, QueryParameter(max_length=200)] = "") -> Response[str]:
        """The page the reset mail links to when there is no website: a form that posts the new password."""
        return _page(
            "Choose a new password",
            f"""<form method="post" action="/v1/auth/password-reset/form">
<input type="hidden" name="token" value="{html.escape(token)}">
<label>New password (at least 10 characters)<input type="password" name="password" autocomplete="new-password"
 minlength="10" required autofocus></label>
<button type="submit">Set password</button></form>""",
        )

    @post("/password-reset/form", status_code=200, include_in_schema=False)
    async def reset_form(
        self,
        auth: AuthDep,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[str]:
        try:
            await signup.reset_password(auth, token=data.get("token", ""), password=data.get("password", ""))
        except InvalidInput as exc:
            retry = ""
            if exc.code == "weak_password":
                retry = (
                    f'<p><a href="/v1/auth/password-reset?token={html.escape(data.get("token", ""))}">Try again</a></p>'
                )
            return _page("Password not changed", f"<p>{html.escape(exc.message)}</p>{retry}", status=400)
        return _page("Password changed", "<p>Your password was changed. You can sign in with it now.</p>")
