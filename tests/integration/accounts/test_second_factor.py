"""Two-step sign-in: enrolment with an authenticator app (codes computed here with pyotp), sign-in with a code
or a recovery code, each code accepted once, wrong codes throttled per account, and the device cookie and the
password throttle working as before."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import pyotp

from shared.services import Services
from tests.integration.accounts.conftest import PASSWORD, BrowserFactory, PersonFactory, new_email
from tests.integration.accounts.oauth_provider import OAuthProvider
from tests.integration.accounts.test_oauth import consent, google_user, oauth_sign_in


async def _enrol(person_browser: object) -> tuple[str, list[str]]:
    b = person_browser
    setup = (await b.post("/v1/auth/second-factor/setup")).json()  # type: ignore[attr-defined]
    assert setup["otpauth_uri"].startswith("otpauth://totp/Conduit:") and setup["qr_svg"].startswith("data:image/svg")
    wrong = await b.post("/v1/auth/second-factor/enable", json={"code": "000000"})  # type: ignore[attr-defined]
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_code"
    enabled = await b.post(  # type: ignore[attr-defined]
        "/v1/auth/second-factor/enable", json={"code": pyotp.TOTP(setup["secret"]).now()}
    )
    assert enabled.status_code == 200, enabled.text
    return setup["secret"], enabled.json()["recovery_codes"]


async def test_enrol_then_sign_in_with_a_code_or_a_recovery_code(
    person: PersonFactory, browser: BrowserFactory, services: Services
) -> None:
    someone = await person("totp")
    secret, recovery = await _enrol(someone.browser)
    assert len(recovery) == 10
    status = (await someone.browser.get("/v1/auth/second-factor")).json()
    assert status["enabled"] is True and status["recovery_codes_left"] == 10
    stored = await services.db.fetchval("SELECT recovery_code_hashes FROM accounts WHERE id = $1", someone.account_id)
    assert not set(recovery) & set(stored)  # only hashes are kept

    # The password alone opens no session: it answers a challenge.
    b = browser()
    first = await b.http.post("/v1/auth/signin", json={"email": someone.email, "password": PASSWORD})
    assert first.status_code == 200 and first.json()["object"] == "second_factor_required"
    assert "conduit_session" not in first.cookies and (await b.http.get("/v1/account")).status_code == 401
    challenge = first.json()["challenge"]
    wrong = await b.http.post("/v1/auth/signin/second-factor", json={"challenge": challenge, "code": "123456"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "code"
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step: enrolment used this one's code
    done = await b.http.post("/v1/auth/signin/second-factor", json={"challenge": challenge, "code": code})
    assert done.status_code == 200, done.text
    assert done.json()["session"]["second_factor"] is True and "conduit_device" in done.cookies
    assert (await b.http.get("/v1/account")).status_code == 200
    replay = await b.http.post("/v1/auth/signin/second-factor", json={"challenge": challenge, "code": code})
    assert replay.json()["error"]["code"] == "challenge_expired"  # a challenge opens one session

    # The same code again, in a new sign-in, is refused: a code is used once.
    again = browser()
    retry = (await again.http.post("/v1/auth/signin", json={"email": someone.email, "password": PASSWORD})).json()
    reused = await again.http.post(
        "/v1/auth/signin/second-factor", json={"challenge": retry["challenge"], "code": code}
    )
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "invalid_code"
    # A recovery code works once (with or without its dash).
    by_recovery = await again.http.post(
        "/v1/auth/signin/second-factor", json={"challenge": retry["challenge"], "code": recovery[0].replace("-", "")}
    )
    assert by_recovery.status_code == 200, by_recovery.text
    third = browser()
    retry = (await third.http.post("/v1/auth/signin", json={"email": someone.email, "password": PASSWORD})).json()
    used = await third.http.post(
        "/v1/auth/signin/second-factor", json={"challenge": retry["challenge"], "code": recovery[0]}
    )
    assert used.status_code == 400
    assert (await someone.browser.get("/v1/auth/second-factor")).json()["recovery_codes_left"] == 9

    turned_off = await someone.browser.post("/v1/auth/second-factor/disable", json={"code": recovery[1]})
    assert turned_off.json()["enabled"] is False
    plain = await browser().signin(someone.email)
    assert plain.status_code == 200 and plain.json()["object"] == "signed_in"


async def test_wrong_codes_are_throttled_per_account_even_when_sent_at_once(
    person: PersonFactory, browser: BrowserFactory
) -> None:
    someone = await person("totp-guess")
    secret, _ = await _enrol(someone.browser)
    b = browser()
    challenge = (await b.http.post("/v1/auth/signin", json={"email": someone.email, "password": PASSWORD})).json()
    guesses = await asyncio.gather(
        *(
            b.http.post("/v1/auth/signin/second-factor", json={"challenge": challenge["challenge"], "code": f"{n:06d}"})
            for n in range(12)
        )
    )
    statuses = sorted(r.status_code for r in guesses)
    assert statuses.count(400) <= 5 and statuses.count(429) >= 7, statuses  # the budget holds under concurrency
    right = await b.http.post(
        "/v1/auth/signin/second-factor", json={"challenge": challenge["challenge"], "code": pyotp.TOTP(secret).now()}
    )
    assert right.status_code == 429 and right.json()["error"]["code"] == "too_many_code_attempts"
    assert "retry-after" in right.headers


async def test_google_sign_in_asks_for_the_code_too(browser: BrowserFactory, oauth_provider: OAuthProvider) -> None:
    oauth_provider.sign_in_as("google", google_user(new_email("google-totp")))
    b = browser()
    first = await oauth_sign_in(b, "google", age_confirmed="true")
    secret, _ = await _enrol(b)
    other = browser()
    step = await other.http.get(await consent(await other.http.get("/v1/auth/oauth/google/start")))
    assert step.status_code == 200 and step.json()["object"] == "second_factor_required"
    assert "conduit_session" not in step.cookies  # no session: the JSON challenge
    # With redirect_to, the browser lands on the sign-in page, which asks for the code.
    c = browser()
    start = await c.http.get("/v1/auth/oauth/google/start", params={"redirect_to": "/dashboard/keys"})
    landed = await c.http.get(await consent(start))
    assert landed.status_code == 303 and landed.headers["location"].startswith("/signin?challenge=")
    page = await c.http.get(landed.headers["location"])
    assert 'id="second-factor"' in page.text and 'data-next="/dashboard/keys"' in page.text
    challenge = parse_qs(urlsplit(landed.headers["location"]).query)["challenge"][0]
    code = pyotp.TOTP(secret).at(time.time() + 30)
    done = await c.http.post("/v1/auth/signin/second-factor", json={"challenge": challenge, "code": code})
    assert done.status_code == 200 and done.json()["account"]["id"] == first.json()["account"]["id"]
