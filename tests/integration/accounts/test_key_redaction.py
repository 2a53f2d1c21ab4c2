"""An API key pasted into any text Conduit stores for a customer is cut out before it is stored: key names,
webhook endpoint descriptions, task metadata and the user agent a session records (tickets have their own
tests). What is kept is the key's visible prefix, so the owner can tell which key to rotate."""

from __future__ import annotations

from shared.services import Services
from tests.integration.accounts.conftest import PersonFactory

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a redaction test", "width": 256, "height": 256}}


async def test_keys_are_cut_out_of_every_stored_text(person: PersonFactory, services: Services) -> None:
    someone = await person("redaction")
    created = await someone.browser.post("/v1/keys", json={"name": "first"})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    shown = f"[redacted API key {secret[:12]}…]"

    renamed = await someone.browser.request("PATCH", f"/v1/keys/{created.json()['id']}", json={"name": f"ci {secret}"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == f"ci {shown}"
    named = await someone.browser.post("/v1/keys", json={"name": secret})
    assert named.json()["name"] == shown

    endpoint = await someone.browser.post(
        "/v1/webhooks/endpoints",
        json={"url": "https://1.1.1.1/hooks", "description": f"uses {secret} to call back"},
    )
    assert endpoint.status_code == 201, endpoint.text
    assert endpoint.json()["description"] == f"uses {shown} to call back"
    changed = await someone.browser.request(
        "PATCH", f"/v1/webhooks/endpoints/{endpoint.json()['id']}", json={"description": secret}
    )
    assert changed.json()["description"] == shown

    submitted = await someone.browser.post(
        "/v1/tasks", json={**IMAGE, "metadata": {"key": secret, "note": f"({secret})"}}
    )
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["metadata"] == {"key": shown, "note": f"({shown})"}
    canceled = await someone.browser.post(f"/v1/tasks/{submitted.json()['id']}/cancel")
    assert canceled.status_code == 200, canceled.text

    phone = await someone.browser.http.post(
        "/v1/auth/signin",
        json={"email": someone.email, "password": someone.password},
        headers={"User-Agent": f"script/1.0 (key {secret})"},
    )
    assert phone.json()["session"]["user_agent"] == f"script/1.0 (key {shown})"

    stored = await services.db.fetch(
        """
        SELECT name AS text FROM api_keys WHERE account_id = $1
        UNION ALL SELECT description FROM webhook_endpoints WHERE account_id = $1
        UNION ALL SELECT metadata::text FROM tasks WHERE account_id = $1
        """,
        someone.account_id,
    )
    assert len(stored) == 4 and not any(secret in row["text"] for row in stored)
    sessions = (await someone.browser.get("/v1/auth/sessions")).text
    assert secret not in sessions and shown in sessions
