"""Sessions for people: the cookie, CSRF protection, listing and ending sessions, sign-in throttling."""

from __future__ import annotations

import dataclasses
import uuid
from http.cookies import SimpleCookie
from typing import Any

import pytest

from api.routes.auth import session_cookie
from shared.accounts.signin import PasswordClient, sign_in
from shared.accounts.signup import AuthDeps
from shared.infra.errors import RateLimited
from shared.services import Services
from shared.settings import Settings
from tests.harness import InProcessWorker, wait_for
from tests.integration.accounts.conftest import PASSWORD, BrowserFactory, PersonFactory, new_email

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a session task", "width": 256, "height": 256}}


async def test_sign_in_sets_an_http_only_same_site_cookie_backed_by_redis(
    person: PersonFactory, services: Services
) -> None:
    someone = await person("cookie")
    response = await someone.browser.signin(someone.email)
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("conduit_session=")]
    cookie = SimpleCookie(header)["conduit_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == 30 * 24 * 3600
    assert not cookie["secure"]  # this test server runs on plain http (SESSION_COOKIE_SECURE defaults to false)
    body = response.json()
    assert body["account"]["email"] == someone.email
    assert body["session"]["current"] is True
    # Server-side: the cookie is only a random token; Redis holds the session under its hash.
    assert cookie.value not in str(await services.redis.keys("conduit:session:*"))
    session = await someone.browser.get("/v1/auth/session")
    assert session.status_code == 200
    assert session.json()["csrf_token"] == someone.browser.csrf
    assert session.json()["account"]["has_password"] is True


def test_the_cookie_is_secure_behind_https(settings: Settings) -> None:
    secure = Settings.from_env({"PUBLIC_BASE_URL": "https://api.example.com"})
    assert secure.auth.session_cookie_secure is True
    header = session_cookie(secure.auth, "token", 60).to_header()
    assert "Secure" in header and "HttpOnly" in header and "SameSite=lax" in header
    plain = Settings.from_env({"PUBLIC_BASE_URL": "http://127.0.0.1:9", "SESSION_COOKIE_SECURE": "true"})
    assert plain.auth.session_cookie_secure is True
    strict = Settings.from_env({"SESSION_COOKIE_SAMESITE": "strict"})
    assert "SameSite=strict" in session_cookie(strict.auth, "token", 60).to_header()


async def test_session_requests_that_change_things_need_the_csrf_token_and_an_allowed_origin(
    person: PersonFactory,
) -> None:
    someone = await person("csrf")
    b = someone.browser
    assert (await b.get("/v1/account")).status_code == 200  # reads need no token
    forged = await b.http.post("/v1/tasks", json=IMAGE)  # what a cross-site form could send: the cookie only
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_failed"
    wrong = await b.http.post("/v1/tasks", json=IMAGE, headers={"X-CSRF-Token": "guess"})
    assert wrong.json()["error"]["code"] == "csrf_failed"
    foreign = await b.post("/v1/tasks", json=IMAGE, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "origin_not_allowed"
    accepted = await b.post("/v1/tasks", json=IMAGE, headers={"Origin": "https://dashboard.conduit.test"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["credits"]["held"] == 0.3
    # Sign-in itself refuses foreign origins (login CSRF).
    login = await b.http.post(
        "/v1/auth/signin",
        json={"email": someone.email, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert login.status_code == 403


async def test_list_and_end_sessions(person: PersonFactory, browser: BrowserFactory) -> None:
    someone = await person("sessions")
    laptop, phone = someone.browser, browser()
    assert (await phone.signin(someone.email)).status_code == 200
    listed = (await laptop.get("/v1/auth/sessions")).json()["data"]
    assert len(listed) == 2
    current = [s for s in listed if s["current"]]
    assert len(current) == 1
    other = next(s for s in listed if not s["current"])

    ended = await laptop.request("DELETE", f"/v1/auth/sessions/{other['id']}")
    assert ended.status_code == 204
    gone = await phone.get("/v1/account")
    assert gone.status_code == 401
    assert gone.json()["error"]["code"] == "session_expired"
    missing = await laptop.request("DELETE", f"/v1/auth/sessions/{other['id']}")
    assert missing.status_code == 404
    # Someone else's session id is just as unknown.
    stranger = await person("stranger")
    theirs = (await stranger.browser.get("/v1/auth/sessions")).json()["data"][0]["id"]
    assert (await laptop.request("DELETE", f"/v1/auth/sessions/{theirs}")).status_code == 404
    assert (await stranger.browser.get("/v1/account")).status_code == 200

    cookie = laptop.session_cookie()
    out = await laptop.post("/v1/auth/signout")
    assert out.status_code == 204
    assert laptop.session_cookie() is None  # the cookie was cleared
    replayed = await browser().http.get("/v1/account", headers={"Cookie": f"conduit_session={cookie}"})
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "session_expired"
    nobody = await browser().http.get("/v1/keys")
    assert nobody.status_code == 401
    assert nobody.json()["error"]["code"] == "not_signed_in"


async def test_a_forwarded_for_header_is_ignored_without_a_trusted_proxy(
    person: PersonFactory, browser: BrowserFactory
) -> None:
    """This server names no trusted proxy (the default): the client is the connection's peer, whatever headers
    it sends, both for the per-IP limits and for what a session records."""
    someone = await person("forwarded")
    other = browser()
    spoofed = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"}
    signed_in = await other.http.post(
        "/v1/auth/signin", json={"email": someone.email, "password": someone.password}, headers=spoofed
    )
    assert signed_in.status_code == 200
    assert signed_in.json()["session"]["ip"] == "127.0.0.1"
    listed = (await someone.browser.get("/v1/auth/sessions")).json()["data"]
    assert {s["ip"] for s in listed} == {"127.0.0.1"}


async def test_wrong_passwords_are_throttled_per_address(person: PersonFactory, browser: BrowserFactory) -> None:
    someone = await person("throttle")
    attacker = browser()
    for _ in range(5):
        wrong = await attacker.signin(someone.email, "not the password 1")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_credentials"
    locked = await attacker.signin(someone.email)  # even the right password waits now
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_signin_attempts"
    assert int(locked.headers["Retry-After"]) >= 60
    # An unknown address behaves exactly the same (no way to tell which addresses have accounts).
    unknown = new_email("unknown")
    codes = [(await attacker.signin(unknown, "not the password 1")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # The session the owner already has is unaffected.
    assert (await someone.browser.get("/v1/account")).status_code == 200


async def test_sign_in_attempts_are_throttled_per_ip(person: PersonFactory, auth_deps: AuthDeps) -> None:
    someone = await person("per-ip")
    deps = dataclasses.replace(auth_deps, settings=dataclasses.replace(auth_deps.settings, auth_ip_rate_per_min=3))
    ip = f"198.51.100.{someone.account_id.int % 250 + 1}"
    for _ in range(3):
        await sign_in(deps, email=someone.email, password=someone.password, client=PasswordClient(ip), user_agent="t")
    with pytest.raises(RateLimited) as limited:
        await sign_in(deps, email=someone.email, password=someone.password, client=PasswordClient(ip), user_agent="t")
    assert limited.value.code == "too_many_requests"
    assert 1 <= limited.value.retry_after_s <= 20
    other = PasswordClient("198.51.100.251")
    await sign_in(deps, email=someone.email, password=someone.password, client=other, user_agent="t")


async def test_sessions_expire(auth_deps: AuthDeps, services: Services, person: PersonFactory) -> None:
    someone = await person("expiry")
    short = dataclasses.replace(auth_deps.settings, session_max_age_s=1)
    store = type(auth_deps.sessions)(services.redis, short)
    account_id = uuid.uuid4()
    token, _ = await store.create(account_id, ip="127.0.0.1", user_agent="test")
    assert await store.get(token) is not None
    assert len(await store.list(account_id)) == 1

    async def expired() -> bool:
        return await store.get(token) is None

    await wait_for(expired, timeout=10, interval=0.1, what="the session to expire")
    assert await store.list(account_id) == []
    assert (await someone.browser.get("/v1/account")).status_code == 200  # other sessions are untouched


async def test_change_password_ends_other_sessions(person: PersonFactory, browser: BrowserFactory) -> None:
    someone = await person("change")
    other = browser()
    assert (await other.signin(someone.email)).status_code == 200
    wrong = await someone.browser.post(
        "/v1/auth/password", json={"current_password": "not it at all 1", "new_password": "Changed pass 123"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    changed = await someone.browser.post(
        "/v1/auth/password", json={"current_password": someone.password, "new_password": "Changed pass 123"}
    )
    assert changed.status_code == 204
    assert (await someone.browser.get("/v1/account")).status_code == 200  # this session stays
    assert (await other.get("/v1/account")).status_code == 401  # the other one ended
    assert (await browser().signin(someone.email, "Changed pass 123")).status_code == 200


async def test_tasks_submitted_with_a_session_are_charged_once_and_released_on_cancel(
    person: PersonFactory, worker: InProcessWorker
) -> None:
    """No API key behind the request: the settlement must still resolve the hold (charge or release)."""
    b = (await person("session-task")).browser
    start = (await b.get("/v1/account")).json()["balance"]

    async def finished(task_id: str) -> dict[str, Any] | None:
        task: dict[str, Any] = (await b.get(f"/v1/tasks/{task_id}")).json()
        return task if task["status"] in ("succeeded", "failed", "canceled") else None

    submitted = await b.post("/v1/tasks", json=IMAGE)
    assert submitted.status_code == 202, submitted.text
    done = await wait_for(lambda: finished(submitted.json()["id"]), what="the session's task to finish")
    assert done["status"] == "succeeded"
    assert done["credits"] == {"held": 0.3, "charged": 0.3}
    balance = (await b.get("/v1/account")).json()["balance"]
    assert balance == {"available": pytest.approx(start["available"] - 0.3), "held": 0}

    await worker.stop()  # keep the next one queued so it can be canceled
    queued = (await b.post("/v1/tasks", json=IMAGE)).json()
    canceled = await b.post(f"/v1/tasks/{queued['id']}/cancel")
    assert canceled.json()["status"] == "canceled"
    assert (await b.get("/v1/account")).json()["balance"] == balance
