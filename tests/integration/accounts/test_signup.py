"""Sign-up, email verification with the signup reward, and password reset, through real mail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.services import Services
from tests.integration.accounts.conftest import PASSWORD, BrowserFactory, PersonFactory, new_email
from tests.integration.accounts.mailbox import Mailbox


async def _balance(b: Any) -> Decimal:
    response = await b.get("/v1/account")
    assert response.status_code == 200, response.text
    return Decimal(str(response.json(parse_float=Decimal)["balance"]["available"]))


async def test_sign_up_verify_and_the_reward_is_granted_once(
    browser: BrowserFactory, mailbox: Mailbox, services: Services
) -> None:
    email = new_email("signup")
    b = browser()
    signup = await b.http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "age_confirmed": True})
    assert signup.status_code == 202
    assert signup.json()["email"] == email

    first = await mailbox.wait(email, "Confirm your email")
    assert first.message["From"] == "Conduit <no-reply@conduit.test>"
    assert first.link().startswith(f"{b.http.base_url}/verify-email?token=")  # the website's landing page
    # Until the address is confirmed, the password does not open a session.
    refused = await b.signin(email)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "email_not_verified"

    resend = await b.http.post("/v1/auth/verify-email/resend", json={"email": email})
    assert resend.status_code == 202
    second = await mailbox.wait(email, "Confirm your email", count=2)
    assert second.token() != first.token()

    verified = await b.http.get("/v1/auth/verify-email", params={"token": first.token()})
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    # The same link works once; the other link still verifies, but the reward is not granted twice.
    again = await b.http.get("/v1/auth/verify-email", params={"token": first.token()})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "invalid_token"
    other = await b.http.post("/v1/auth/verify-email", json={"token": second.token()})
    assert other.status_code == 200

    assert (await b.signin(email)).status_code == 200
    assert await _balance(b) == Decimal(25)
    account_id = await services.db.fetchval("SELECT id FROM accounts WHERE email = $1", email)
    lots = await services.db.fetch(
        "SELECT source, amount, expires_at - created_at AS validity FROM credit_lots WHERE account_id = $1", account_id
    )
    assert [(lot["source"], lot["amount"]) for lot in lots] == [("signup", 25_000_000)]
    assert abs(lots[0]["validity"].total_seconds() / 86400 - 30) < 0.01
    ledger = (await b.get("/v1/account/ledger")).json()["data"]
    assert [(e["type"], e["lot"]["source"]) for e in ledger] == [("grant", "signup")]
    # No more verification mails once verified.
    assert (await b.http.post("/v1/auth/verify-email/resend", json={"email": email})).status_code == 202


async def test_signing_up_a_registered_address_reveals_nothing(
    person: PersonFactory, browser: BrowserFactory, mailbox: Mailbox
) -> None:
    owner = await person("owner")
    stranger = browser()
    fresh_email = new_email("fresh")
    fresh = await stranger.http.post(
        "/v1/auth/signup", json={"email": fresh_email, "password": "Another pass 77", "age_confirmed": True}
    )
    taken = await stranger.http.post(
        "/v1/auth/signup", json={"email": owner.email.upper(), "password": "Another pass 77", "age_confirmed": True}
    )
    assert fresh.status_code == taken.status_code == 202
    assert {k: v for k, v in fresh.json().items() if k != "email"} == {
        k: v for k, v in taken.json().items() if k != "email"
    }
    # The owner is told, with a way back in; nothing about the account changed.
    notice = await mailbox.wait(owner.email, "You already have a Conduit account")
    assert "/reset-password?token=" in notice.text
    assert (await stranger.signin(owner.email, "Another pass 77")).status_code == 401
    assert (await browser().signin(owner.email, owner.password)).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"password": "Short1"}, "weak_password", "password"),
        ({"password": "alllowercaseletters"}, "weak_password", "password"),
        ({"password": "12345678901234"}, "weak_password", "password"),
        ({"password": "Password123"}, "weak_password", "password"),
        ({"password": "aaaaaaaaaaaa1"}, "weak_password", "password"),
        ({"password": "{email}"}, "weak_password", "password"),
        ({"password": PASSWORD, "age_confirmed": False}, "age_confirmation_required", "age_confirmed"),
        ({"password": PASSWORD, "email": "not-an-email"}, "invalid_input", "email"),
    ],
)
async def test_sign_up_refuses_weak_passwords_and_missing_age_confirmation(
    browser: BrowserFactory, services: Services, body: dict[str, Any], code: str, param: str
) -> None:
    email = new_email("weak")
    payload = {"email": email, "age_confirmed": True, **body}
    payload["password"] = payload["password"].replace("{email}", email)
    response = await browser().http.post("/v1/auth/signup", json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == param
    assert await services.db.fetchval("SELECT count(*) FROM accounts WHERE email = $1", email) == 0


async def test_password_reset(person: PersonFactory, browser: BrowserFactory, mailbox: Mailbox) -> None:
    someone = await person("reset")
    assert (await someone.browser.get("/v1/auth/session")).status_code == 200
    stranger = browser()
    known = await stranger.http.post("/v1/auth/password-reset", json={"email": someone.email})
    unknown = await stranger.http.post("/v1/auth/password-reset", json={"email": new_email("nobody")})
    assert known.status_code == unknown.status_code == 202
    assert {k: v for k, v in known.json().items() if k != "email"} == {
        k: v for k, v in unknown.json().items() if k != "email"
    }
    mail = await mailbox.wait(someone.email, "Reset your Conduit password")
    token = mail.token()

    weak = await stranger.http.post("/v1/auth/password-reset/confirm", json={"token": token, "password": "weak"})
    assert weak.status_code == 400
    assert weak.json()["error"]["code"] == "weak_password"
    done = await stranger.http.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": "Brand new pass 9"}
    )
    assert done.status_code == 200, done.text
    reused = await stranger.http.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": "Other new pass 10"}
    )
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "invalid_token"

    # Every session ended; the old password is gone; the owner was told.
    ended = await someone.browser.get("/v1/auth/session")
    assert ended.status_code == 401
    assert ended.json()["error"]["code"] == "session_expired"
    assert (await browser().signin(someone.email, someone.password)).status_code == 401
    assert (await browser().signin(someone.email, "Brand new pass 9")).status_code == 200
    await mailbox.wait(someone.email, "Your Conduit password was changed")


async def test_reset_link_opens_a_form_that_sets_the_password(
    person: PersonFactory, browser: BrowserFactory, mailbox: Mailbox
) -> None:
    someone = await person("form")
    http = browser().http
    await http.post("/v1/auth/password-reset", json={"email": someone.email})
    mail = await mailbox.wait(someone.email, "Reset your Conduit password")
    page = await http.get(mail.link().removeprefix(str(http.base_url)))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'value="{mail.token()}"' in page.text
    posted = await http.post(
        "/v1/auth/password-reset/form", data={"token": mail.token(), "password": "Typed in a form 5"}
    )
    assert posted.status_code == 200
    assert "Password changed" in posted.text
    assert (await browser().signin(someone.email, "Typed in a form 5")).status_code == 200
    replay = await http.post("/v1/auth/password-reset/form", data={"token": mail.token(), "password": "Again 5 pass"})
    assert replay.status_code == 400
    assert "invalid" in replay.text


async def test_expired_and_forged_links_are_refused(
    browser: BrowserFactory, mailbox: Mailbox, services: Services
) -> None:
    email = new_email("expired")
    http = browser().http
    await http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "age_confirmed": True})
    mail = await mailbox.wait(email, "Confirm your email")
    await services.db.execute(
        "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE email = $1", email
    )
    for token in (mail.token(), "x" * 43, "short"):
        response = await http.post("/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_token"
    assert await services.db.fetchval("SELECT email_verified_at FROM accounts WHERE email = $1", email) is None


async def test_mails_per_address_are_limited(browser: BrowserFactory, mailbox: Mailbox) -> None:
    email = new_email("flood")
    http: httpx.AsyncClient = browser().http
    statuses = [(await http.post("/v1/auth/password-reset", json={"email": email})).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
