"""The website over plain HTTP: public pages, error pages, headers, and the dashboard's sign-in gate."""

from __future__ import annotations

import re

import httpx

from api.web.security import CSP
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, free_port


async def test_public_pages_render_with_security_headers(client: httpx.AsyncClient) -> None:
    for path, text in [
        ("/", "One API, one key"),
        ("/models", "flux-schnell"),
        ("/pricing", "Credit packs"),
        ("/quickstart", "from openai import OpenAI"),
        ("/terms", "Terms of service"),
        ("/privacy", "Privacy"),
        ("/signup", "I am 18 or older"),
        ("/signin", "Sign in"),
        ("/reset-password", "Reset your password"),
    ]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert text in response.text, path
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text  # no inline script: the CSP allows none


async def test_model_catalog_filters_by_kind_and_words(client: httpx.AsyncClient) -> None:
    text_only = (await client.get("/models", params={"kind": "text"})).text
    kinds = set(re.findall(r'data-kind="(\w+)"', text_only))
    assert kinds == {"text"}
    assert 'data-model="llama-3.1-8b-instruct"' in text_only
    assert 'data-model="flux-schnell"' not in text_only
    searched = (await client.get("/models", params={"q": "SCHNELL"})).text
    assert re.findall(r'data-model="([^"]+)"', searched) == ["flux-schnell"]
    assert "per image" in searched


async def test_pages_answer_html_errors_and_the_api_keeps_its_json(client: httpx.AsyncClient) -> None:
    page = await client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text
    assert "content-security-policy" in page.headers
    api = await client.get("/v1/no-such-route")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "route_not_found"
    missing_task = await client.get("/v1/tasks/nope", headers={"Authorization": "Bearer cdt_" + "x" * 40})
    assert missing_task.headers["content-type"].startswith("application/json")


async def test_dashboard_pages_send_strangers_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in ("/dashboard", "/dashboard/keys", "/dashboard/usage", "/dashboard/support/123"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/signin?next={path}"
    back = await client.get("/dashboard/billing/return", params={"result": "success", "order_id": "x"})
    assert back.headers["location"] == "/signin?next=/dashboard/billing/return%3Fresult%3Dsuccess%26order_id%3Dx"
    signin = await client.get(back.headers["location"])
    assert 'data-next="/dashboard/billing/return?result=success&amp;order_id=x"' in signin.text
    # an ended session is the same as none
    async with httpx.AsyncClient(base_url=str(client.base_url), cookies={"conduit_session": "ended"}) as stale:
        assert (await stale.get("/dashboard")).status_code == 303


async def test_sign_in_page_refuses_open_redirects(client: httpx.AsyncClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        page = await client.get("/signin", params={"next": target})
        assert 'data-next="/dashboard"' in page.text, target
    assert 'data-next="/dashboard/usage"' in (await client.get("/signin", params={"next": "/dashboard/usage"})).text


async def test_static_files_are_served(client: httpx.AsyncClient) -> None:
    js = await client.get("/static/site.js")
    assert js.status_code == 200
    assert "X-CSRF-Token" in js.text
    css = await client.get("/static/site.css")
    assert css.status_code == 200


async def test_pricing_offers_buy_only_while_payments_work(
    client: httpx.AsyncClient, env: dict[str, str], services: Services
) -> None:
    buy = '<a class="button" href="/dashboard/billing">Buy</a>'
    products = len(services.billing.products)
    off = (await client.get("/pricing")).text  # the suite's API has no STRIPE_SECRET_KEY
    assert buy not in off
    assert "Payments are not configured on this installation" in off
    assert off.count('class="card pack"') == products > 0  # the packs and their prices are still shown
    port = free_port()
    stripe = {"STRIPE_SECRET_KEY": "sk_test_pricing", "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    async with (
        ApiServer(Settings.from_env({**env, **stripe})) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        on = (await http.get("/pricing")).text
    assert on.count(buy) == products and "payments-off" not in on
