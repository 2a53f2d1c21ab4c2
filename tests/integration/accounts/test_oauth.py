"""Sign-in with Google and GitHub against a simulated provider that speaks their wire formats."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from shared.accounts import oauth
from shared.accounts.settings import OAuthProviderSettings
from shared.accounts.signup import AuthDeps
from shared.infra.errors import NotFound, UpstreamFailed
from shared.services import Services
from tests.integration.accounts.conftest import Browser, BrowserFactory, PersonFactory, new_email
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.accounts.oauth_provider import GitHubUser, GoogleUser, OAuthProvider


async def consent(start: httpx.Response) -> str:
    """The person approves on the provider's page; returns the callback URL the provider redirects to."""
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as provider_page:
        approved = await provider_page.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    return str(approved.headers["location"])


async def oauth_sign_in(b: Browser, provider: str, **params: Any) -> httpx.Response:
    start = await b.http.get(f"/v1/auth/oauth/{provider}/start", params=params)
    response = await b.http.get(await consent(start))
    if response.status_code == 200:
        b.csrf = response.json()["csrf_token"]
    return response


def google_user(email: str | None, verified: bool = True) -> GoogleUser:
    return GoogleUser(sub=str(uuid.uuid4().int)[:21], email=email, email_verified=verified)


async def _signup_lots(services: Services, account_id: object) -> list[int]:
    rows = await services.db.fetch(
        "SELECT amount FROM credit_lots WHERE account_id = $1 AND source = 'signup'", account_id
    )
    return [row["amount"] for row in rows]


async def test_google_sign_in_creates_an_account_once(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    email = new_email("google")
    user = google_user(email)
    oauth_provider.sign_in_as("google", user)
    b = browser()
    first = await oauth_sign_in(b, "google", age_confirmed="true")
    assert first.status_code == 200, first.text
    assert first.json()["account_created"] is True
    assert first.json()["account"]["email"] == email
    assert first.json()["account"]["email_verified"] is True
    account_id = uuid.UUID(first.json()["account"]["id"])
    assert await _signup_lots(services, account_id) == [25_000_000]  # the address is verified: reward granted
    assert (await b.get("/v1/auth/session")).json()["account"]["has_password"] is False

    # The flow used PKCE S256, and the token request carried the verifier matching the challenge.
    authorize = oauth_provider.authorize_requests[-1]
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["redirect_uri"] == f"{b.http.base_url}/v1/auth/oauth/google/callback"
    assert oauth_provider.token_requests[-1]["code_verifier"]

    again = await oauth_sign_in(browser(), "google")
    assert again.status_code == 200
    assert again.json()["account_created"] is False
    assert again.json()["account"]["id"] == str(account_id)
    assert await _signup_lots(services, account_id) == [25_000_000]


async def test_github_uses_the_primary_verified_address(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    primary, secondary = new_email("gh-primary"), new_email("gh-other")
    oauth_provider.sign_in_as(
        "github",
        GitHubUser(
            id=uuid.uuid4().int % 10**9,
            login="octo",
            emails=[
                {"email": secondary, "primary": False, "verified": True, "visibility": None},
                {"email": primary, "primary": True, "verified": True, "visibility": "private"},
            ],
        ),
    )
    signed_in = await oauth_sign_in(browser(), "github", age_confirmed="true")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["account"]["email"] == primary
    identity = await services.db.fetchrow(
        "SELECT provider, email FROM oauth_identities WHERE account_id = $1",
        uuid.UUID(signed_in.json()["account"]["id"]),
    )
    assert identity is not None and (identity["provider"], identity["email"]) == ("github", primary)


async def test_unverified_provider_addresses_are_refused(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    email = new_email("gh-unverified")
    oauth_provider.sign_in_as(
        "github",
        GitHubUser(
            id=uuid.uuid4().int % 10**9,
            login="unverified",
            emails=[{"email": email, "primary": True, "verified": False, "visibility": None}],
        ),
    )
    refused = await oauth_sign_in(browser(), "github", age_confirmed="true")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "oauth_email_unverified"
    oauth_provider.sign_in_as("google", google_user(new_email("g-unverified"), verified=False))
    assert (await oauth_sign_in(browser(), "google", age_confirmed="true")).status_code == 400
    assert await services.db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 0


async def test_state_mismatch_is_refused(browser: BrowserFactory, oauth_provider: OAuthProvider) -> None:
    oauth_provider.sign_in_as("google", google_user(new_email("state")))
    victim, attacker = browser(), browser()
    # An attacker's callback URL (their code and state) opened in the victim's browser: the cookie differs.
    callback = await consent(await attacker.http.get("/v1/auth/oauth/google/start", params={"age_confirmed": "true"}))
    await victim.http.get("/v1/auth/oauth/google/start")  # the victim has a sign-in of their own under way
    crossed = await victim.http.get(callback)
    assert crossed.status_code == 400
    assert crossed.json()["error"]["code"] == "oauth_state_mismatch"
    assert victim.session_cookie() is None

    # A tampered state, and a replayed callback, are refused the same way.
    tampered = callback.replace("state=", "state=x")
    assert (await attacker.http.get(tampered)).json()["error"]["code"] == "oauth_state_mismatch"
    assert (await attacker.http.get(callback)).status_code == 200
    replay = await attacker.http.get(callback)
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "oauth_state_mismatch"


async def test_linking_to_an_account_with_the_same_verified_address(
    person: PersonFactory, browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    someone = await person("link")
    oauth_provider.sign_in_as("google", google_user(someone.email.upper()))
    linked = await oauth_sign_in(browser(), "google")  # no age confirmation needed: no account is created
    assert linked.status_code == 200, linked.text
    assert linked.json()["account_created"] is False
    assert linked.json()["account"]["id"] == str(someone.account_id)
    assert (
        await services.db.fetchval("SELECT count(*) FROM oauth_identities WHERE account_id = $1", someone.account_id)
        == 1
    )
    assert (await browser().signin(someone.email, someone.password)).status_code == 200  # the password still works
    assert await _signup_lots(services, someone.account_id) == [25_000_000]


async def test_an_unconfirmed_sign_up_loses_its_password_when_the_owner_arrives(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services, mailbox: Mailbox
) -> None:
    # Someone signs up with the owner's address and a password of their own, and never confirms it.
    email = new_email("hijack")
    squatter = browser()
    await squatter.http.post(
        "/v1/auth/signup", json={"email": email, "password": "Squatter pass 1", "age_confirmed": True}
    )
    mail = await mailbox.wait(email, "Confirm your email")
    account_id = await services.db.fetchval("SELECT id FROM accounts WHERE email = $1", email)
    # The owner signs in with Google: same account, but the squatter's password no longer opens it.
    oauth_provider.sign_in_as("google", google_user(email))
    owner = await oauth_sign_in(browser(), "google")
    assert owner.status_code == 200
    assert owner.json()["account"]["id"] == str(account_id)
    assert (await squatter.signin(email, "Squatter pass 1")).status_code == 401
    assert (await squatter.http.post("/v1/auth/verify-email", json={"token": mail.token()})).status_code == 400
    assert await _signup_lots(services, account_id) == [25_000_000]


async def test_new_accounts_need_the_age_confirmation(
    browser: BrowserFactory, oauth_provider: OAuthProvider, services: Services
) -> None:
    email = new_email("age")
    oauth_provider.sign_in_as("google", google_user(email))
    refused = await oauth_sign_in(browser(), "google")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "age_confirmation_required"
    assert await services.db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 0


async def test_redirects_denials_and_unknown_providers(browser: BrowserFactory, oauth_provider: OAuthProvider) -> None:
    b = browser()
    oauth_provider.sign_in_as("google", google_user(new_email("redirect")))
    start = await b.http.get("/v1/auth/oauth/google/start", params={"age_confirmed": "true", "redirect_to": "/welcome"})
    landed = await b.http.get(await consent(start))
    assert landed.status_code == 303
    assert landed.headers["location"] == "/welcome"
    assert b.session_cookie()

    allowed = "https://dashboard.conduit.test/keys"
    start = await b.http.get("/v1/auth/oauth/google/start", params={"redirect_to": allowed})
    assert parse_qs(urlsplit(start.headers["location"]).query)["client_id"]
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        refused = await b.http.get("/v1/auth/oauth/google/start", params={"redirect_to": evil})
        assert refused.status_code == 400, evil
        assert refused.json()["error"]["param"] == "redirect_to"

    oauth_provider.deny_next("github")
    denied = await oauth_sign_in(browser(), "github")
    assert denied.status_code == 400
    assert denied.json()["error"]["code"] == "oauth_denied"

    unknown = await b.http.get("/v1/auth/oauth/facebook/start")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "oauth_provider_not_found"


async def test_unconfigured_and_failing_providers(auth_deps: AuthDeps, services: Services) -> None:
    bare = dataclasses.replace(
        auth_deps, settings=dataclasses.replace(auth_deps.settings, github=OAuthProviderSettings())
    )
    with pytest.raises(NotFound) as missing:
        await oauth.start(bare, services.redis, "http://127.0.0.1:9", "github", redirect_to=None, age_confirmed=True)
    assert missing.value.code == "oauth_not_configured"

    # The provider's token endpoint fails: a clear 502-class error, no account, no session.
    url, state = await oauth.start(
        auth_deps, services.redis, "http://127.0.0.1:9", "google", redirect_to=None, age_confirmed=True
    )
    assert f"state={state}" in url

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "backend_error"})

    with pytest.raises(UpstreamFailed) as failed:
        await oauth.finish(
            auth_deps, services.redis, "http://127.0.0.1:9", "google",
            code="a-code", state=state, cookie_state=state, error=None, ip="127.0.0.1", user_agent="test",
            transport=httpx.MockTransport(broken),
        )  # fmt: skip
    assert failed.value.code == "oauth_provider_error"
