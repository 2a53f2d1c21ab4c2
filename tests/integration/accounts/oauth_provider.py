"""A simulated Google and GitHub OAuth 2.0 provider speaking their real wire formats over HTTP.

Google (OpenID Connect):   GET  /google/authorize        POST /google/token (form)   GET /google/userinfo
GitHub:                    GET  /github/login/oauth/authorize   POST /github/login/oauth/access_token (form)
                           GET  /github/api/user    GET /github/api/user/emails

The authorization endpoint plays the person who signs in: a test says who that is with ``sign_in_as``
(or ``deny_next``), and the endpoint redirects back to the client's ``redirect_uri`` with a code and the
client's ``state``, as the real consent screen does. The token endpoint checks the client credentials,
the redirect URI and the PKCE verifier (S256) against what the authorization request carried, and each code
works once. GitHub answers a bad code with HTTP 200 and ``{"error": "bad_verification_code"}``, as it does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Litestar, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from tests.harness import free_port

CLIENT_ID = {"google": "google-client-id.apps.example", "github": "Iv1.github-client-id"}
CLIENT_SECRET = {"google": "google-client-secret", "github": "github-client-secret"}


@dataclass
class GoogleUser:
    sub: str
    email: str | None
    email_verified: bool = True
    name: str = "Test Person"


@dataclass
class GitHubUser:
    id: int
    login: str
    emails: list[dict[str, Any]] = field(default_factory=list)  # [{"email", "primary", "verified", "visibility"}]


@dataclass
class _Grant:
    provider: str
    user: GoogleUser | GitHubUser
    client_id: str
    redirect_uri: str
    challenge: str
    method: str


class OAuthProvider:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.next_user: dict[str, GoogleUser | GitHubUser] = {}
        self.deny: set[str] = set()
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, GoogleUser | GitHubUser] = {}
        self.token_requests: list[dict[str, str]] = []
        self.authorize_requests: list[dict[str, str]] = []

    def env(self) -> dict[str, str]:
        return {
            "GOOGLE_CLIENT_ID": CLIENT_ID["google"],
            "GOOGLE_CLIENT_SECRET": CLIENT_SECRET["google"],
            "GOOGLE_AUTHORIZE_URL": f"{self.base_url}/google/authorize",
            "GOOGLE_TOKEN_URL": f"{self.base_url}/google/token",
            "GOOGLE_USERINFO_URL": f"{self.base_url}/google/userinfo",
            "GITHUB_CLIENT_ID": CLIENT_ID["github"],
            "GITHUB_CLIENT_SECRET": CLIENT_SECRET["github"],
            "GITHUB_AUTHORIZE_URL": f"{self.base_url}/github/login/oauth/authorize",
            "GITHUB_TOKEN_URL": f"{self.base_url}/github/login/oauth/access_token",
            "GITHUB_API_URL": f"{self.base_url}/github/api",
        }

    def sign_in_as(self, provider: str, user: GoogleUser | GitHubUser) -> None:
        self.next_user[provider] = user

    def deny_next(self, provider: str) -> None:
        self.deny.add(provider)

    # -- the endpoints ------------------------------------------------------------------------------------

    def authorize(self, provider: str, query: dict[str, str]) -> Response[Any]:
        self.authorize_requests.append({"provider": provider, **query})
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID[provider] or not redirect_uri:
            return Response({"error": "invalid_client"}, status_code=400)
        back: dict[str, str] = {"state": query.get("state", "")}
        if provider in self.deny:
            self.deny.discard(provider)
            back["error"] = "access_denied"
        elif query.get("response_type") != "code" or not query.get("code_challenge"):
            back["error"] = "invalid_request"
        else:
            user = self.next_user[provider]
            code = secrets.token_urlsafe(16)
            self._codes[code] = _Grant(
                provider,
                user,
                query["client_id"],
                redirect_uri,
                query["code_challenge"],
                query.get("code_challenge_method", "plain"),
            )
            back["code"] = code
        return Redirect(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    def token(self, provider: str, form: dict[str, str]) -> Response[Any]:
        self.token_requests.append({"provider": provider, **form})

        def refuse(error: str) -> Response[Any]:
            # Google answers 400; GitHub answers 200 with an error body.
            return Response({"error": error}, status_code=400 if provider == "google" else 200)

        if form.get("client_id") != CLIENT_ID[provider] or form.get("client_secret") != CLIENT_SECRET[provider]:
            return refuse("invalid_client")
        grant = self._codes.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.provider != provider:
            return refuse("invalid_grant" if provider == "google" else "bad_verification_code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return refuse("redirect_uri_mismatch")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant.method != "S256" or digest != grant.challenge:
            return refuse("invalid_grant")
        access_token = ("ya29." if provider == "google" else "gho_") + secrets.token_urlsafe(24)
        self._tokens[access_token] = grant.user
        if provider == "google":
            return Response(
                {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer", "scope": "openid email"},
            )
        return Response({"access_token": access_token, "token_type": "bearer", "scope": "read:user,user:email"})

    def user_for(self, request: Request[Any, Any, Any]) -> GoogleUser | GitHubUser | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self._tokens.get(token) if scheme.lower() == "bearer" else None

    def app(self) -> Litestar:
        sim = self

        @get("/google/authorize")
        async def google_authorize(request: Request[Any, Any, Any]) -> Response[Any]:
            return sim.authorize("google", dict(request.query_params))

        @get("/github/login/oauth/authorize")
        async def github_authorize(request: Request[Any, Any, Any]) -> Response[Any]:
            return sim.authorize("github", dict(request.query_params))

        @post("/google/token")
        async def google_token(
            data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
        ) -> Response[Any]:
            return sim.token("google", data)

        @post("/github/login/oauth/access_token")
        async def github_token(
            data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
        ) -> Response[Any]:
            return sim.token("github", data)

        @get("/google/userinfo")
        async def google_userinfo(request: Request[Any, Any, Any]) -> Response[Any]:
            user = sim.user_for(request)
            if not isinstance(user, GoogleUser):
                return Response({"error": "invalid_token"}, status_code=401)
            body: dict[str, Any] = {"sub": user.sub, "name": user.name, "email_verified": user.email_verified}
            if user.email is not None:
                body["email"] = user.email
            return Response(body)

        @get("/github/api/user")
        async def github_user(request: Request[Any, Any, Any]) -> Response[Any]:
            user = sim.user_for(request)
            if not isinstance(user, GitHubUser):
                return Response({"message": "Bad credentials"}, status_code=401)
            return Response({"id": user.id, "login": user.login, "email": None, "type": "User"})

        @get("/github/api/user/emails")
        async def github_emails(request: Request[Any, Any, Any]) -> Response[Any]:
            user = sim.user_for(request)
            if not isinstance(user, GitHubUser):
                return Response({"message": "Bad credentials"}, status_code=401)
            return Response(user.emails)

        return Litestar(
            [
                google_authorize,
                github_authorize,
                google_token,
                github_token,
                google_userinfo,
                github_user,
                github_emails,
            ]
        )
