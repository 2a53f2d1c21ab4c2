"""Each way hostile input used to reach a 500, as a user would send it: now a 400 whose code and param name the
problem, and nothing stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.accounts.service import create_account
from shared.accounts.sessions import SessionStore
from shared.ledger.money import parse_credits
from shared.services import Services
from tests.harness import ApiServer
from tests.integration.hostile.rawhttp import send

PROMPT = {"prompt": "a lighthouse", "width": 256, "height": 256}


@dataclass
class Admin:
    account_id: uuid.UUID
    key: dict[str, str]  # API key headers
    session: dict[str, str]  # session cookie and CSRF token headers


@pytest.fixture
async def http(hostile_api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hostile_api.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def admin(services: Services, hostile_api: ApiServer) -> Admin:
    created = await create_account(
        services.db, email=f"admin-{uuid.uuid4().hex[:12]}@example.com", credits=parse_credits("20"), role="admin"
    )
    token, session = await SessionStore(services.redis, hostile_api.settings.auth).create(
        created.account_id, ip="127.0.0.1", user_agent="tests"
    )
    return Admin(
        created.account_id,
        {"Authorization": f"Bearer {created.api_key.secret}"},
        {"Cookie": f"conduit_session={token}", "X-CSRF-Token": session.csrf_token},
    )


def assert_refused(response: httpx.Response, code: str, param: str | None, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    return str(error["message"])


def with_raw_text(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """The body as JSON with the string ``field`` replaced by raw bytes (which no JSON encoder would write)."""
    marker = "\u2063marker\u2063"
    return json.dumps({**body, field: marker}).encode().replace(json.dumps(marker).encode(), raw)


JSON_ROUTES: list[tuple[str, str, dict[str, Any], str]] = [
    # (method, path, a valid body, who sends it) -- the body's first string field gets the bytes
    ("POST", "/v1/tasks", {"model": "flux-schnell", "input": PROMPT}, "key"),
    ("POST", "/v1/chat/completions", {"model": "llama-3.1-8b-instruct", "messages": []}, "key"),
    ("POST", "/v1/images/generations", {"model": "flux-schnell", "prompt": "a cat"}, "key"),
    ("POST", "/v1/webhooks/endpoints", {"url": "https://8.8.8.8/hook"}, "key"),
    ("POST", "/v1/promo-codes/redeem", {"code": "WELCOME"}, "key"),
    ("POST", "/v1/billing/checkout", {"product_id": "starter"}, "key"),
    ("POST", "/v1/auth/signin", {"email": "a@example.com", "password": "correct horse 42"}, "nobody"),
    ("POST", "/v1/auth/signup", {"email": "a@example.com", "password": "correct horse 42"}, "nobody"),
    ("POST", "/v1/keys", {"name": "ci"}, "session"),
    ("POST", "/v1/admin/accounts/{account}/credits", {"reason": "goodwill", "amount": 5}, "key"),
    ("POST", "/v1/admin/promo-codes", {"code": "HOSTILE", "credits": 5}, "key"),
]


@pytest.mark.parametrize(("method", "path", "body", "who"), JSON_ROUTES, ids=[f"{m} {p}" for m, p, _, _ in JSON_ROUTES])
async def test_bytes_that_are_not_utf8_in_a_json_body_are_invalid_json(
    http: httpx.AsyncClient, admin: Admin, method: str, path: str, body: dict[str, Any], who: str
) -> None:
    headers = {"key": admin.key, "session": admin.session, "nobody": {}}[who]
    first_text = next(name for name, value in body.items() if isinstance(value, str))
    raw = with_raw_text(body, first_text, b'"caf\xe9 \xff"')
    response = await http.request(
        method,
        path.format(account=admin.account_id),
        content=raw,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert "not UTF-8" in assert_refused(response, "invalid_json", None)


async def test_a_nul_in_a_task_prompt_or_its_metadata_is_refused_and_holds_nothing(
    http: httpx.AsyncClient, admin: Admin, services: Services
) -> None:
    for body, param in (
        ({"model": "flux-schnell", "input": {**PROMPT, "prompt": "a\u0000b"}}, "input.prompt"),
        ({"model": "flux-schnell", "input": PROMPT, "metadata": {"order": "4\u00002"}}, "metadata.order"),
        ({"model": "flux-schnell", "input": PROMPT, "metadata": {"or\u0000der": "42"}}, "metadata"),
    ):
        response = await http.post("/v1/tasks", json=body, headers=admin.key)
        assert "NUL" in assert_refused(response, "invalid_input", param)
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", admin.account_id) == 0
    account = (await http.get("/v1/account", headers=admin.key)).json()
    assert (account["balance"]["available"], account["balance"]["held"]) == (20, 0)


async def test_a_nul_in_a_ticket_subject_or_body_is_refused_as_json_and_as_a_form(
    http: httpx.AsyncClient, admin: Admin
) -> None:
    ticket = {"subject": "Stuck", "category": "technical", "body": "My task is queued."}
    for field in ("subject", "body"):
        as_json = await http.post("/v1/support/tickets", json={**ticket, field: "a\x00b"}, headers=admin.key)
        assert_refused(as_json, "invalid_input", field)
        as_form = await http.post(
            "/v1/support/tickets",
            data={**ticket, field: "a\x00b"},
            files=[("files", ("log.txt", b"a log line\n", "text/plain"))],
            headers=admin.key,
        )
        assert_refused(as_form, "invalid_input", field)
    latin1 = await http.post(
        "/v1/support/tickets",
        content=(
            b'--x\r\nContent-Disposition: form-data; name="subject"\r\n\r\ncaf\xe9\r\n'
            b'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\nx\r\n--x--\r\n'
        ),
        headers={**admin.key, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert_refused(latin1, "invalid_input", None)
    assert (await http.get("/v1/support/tickets", headers=admin.key)).json()["data"] == []


async def test_a_nul_in_a_webhook_description_is_refused(http: httpx.AsyncClient, admin: Admin) -> None:
    created = await http.post(
        "/v1/webhooks/endpoints", json={"url": "https://8.8.8.8/hook", "description": "a\x00b"}, headers=admin.key
    )
    assert_refused(created, "invalid_input", "description")
    assert (await http.get("/v1/webhooks/endpoints", headers=admin.key)).json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/auth/signin", {"email": "a\x00@example.com", "password": "correct horse 42"}),
        ("/v1/auth/signup", {"email": "a\x00@example.com", "password": "correct horse 42", "age_confirmed": True}),
        ("/v1/auth/password-reset", {"email": "a\x00@example.com"}),
        ("/v1/auth/verify-email/resend", {"email": "a\x00@example.com"}),
    ],
)
async def test_a_nul_in_an_email_is_refused_without_a_key(
    http: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    assert_refused(await http.post(path, json=body), "invalid_input", "email")


async def test_a_nul_or_bytes_that_are_not_utf8_in_a_url_encoded_form_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/auth/password-reset/form", data={"token": "t\x00", "password": "x"})
    assert_refused(response, "invalid_input", "token")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    latin1 = await http.post("/v1/auth/password-reset/form", content=b"token=caf%e9&password=x", headers=form)
    assert "must be UTF-8" in assert_refused(latin1, "invalid_input", "token")


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/tasks?model=%00", "model"),
        ("/v1/usage?model=%00", "model"),
        ("/v1/usage/summary?model=%00", "model"),
        ("/v1/usage/export?model=%00", "model"),
        ("/v1/admin/accounts?q=%00", "q"),
        ("/v1/admin/accounts?q=a%ffb", "q"),
        ("/v1/tasks?status=%ed%a0%80", "status"),
    ],
)
async def test_a_nul_or_bytes_that_are_not_utf8_in_a_filter_are_refused(
    hostile_api: ApiServer, admin: Admin, path: str, param: str
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in admin.key.items()]
    response = await send(hostile_api.settings.port, "GET", path.encode(), headers=headers)  # sent as written
    assert response.status == 400, response.body
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_input", param)


async def test_hostile_filters_on_website_pages_get_an_error_page(hostile_api: ApiServer, admin: Admin) -> None:
    cookie = [(b"Cookie", admin.session["Cookie"].encode())]
    for path, headers in (("/models?q=a%00b", []), ("/dashboard/usage?model=%00", cookie), ("/pricing?x=%ff", [])):
        response = await send(hostile_api.settings.port, "GET", path.encode(), headers=headers)
        assert response.status == 400, (path, response.body[:200])
        assert response.headers["content-type"].startswith("text/html")


async def test_a_nul_in_a_path_segment_names_the_parameter(hostile_api: ApiServer, admin: Admin) -> None:
    headers = [(name.encode(), value.encode()) for name, value in admin.key.items()]
    for path, param in (("/v1/admin/accounts/a%00b", "account"), ("/v1/admin/promo-codes/X%00/disable", "code")):
        response = await send(
            hostile_api.settings.port, "POST" if "disable" in path else "GET", path.encode(), headers=headers
        )
        assert response.status == 400, response.body
        assert response.json()["error"]["param"] == param


DEEP = "\u2063deep\u2063"  # stands for the nested value in a body, replaced by its JSON text


@pytest.mark.parametrize("levels", [100, 1_000, 10_000])
async def test_deep_nesting_in_a_task_or_a_chat_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, admin: Admin, services: Services, levels: int
) -> None:
    for path, body, param in (
        ("/v1/tasks", {"model": "flux-schnell", "input": {**PROMPT, "extra": DEEP}}, "input.extra"),
        (
            "/v1/tasks",
            {"model": "flux-schnell", "input": PROMPT, "metadata": {"order": DEEP}},
            "metadata.order",
        ),
        ("/v1/chat/completions", {"model": "llama-3.1-8b-instruct", "messages": DEEP}, "messages"),
    ):
        nested = b"[" * levels + b'"x"' + b"]" * levels
        raw = json.dumps(body).encode().replace(json.dumps(DEEP).encode(), nested)
        response = await http.post(path, content=raw, headers={**admin.key, "Content-Type": "application/json"})
        message = assert_refused(response, "invalid_input", response.json()["error"]["param"])
        assert "nested deeper than 32 levels" in message
        assert str(response.json()["error"]["param"]).startswith(param)
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", admin.account_id) == 0


@pytest.mark.parametrize("amount", ["1e30", str(2**80), "-1e30", '"1e999999"', '"NaN"'])
async def test_huge_credit_grants_and_promo_codes_are_refused(
    http: httpx.AsyncClient, admin: Admin, services: Services, amount: str
) -> None:
    headers = {**admin.key, "Content-Type": "application/json"}
    grant = await http.post(
        f"/v1/admin/accounts/{admin.account_id}/credits",
        content=f'{{"amount": {amount}, "reason": "goodwill"}}'.encode(),
        headers=headers,
    )
    assert_refused(grant, "invalid_input", "amount")
    code = f"HUGE{uuid.uuid4().hex[:8]}".upper()
    promo = await http.post(
        "/v1/admin/promo-codes", content=f'{{"credits": {amount}, "code": "{code}"}}'.encode(), headers=headers
    )
    assert_refused(promo, "invalid_input", "credits")
    assert (await http.get("/v1/account", headers=admin.key)).json()["balance"]["available"] == 20
    assert await services.db.fetchval("SELECT count(*) FROM promo_codes WHERE code = $1", code) == 0


async def test_counts_beyond_their_column_are_refused(http: httpx.AsyncClient, admin: Admin) -> None:
    for field, value in (("max_redemptions", 2**31), ("credit_validity_days", 36_501), ("credit_validity_days", 2**40)):
        promo = await http.post(
            "/v1/admin/promo-codes",
            json={"credits": "5", "code": f"C{uuid.uuid4().hex[:8]}", field: value},
            headers=admin.key,
        )
        assert_refused(promo, "invalid_request", field)


async def test_a_body_that_is_not_json_is_unsupported(http: httpx.AsyncClient, admin: Admin) -> None:
    body = json.dumps({"model": "flux-schnell", "input": PROMPT})
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"):
        response = await http.post("/v1/tasks", content=body, headers={**admin.key, "Content-Type": content_type})
        assert_refused(response, "unsupported_media_type", None, status=415)
    accepted = await http.post("/v1/tasks", content=body, headers=admin.key)  # no Content-Type: read as JSON
    assert accepted.status_code == 202, accepted.text
    ticket = await http.post("/v1/support/tickets", content=b"subject=x", headers={**admin.key, **form_type})
    assert "multipart/form-data to attach files" in assert_refused(ticket, "unsupported_media_type", None, status=415)
