"""Sign-in with Google and GitHub: OAuth 2.0 authorization code flow with state and PKCE (S256).

``start`` remembers a random ``state`` and PKCE verifier in Redis (10 minutes, single use) and returns the
provider's authorization URL; the route also puts the state in a short-lived cookie, so only the browser
that started a sign-in can finish it. ``finish`` checks the state against the cookie, exchanges the code
(with the verifier) for an access token, reads the person's verified address (Google: the OpenID userinfo
``email`` with ``email_verified``; GitHub: the primary verified address from ``/user/emails``), then finds
the linked account, or links the account with that verified address, or creates one.

Linking to an account whose address was never verified (someone signed up with it and never confirmed)
removes that account's password: nobody proved it belonged to the address's owner. Provider endpoints are
settings, so tests point them at a simulated provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from redis.asyncio import Redis

from shared.accounts import second_factor, tokens
from shared.accounts.redirects import has_unsafe_characters, same_site_path
from shared.accounts.rewards import mark_email_verified
from shared.accounts.service import normalize_email
from shared.accounts.sessions import Session
from shared.accounts.settings import OAuthProviderSettings
from shared.accounts.signup import AuthDeps
from shared.infra.db import Connection
from shared.infra.errors import Conflict, InvalidInput, NotFound, PermissionDenied, UpstreamFailed
from shared.infra.ids import uuid7

PROVIDERS = {"google": "Google", "github": "GitHub"}
SCOPES = {"google": "openid email profile", "github": "read:user user:email"}
STATE_KEY = "conduit:oauth:state:"
STATE_TTL_S = 600
STATE_COOKIE = "conduit_oauth_state"
HTTP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    email: str | None
    email_verified: bool


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    session: Session
    account_id: uuid.UUID
    created: bool
    redirect_to: str | None


def provider_settings(deps: AuthDeps, provider: str) -> OAuthProviderSettings:
    if provider not in PROVIDERS:
        raise NotFound(f"unknown sign-in provider {provider!r}; use google or github", code="oauth_provider_not_found")
    config: OAuthProviderSettings = getattr(deps.settings, provider)
    if not config.configured:
        raise NotFound(f"sign-in with {PROVIDERS[provider]} is not set up on this server", code="oauth_not_configured")
    return config


def callback_url(public_base_url: str, provider: str) -> str:
    return f"{public_base_url}/v1/auth/oauth/{provider}/callback"


def check_redirect(deps: AuthDeps, redirect_to: str | None) -> str | None:
    """Where to send the browser afterwards: a path on this site or a URL on an allowed origin."""
    if not redirect_to:
        return None
    if same_site_path(redirect_to):
        return redirect_to
    parts = urlsplit(redirect_to)
    if (
        not has_unsafe_characters(redirect_to)
        and parts.scheme in ("http", "https")
        and f"{parts.scheme}://{parts.netloc}".lower() in deps.settings.allowed_origins
    ):
        return redirect_to
    raise InvalidInput("redirect_to must be a path on this site or a URL on an allowed origin", param="redirect_to")


async def start(
    deps: AuthDeps, redis: Redis, public_base_url: str, provider: str, *, redirect_to: str | None, age_confirmed: bool
) -> tuple[str, str]:
    """Begin a sign-in. Returns (authorization URL to redirect the browser to, state for the cookie)."""
    config = provider_settings(deps, provider)
    redirect_to = check_redirect(deps, redirect_to)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    flow = {"provider": provider, "verifier": verifier, "redirect_to": redirect_to, "age_confirmed": age_confirmed}
    await redis.set(STATE_KEY + state, json.dumps(flow), ex=STATE_TTL_S)
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": callback_url(public_base_url, provider),
        "scope": SCOPES[provider],
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if provider == "google":
        query["prompt"] = "select_account"
    separator = "&" if "?" in config.authorize_url else "?"
    return f"{config.authorize_url}{separator}{urlencode(query)}", state


def _state_mismatch() -> InvalidInput:
    return InvalidInput(
        "this sign-in could not be verified (state mismatch or expired); start the sign-in again",
        code="oauth_state_mismatch",
        param="state",
    )


async def finish(
    deps: AuthDeps,
    redis: Redis,
    public_base_url: str,
    provider: str,
    *,
    code: str | None,
    state: str | None,
    cookie_state: str | None,
    error: str | None,
    ip: str,
    user_agent: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SignedIn | second_factor.Challenge:
    config = provider_settings(deps, provider)
    if not state or not cookie_state or not hmac.compare_digest(state.encode(), cookie_state.encode()):
        raise _state_mismatch()
    raw = await redis.getdel(STATE_KEY + state)
    if raw is None:
        raise _state_mismatch()
    flow = json.loads(raw)
    if flow.get("provider") != provider:
        raise _state_mismatch()
    if error:
        raise InvalidInput(f"{PROVIDERS[provider]} sign-in was not completed ({error[:100]})", code="oauth_denied")
    if not code:
        raise InvalidInput("the provider sent no authorization code", code="oauth_failed", param="code")
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, transport=transport, follow_redirects=False) as http:
        access_token = await _exchange_code(http, provider, config, code, flow["verifier"], public_base_url)
        identity = await (_google_identity if provider == "google" else _github_identity)(http, config, access_token)
    async with deps.db.transaction() as conn:
        account_id, created = await _link_or_create(conn, deps, provider, identity, bool(flow.get("age_confirmed")))
        status = await conn.fetchval("SELECT status FROM accounts WHERE id = $1", account_id)
    if status == "suspended":
        raise PermissionDenied("this account is suspended; contact support", code="account_suspended")
    if await second_factor.enabled(deps, account_id):  # two-step sign-in: a code opens the session
        email = await deps.db.fetchval("SELECT email FROM accounts WHERE id = $1", account_id)
        return await second_factor.create_challenge(deps, account_id, email, redirect_to=flow.get("redirect_to"))
    token, session = await deps.sessions.create(account_id, ip=ip, user_agent=user_agent)
    return SignedIn(token, session, account_id, created, flow.get("redirect_to"))


async def _exchange_code(
    http: httpx.AsyncClient,
    provider: str,
    config: OAuthProviderSettings,
    code: str,
    verifier: str,
    public_base_url: str,
) -> str:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback_url(public_base_url, provider),
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "code_verifier": verifier,
    }
    body = await _call(http, "POST", config.token_url, provider, data=data, headers={"Accept": "application/json"})
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        # GitHub answers 200 with {"error": "bad_verification_code", ...} for a bad or reused code.
        raise InvalidInput(f"{PROVIDERS[provider]} did not accept this sign-in; start again", code="oauth_failed")
    return token


async def _google_identity(http: httpx.AsyncClient, config: OAuthProviderSettings, access_token: str) -> Identity:
    info = await _call(http, "GET", config.userinfo_url, "google", headers=_bearer(access_token))
    if not isinstance(info, dict) or not info.get("sub"):
        raise UpstreamFailed("Google sent an unexpected answer; try again later", code="oauth_provider_error")
    verified = info.get("email_verified")
    return Identity(
        subject=str(info["sub"]),
        email=info.get("email") if isinstance(info.get("email"), str) else None,
        email_verified=verified is True or verified == "true",
    )


async def _github_identity(http: httpx.AsyncClient, config: OAuthProviderSettings, access_token: str) -> Identity:
    headers = {**_bearer(access_token), "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    user = await _call(http, "GET", f"{config.userinfo_url}/user", "github", headers=headers)
    emails = await _call(http, "GET", f"{config.userinfo_url}/user/emails", "github", headers=headers)
    if not isinstance(user, dict) or user.get("id") is None or not isinstance(emails, list):
        raise UpstreamFailed("GitHub sent an unexpected answer; try again later", code="oauth_provider_error")
    primary = next(
        (e for e in emails if isinstance(e, dict) and e.get("primary") is True and isinstance(e.get("email"), str)),
        None,
    )
    return Identity(
        subject=str(user["id"]),
        email=primary["email"] if primary else None,
        email_verified=bool(primary and primary.get("verified") is True),
    )


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def _call(http: httpx.AsyncClient, method: str, url: str, provider: str, **kwargs: Any) -> Any:
    name = PROVIDERS[provider]
    try:
        response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise UpstreamFailed(f"could not reach {name}; try again later", code="oauth_provider_error") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise UpstreamFailed(f"{name} is not answering properly; try again later", code="oauth_provider_error")
    if response.status_code >= 400:
        raise InvalidInput(f"{name} did not accept this sign-in; start again", code="oauth_failed")
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamFailed(f"{name} sent an unexpected answer; try again later", code="oauth_provider_error") from exc


async def _link_or_create(
    conn: Connection, deps: AuthDeps, provider: str, identity: Identity, age_confirmed: bool
) -> tuple[uuid.UUID, bool]:
    linked = await conn.fetchval(
        "UPDATE oauth_identities SET last_used_at = now() WHERE provider = $1 AND subject = $2 RETURNING account_id",
        provider,
        identity.subject,
    )
    if linked is not None:
        return linked, False
    if not identity.email or not identity.email_verified:
        raise InvalidInput(
            f"your {PROVIDERS[provider]} account has no verified email address; verify one there and try again",
            code="oauth_email_unverified",
        )
    email = normalize_email(identity.email)
    existing = await conn.fetchrow("SELECT id, email_verified_at FROM accounts WHERE email = $1 FOR UPDATE", email)
    created = existing is None
    if existing is not None:
        account_id = existing["id"]
        if existing["email_verified_at"] is None:
            # Someone signed up with this address and never confirmed it: that password is not the owner's.
            await conn.execute("UPDATE accounts SET password_hash = NULL WHERE id = $1", account_id)
            await tokens.revoke_tokens(conn, account_id)
    else:
        if not age_confirmed:
            raise InvalidInput(
                "confirm that you are at least 18 years old to create an account (age_confirmed=true)",
                code="age_confirmation_required",
                param="age_confirmed",
            )
        account_id = await conn.fetchval(
            """
            INSERT INTO accounts (id, email, age_confirmed_at) VALUES ($1, $2, now())
            ON CONFLICT (email) DO NOTHING RETURNING id
            """,
            uuid7(),
            email,
        )
        if account_id is None:
            raise Conflict("this account is being created by another request; try again", code="signup_in_progress")
    await mark_email_verified(conn, account_id, deps.settings)
    await conn.execute(
        """
        INSERT INTO oauth_identities (id, account_id, provider, subject, email, last_used_at)
        VALUES ($1, $2, $3, $4, $5, now())
        """,
        uuid7(),
        account_id,
        provider,
        identity.subject,
        email,
    )
    return account_id, created
