"""The console's pages: who gets in (staff with a second factor), who does not (nobody, customers, staff
without a second factor), and that each page shows what it is for."""

from __future__ import annotations

import httpx

from shared.services import Services
from tests.harness import ApiServer
from tests.integration.helpers import submit
from tests.integration.staff.conftest import SessionFactory

PAGES = [
    "/console",
    "/console/accounts/{account}",
    "/console/tasks",
    "/console/tasks/{task}",
    "/console/providers",
    "/console/support",
    "/console/support/{ticket}",
    "/console/moderation",
    "/console/billing",
    "/console/audit",
    "/console/staff",
]
ADMIN_ONLY = {"/console/audit", "/console/staff"}


async def test_every_console_page_refuses_customers_and_staff_without_a_second_factor(
    client: httpx.AsyncClient, api: ApiServer, signed_in: SessionFactory, services: Services
) -> None:
    customer, customer_session = await signed_in("user")
    task = (await submit(client, customer, "sdxl", prompt="a lighthouse")).json()
    ticket = (
        await client.post(
            "/v1/support/tickets",
            json={"subject": "Where is my image?", "category": "technical", "body": "It never finished."},
            headers=customer.headers,
        )
    ).json()
    ids = {"account": str(customer.id), "task": task["id"], "ticket": ticket["id"]}
    _, half_signed_in = await signed_in("admin", second_factor=False)
    _, support = await signed_in("support")
    _, admin = await signed_in("admin")
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        for template in PAGES:
            path = template.format(**ids)
            nobody = await anonymous.get(path)
            assert nobody.status_code == 303 and nobody.headers["location"].startswith("/signin?next="), path
            refused = await customer_session.get(path)
            assert refused.status_code == 403, path
            assert "support and operations staff" in refused.text
            no_code = await half_signed_in.get(path)
            assert no_code.status_code == 403, path
            assert "second factor" in no_code.text
            by_support = await support.get(path)
            assert by_support.status_code == (403 if template in ADMIN_ONLY else 200), (path, by_support.text[:300])
            by_admin = await admin.get(path)
            assert by_admin.status_code == 200, (path, by_admin.text[:500])
            assert by_admin.headers["cache-control"] == "no-store"
            assert "script-src 'self'" in by_admin.headers["content-security-policy"]

    found = await admin.get("/console", params={"q": customer.key[:12]})
    assert f"/console/accounts/{customer.id}" in found.text
    page = (await admin.get(f"/console/accounts/{customer.id}")).text
    assert customer.key[:12] in page and "Grant or deduct credits" in page and task["id"] in page
    assert "Where is my image?" in page
    assert "Grant or deduct credits" not in (await support.get(f"/console/accounts/{customer.id}")).text
    timeline = (await admin.get(f"/console/tasks/{task['id']}")).text
    assert "submitted" in timeline and "held" in timeline and "Retry" in timeline
    listed = (await admin.get("/console/tasks", params={"account": customer.email, "status": "queued"})).text
    assert task["id"] in listed
    bad = await admin.get("/console/tasks", params={"from": "yesterday"})
    assert bad.status_code == 200 and "from must be an ISO 8601" in bad.text
    queue = (await admin.get("/console/support", params={"status": "open"})).text
    assert "Where is my image?" in queue
    providers = (await admin.get("/console/providers")).text
    assert "Live workers" in providers and "local" in providers
