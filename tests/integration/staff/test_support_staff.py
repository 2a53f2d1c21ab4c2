"""Support staff at work: answer with an attachment, internal notes the customer never sees (nor their files),
assignment, status, canned replies, the queue's filters; each action in the audit log."""

from __future__ import annotations

import httpx

from shared.services import Services
from tests.files import image_bytes
from tests.integration.staff.conftest import SessionFactory


async def test_answers_notes_assignment_and_canned_replies(
    client: httpx.AsyncClient, signed_in: SessionFactory, services: Services
) -> None:
    customer, _ = await signed_in("user")
    agent_account, agent = await signed_in("support")
    opened = await client.post(
        "/v1/support/tickets",
        json={"subject": "Refund please", "category": "billing", "body": "I bought the wrong pack."},
        headers=customer.headers,
    )
    ticket = opened.json()["id"]
    base = f"/v1/staff/tickets/{ticket}"

    png = image_bytes("PNG")
    answer = await agent.post(
        f"{base}/messages", data={"body": "Here is how."}, files={"files": ("how.png", png, "image/png")}
    )
    assert answer.status_code == 201, answer.text
    note = await agent.post(
        f"{base}/messages",
        data={"body": "Customer bought twice last month; approve.", "internal": "true"},
        files={"files": ("history.txt", b"order 1\norder 2\n", "text/plain")},
    )
    assert note.status_code == 201, note.text
    assert note.json()["status"] == "pending"  # the note changed nothing; the answer made it pending
    staff_view = note.json()["messages"]
    assert [m.get("internal") for m in staff_view] == [False, False, True]
    note_file = staff_view[2]["attachments"][0]["id"]

    mine = (await client.get(f"/v1/support/tickets/{ticket}", headers=customer.headers)).json()
    assert [m["body"] for m in mine["messages"]] == ["I bought the wrong pack.", "Here is how."]
    assert "approve" not in str(mine)
    hidden = await client.get(f"/v1/support/tickets/{ticket}/attachments/{note_file}", headers=customer.headers)
    assert hidden.status_code == 404
    shown = await agent.get(f"{base}/attachments/{note_file}")
    assert shown.status_code == 200 and shown.headers["content-disposition"].startswith("attachment")
    page = (await agent.get(f"/console/support/{ticket}")).text
    assert "Internal note" in page and 'class="preview attachment-preview"' in page

    assigned = await agent.post(f"{base}/assign", json={"assignee": "me"})
    assert assigned.json()["assignee_id"] == str(agent_account.id)
    bad_assignee = await agent.post(f"{base}/assign", json={"assignee": str(customer.id)})
    assert bad_assignee.status_code == 400 and bad_assignee.json()["error"]["param"] == "assignee"
    mine_queue = (await agent.get("/v1/staff/tickets", params={"assignee": "me"})).json()["data"]
    assert [t["id"] for t in mine_queue] == [ticket]
    waiting = (await agent.get("/v1/staff/tickets", params={"older_than_hours": 1, "account": str(customer.id)})).json()
    assert waiting["data"] == []
    assert (await agent.post(f"{base}/status", json={"status": "closed"})).json()["status"] == "closed"
    assert (await agent.post(f"{base}/status", json={"status": "closed"})).status_code == 409
    assert (await agent.post(f"{base}/status", json={"status": "lost"})).status_code == 400

    canned = await agent.post(
        "/v1/staff/canned-replies", json={"title": "Refund window", "body": "Refunds within 7 days."}
    )
    assert canned.status_code == 201
    assert (
        await agent.post("/v1/staff/canned-replies", json={"title": "Refund window", "body": "again"})
    ).status_code == 409
    assert "Refund window" in (await agent.get(f"/console/support/{ticket}")).text
    assert (await agent.delete(f"/v1/staff/canned-replies/{canned.json()['id']}")).status_code == 204

    actions = await services.db.fetch(
        "SELECT action FROM staff_audit_log WHERE actor_id = $1 ORDER BY id", agent_account.id
    )
    assert [a["action"] for a in actions] == [
        "ticket.reply",
        "ticket.note",
        "ticket.assign",
        "ticket.status",
        "canned_reply.create",
        "canned_reply.delete",
    ]
    refused = await client.get("/v1/staff/tickets", headers=customer.headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "staff_only"
