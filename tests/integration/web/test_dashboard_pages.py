"""Every dashboard page renders for a signed-in account (over plain HTTP), with what it must and must not show."""

from __future__ import annotations

import re
import uuid

import httpx

from shared.accounts.erasure import suspend
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, wait_for


async def test_dashboard_pages_render_for_a_session(
    api: ApiServer, services: Services, make_account: AccountFactory, worker: InProcessWorker
) -> None:
    del worker
    account = await make_account(credits="10")
    token, session = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="pytest")
    async with httpx.AsyncClient(base_url=api.base_url, cookies={"conduit_session": token}) as http:
        submitted = await http.post(
            "/v1/tasks",
            json={"model": "sdxl", "input": {"prompt": "a cat"}},
            headers={"X-CSRF-Token": session.csrf_token},
        )
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["id"]

        async def done() -> bool:
            return (await http.get(f"/v1/tasks/{task_id}")).json()["status"] == "succeeded"

        await wait_for(done, what="the task to succeed")
        ticket = await http.post(
            "/v1/support/tickets",
            json={"subject": "Hello", "category": "product", "body": "A question"},
            headers={"X-CSRF-Token": session.csrf_token},
        )
        assert ticket.status_code == 201, ticket.text

        pages = {
            "/dashboard": account.email,
            "/dashboard/keys": "cdt_",
            "/dashboard/usage": "sdxl",
            "/dashboard/billing": "Starter pack",
            "/dashboard/rewards": "Claim a promotional code",
            "/dashboard/tasks": task_id,
            f"/dashboard/tasks/{task_id}": "succeeded",
            "/dashboard/playground": "flux-schnell",
            "/dashboard/support": "Hello",
            f"/dashboard/support/{ticket.json()['id']}": "A question",
            "/dashboard/settings": "pytest",
            "/dashboard/billing/return?result=cancel": "Checkout canceled",
        }
        for path, text in pages.items():
            page = await http.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert text in page.text, path
            assert page.headers["cache-control"] == "no-store", path
            assert f'<meta name="csrf-token" content="{session.csrf_token}">' in page.text
            assert not re.search(r"cdt_[A-Za-z0-9]{40}", page.text), path  # no key secret, ever
        # the CSV download of the usage page works with the session
        csv = await http.get("/v1/usage/export")
        assert csv.status_code == 200
        assert csv.text.startswith("id,created_at,") and ",sdxl," in csv.text
        # the task's image is previewed through its signed URL
        assert re.search(
            r'<img class="preview" src="[^"]+/v1/files/outputs/', (await http.get("/dashboard/tasks")).text
        )
        # another account's objects are not found
        for path in (f"/dashboard/tasks/{uuid.uuid4()}", f"/dashboard/support/{uuid.uuid4()}", "/dashboard/tasks/x"):
            missing = await http.get(path)
            assert missing.status_code == 404, path
            assert "text/html" in missing.headers["content-type"]
        bad_filter = await http.get("/dashboard/usage", params={"from": "yesterday"})
        assert bad_filter.status_code == 400
        assert 'role="alert"' in bad_filter.text


async def test_a_suspended_account_sees_the_site_signed_out(
    api: ApiServer, services: Services, make_account: AccountFactory
) -> None:
    account = await make_account()
    token, _ = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="pytest")
    await suspend(services.db, services.redis, account.email, suspended=True)
    async with httpx.AsyncClient(base_url=api.base_url, cookies={"conduit_session": token}) as http:
        home = await http.get("/")
        assert home.status_code == 200
        assert 'href="/signin"' in home.text and "csrf-token" not in home.text
        assert (await http.get("/dashboard")).headers["location"] == "/signin?next=/dashboard"
        refused = await http.get("/v1/account")  # the API says why
        assert refused.json()["error"]["code"] == "account_suspended"


async def test_the_ticket_form_offers_every_category_and_suggests_technical(
    api: ApiServer, services: Services, make_account: AccountFactory
) -> None:
    account = await make_account()
    token, _ = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="pytest")
    async with httpx.AsyncClient(base_url=api.base_url, cookies={"conduit_session": token}) as http:
        page = (await http.get("/dashboard/support")).text
    options = re.findall(r"<option( selected)?>(\w+)</option>", page)
    assert sorted(name for _, name in options) == ["account", "billing", "product", "technical"]
    assert [name for selected, name in options if selected] == ["technical"]
