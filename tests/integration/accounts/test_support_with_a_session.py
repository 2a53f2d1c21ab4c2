"""Support tickets from the dashboard (a session, with its CSRF token), and their erasure with the account."""

from __future__ import annotations

import io

from PIL import Image

from shared.services import Services
from tests.integration.accounts.conftest import PersonFactory


async def test_tickets_with_a_session_and_erasure(person: PersonFactory, services: Services) -> None:
    someone = await person("support")
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="PNG")
    # Without the CSRF token, a session cannot change anything.
    forged = await someone.browser.http.post(
        "/v1/support/tickets", json={"subject": "x", "category": "account", "body": "x"}
    )
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    created = await someone.browser.post(
        "/v1/support/tickets",
        data={"subject": "Please delete my data", "category": "account", "body": "See the screenshot."},
        files=[("files", ("shot.png", image.getvalue(), "image/png"))],
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    listed = (await someone.browser.get("/v1/support/tickets")).json()["data"]
    assert [t["id"] for t in listed] == [ticket["id"]]
    files = services.storage.root / "attachments" / ticket["id"]
    assert files.is_dir() and any(files.iterdir())

    deleted = await someone.browser.request("DELETE", "/v1/account", json={"password": someone.password})
    assert deleted.status_code == 204, deleted.text
    assert await services.db.fetchval("SELECT count(*) FROM support_tickets WHERE id = $1", ticket["id"]) == 0
    assert (
        await services.db.fetchval("SELECT count(*) FROM support_messages m WHERE m.ticket_id = $1", ticket["id"]) == 0
    )
    assert not files.exists()
