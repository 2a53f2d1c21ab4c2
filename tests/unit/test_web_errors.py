"""Error pages: HTML on the website's paths, the JSON error shape on the API's, never a stack trace."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from api.errors import EXCEPTION_HANDLERS
from api.web import template_config
from api.web.security import CSP
from shared.infra.errors import Conflict


@get("/dashboard/boom")
async def page_boom() -> str:
    raise RuntimeError("secret internal detail")


@get("/v1/boom")
async def api_boom() -> str:
    raise RuntimeError("secret internal detail")


@get("/dashboard/conflict")
async def page_conflict() -> str:
    raise Conflict("that promo code was already claimed", code="promo_code_already_redeemed")


def app() -> Litestar:
    return Litestar(
        route_handlers=[page_boom, api_boom, page_conflict],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=template_config(),
        debug=False,
    )


async def test_a_crash_is_a_500_page_on_the_website_and_json_on_the_api() -> None:
    async with AsyncTestClient(app()) as client:
        page = await client.get("/dashboard/boom")
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "Something went wrong" in page.text
        assert "secret internal detail" not in page.text and "Traceback" not in page.text
        assert page.headers["content-security-policy"] == CSP
        api = await client.get("/v1/boom")
        assert api.status_code == 500
        assert api.json()["error"]["code"] == "internal_error"
        assert "secret internal detail" not in api.text


async def test_domain_errors_on_pages_show_their_message() -> None:
    async with AsyncTestClient(app()) as client:
        page = await client.get("/dashboard/conflict")
        assert page.status_code == 409
        assert "that promo code was already claimed" in page.text
        method = await client.post("/dashboard/conflict")
        assert method.status_code == 405
        assert method.headers["content-type"].startswith("text/html")
