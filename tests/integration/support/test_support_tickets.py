"""Support tickets: the thread between a user and staff, statuses, attachments checked by content,
access (another account's ticket is 404, staff routes need the role), and API keys redacted before storing."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image

from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.conftest import TestAccount as Account
from tests.harness import wait_for


def png(size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def open_ticket(client: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"subject": "Task stuck", "category": "technical", "body": "My task is queued forever.", **fields}
    response = await client.post("/v1/support/tickets", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_ticket_thread_between_a_user_and_staff(
    client: httpx.AsyncClient, make_account: AccountFactory, settings: Settings
) -> None:
    user = await make_account()
    staff = await make_account(role="support")
    ticket = await open_ticket(client, user)
    assert (ticket["status"], ticket["awaiting"], ticket["category"]) == ("open", "staff", "technical")
    assert [m["author"] for m in ticket["messages"]] == ["user"] and ticket["warnings"] == []
    tid = ticket["id"]

    queue = (await client.get("/v1/staff/tickets?status=open&limit=100", headers=staff.headers)).json()["data"]
    assert tid in [t["id"] for t in queue]
    staff_view = (await client.get(f"/v1/staff/tickets/{tid}", headers=staff.headers)).json()
    assert staff_view["account_id"] == str(user.id) and staff_view["messages"][0]["author_id"] == str(user.id)

    reply = await client.post(
        f"/v1/staff/tickets/{tid}/messages", json={"body": "We restarted the worker; try again."}, headers=staff.headers
    )
    assert reply.status_code == 201, reply.text
    assert (reply.json()["status"], reply.json()["awaiting"]) == ("pending", "user")

    async def mailed() -> bool:
        outbox = settings.mail.outbox_dir
        return (
            any(user.email in p.read_text(errors="replace") for p in outbox.glob("*.eml")) if outbox.exists() else False
        )

    await wait_for(mailed, timeout=10, what="the 'support answered' mail")

    mine = (await client.get(f"/v1/support/tickets/{tid}", headers=user.headers)).json()
    assert [m["author"] for m in mine["messages"]] == ["user", "staff"]
    assert "author_id" not in mine["messages"][1]  # staff are not named to users
    answered = await client.post(
        f"/v1/support/tickets/{tid}/messages", json={"body": "Works now."}, headers=user.headers
    )
    assert answered.json()["status"] == "open"

    closed = await client.post(f"/v1/support/tickets/{tid}/close", headers=user.headers)
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_at"]
    for path, headers in ((f"/v1/support/tickets/{tid}/messages", user.headers),
                          (f"/v1/staff/tickets/{tid}/messages", staff.headers)):  # fmt: skip
        refused = await client.post(path, json={"body": "one more thing"}, headers=headers)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "ticket_closed"
    assert (await client.post(f"/v1/support/tickets/{tid}/close", headers=user.headers)).status_code == 409
    reopened = await client.post(f"/v1/support/tickets/{tid}/reopen", headers=user.headers)
    assert reopened.json()["status"] == "open" and reopened.json()["closed_at"] is None
    assert (await client.post(f"/v1/support/tickets/{tid}/reopen", headers=user.headers)).status_code == 409
    assert (await client.post(f"/v1/staff/tickets/{tid}/close", headers=staff.headers)).json()["status"] == "closed"

    other = await open_ticket(client, user, subject="Invoice", category="billing", body="Where is my invoice?")
    own = (await client.get("/v1/support/tickets", headers=user.headers)).json()["data"]
    assert [t["id"] for t in own] == [other["id"], tid]  # newest first
    by_status = (await client.get("/v1/support/tickets?status=closed", headers=user.headers)).json()["data"]
    assert [t["id"] for t in by_status] == [tid]
    by_category = (await client.get("/v1/support/tickets?category=billing", headers=user.headers)).json()["data"]
    assert [t["id"] for t in by_category] == [other["id"]]
    page = (await client.get("/v1/support/tickets?limit=1", headers=user.headers)).json()
    assert page["has_more"] and page["next_cursor"] == other["id"]
    rest = (await client.get(f"/v1/support/tickets?after={page['next_cursor']}", headers=user.headers)).json()
    assert [t["id"] for t in rest["data"]] == [tid]
    staff_filter = (await client.get(f"/v1/staff/tickets?account={user.id}", headers=staff.headers)).json()["data"]
    assert {t["id"] for t in staff_filter} == {tid, other["id"]}


async def test_bad_tickets_are_clear_errors(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    user = await make_account()
    for body, param in (
        ({"subject": "", "category": "technical", "body": "x"}, "subject"),
        ({"subject": "x", "category": "complaints", "body": "x"}, "category"),
        ({"subject": "x", "category": "account", "body": "   "}, "body"),
        ({"subject": "x" * 201, "category": "account", "body": "x"}, "subject"),
    ):
        response = await client.post("/v1/support/tickets", json=body, headers=user.headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    missing = await client.post("/v1/support/tickets", json={"subject": "x"}, headers=user.headers)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_request"
    garbage = await client.post(
        "/v1/support/tickets", content=b"{", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert (await client.get("/v1/support/tickets?status=lost", headers=user.headers)).status_code == 400
    assert (await client.get("/v1/support/tickets")).status_code == 401


async def test_attachments_allowed_and_refused(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: Settings
) -> None:
    user = await make_account()
    staff = await make_account(role="admin")
    image, log_text = png(), b"2026-11-22 worker: task 123 failed\n"
    created = await client.post(
        "/v1/support/tickets",
        data={"subject": "Screenshot", "category": "product", "body": "See attached."},
        files=[("files", ("screen.png", image, "image/png")), ("files", ("../../etc/worker.log", log_text, "x/y"))],
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    files = ticket["messages"][0]["attachments"]
    assert [(f["filename"], f["content_type"], f["size_bytes"]) for f in files] == [
        ("screen.png", "image/png", len(image)),
        ("worker.log", "text/plain", len(log_text)),
    ]
    download = await client.get(files[0]["url"], headers=user.headers)
    assert download.status_code == 200 and download.content == image
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"
    as_staff = await client.get(f"/v1/staff/tickets/{ticket['id']}/attachments/{files[1]['id']}", headers=staff.headers)
    assert as_staff.status_code == 200 and as_staff.content == log_text
    assert as_staff.headers["content-type"].startswith("text/plain")
    assert (await client.get(files[0]["url"])).status_code == 401  # never without credentials

    def refused(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code

    async def attach(*parts: tuple[str, bytes]) -> httpx.Response:
        return await client.post(
            f"/v1/support/tickets/{ticket['id']}/messages",
            data={"body": "more"},
            files=[("files", (name, data, "image/png")) for name, data in parts],
            headers=user.headers,
        )

    refused(await attach(("setup.png", b"MZ\x90\x00" + bytes(200))), 400, "attachment_type_not_allowed")  # a PE
    refused(await attach(("zipped.png", b"PK\x03\x04" + bytes(100))), 400, "attachment_type_not_allowed")
    refused(await attach(("binary.txt", b"abc\x00def")), 400, "attachment_type_not_allowed")
    cap = settings.support.attachment_max_bytes
    refused(await attach(("huge.png", image + bytes(cap))), 413, "attachment_too_large")
    refused(await attach(("empty.png", b"")), 400, "empty_attachment")
    too_many = [(f"{n}.png", image) for n in range(settings.support.attachments_per_message + 1)]
    refused(await attach(*too_many), 400, "too_many_attachments")
    # Nothing of the refused messages was kept.
    thread = (await client.get(f"/v1/support/tickets/{ticket['id']}", headers=user.headers)).json()["messages"]
    assert len(thread) == 1
    stored = sorted(p.name for p in (services.storage.root / "attachments" / ticket["id"]).iterdir())
    assert stored == sorted(f"{f['id']}.{ext}" for f, ext in zip(files, ("png", "txt"), strict=True))
    # A file that claims to be an image but is text is kept as what it is.
    ok = await attach(("notes.png", b"plain notes"))
    assert ok.status_code == 201 and ok.json()["messages"][-1]["attachments"][0]["content_type"] == "text/plain"


async def test_another_accounts_ticket_is_not_found(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    owner, stranger = await make_account(), await make_account()
    created = await client.post(
        "/v1/support/tickets",
        data={"subject": "Mine", "category": "account", "body": "private"},
        files=[("files", ("a.png", png(), "image/png"))],
        headers=owner.headers,
    )
    ticket = created.json()
    attachment = ticket["messages"][0]["attachments"][0]
    tid = ticket["id"]
    for method, path in (
        ("GET", f"/v1/support/tickets/{tid}"),
        ("POST", f"/v1/support/tickets/{tid}/close"),
        ("POST", f"/v1/support/tickets/{tid}/reopen"),
        ("GET", f"/v1/support/tickets/{tid}/attachments/{attachment['id']}"),
        ("GET", "/v1/support/tickets/not-a-ticket"),
    ):
        response = await client.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["type"] == "not_found_error"
    reply = await client.post(f"/v1/support/tickets/{tid}/messages", json={"body": "hi"}, headers=stranger.headers)
    assert reply.status_code == 404
    assert (await client.get("/v1/support/tickets", headers=stranger.headers)).json()["data"] == []
    # Staff routes need the support (or admin) role.
    for method, path in (("GET", "/v1/staff/tickets"), ("GET", f"/v1/staff/tickets/{tid}"),
                         ("POST", f"/v1/staff/tickets/{tid}/close")):  # fmt: skip
        response = await client.request(method, path, headers=owner.headers)
        assert response.status_code == 403 and response.json()["error"]["code"] == "staff_only"
    # The owner's own view of the ticket still works, and is unchanged.
    assert (await client.get(f"/v1/support/tickets/{tid}", headers=owner.headers)).json()["status"] == "open"


async def test_api_keys_are_redacted_before_storing(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    user = await make_account()
    foreign = "cdt_" + "Ab3" * 13 + "x"  # the shape of a key, not one of this account's
    not_a_key = "cdt_" + "a" * 41  # too long: not a key we issue
    body = f"My key {user.key} stopped working.\nAlso tried {foreign}; and {not_a_key}."
    log_text = f"Authorization: Bearer {user.key}\n".encode()
    created = await client.post(
        "/v1/support/tickets",
        data={"subject": f"Key {user.key} broken", "category": "account", "body": body},
        files=[("files", ("request.log", log_text, "text/plain"))],
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    message = ticket["messages"][0]
    assert user.key not in ticket["subject"] and user.key[:12] in ticket["subject"]
    assert user.key not in message["body"] and foreign not in message["body"]
    assert f"[redacted API key {user.key[:12]}…]" in message["body"]
    assert not_a_key in message["body"]
    assert message["redacted_keys"] == 2
    warnings = {w["key_prefix"]: w for w in ticket["warnings"]}
    assert set(warnings) == {user.key[:12], foreign[:12]}
    own_key_id = str(await services.db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", user.id))
    assert warnings[user.key[:12]]["key_id"] == own_key_id
    assert "rotate" in warnings[user.key[:12]]["message"] and own_key_id in warnings[user.key[:12]]["message"]
    assert warnings[foreign[:12]]["key_id"] is None
    # Nothing anywhere holds the key: not the rows, not the stored file.
    rows = await services.db.fetch(
        "SELECT m.body, t.subject FROM support_messages m JOIN support_tickets t ON t.id = m.ticket_id "
        "WHERE t.account_id = $1",
        user.id,
    )
    assert all(user.key not in r["body"] and user.key not in r["subject"] for r in rows)
    attachment = message["attachments"][0]
    stored = (await client.get(attachment["url"], headers=user.headers)).content
    assert user.key.encode() not in stored and user.key[:12].encode() in stored
    assert attachment["size_bytes"] == len(stored)

    later = await client.post(
        f"/v1/support/tickets/{ticket['id']}/messages", json={"body": f"again: {user.key}"}, headers=user.headers
    )
    assert later.json()["messages"][-1]["redacted_keys"] == 1 and len(later.json()["warnings"]) == 1
    clean = await client.post(f"/v1/support/tickets/{ticket['id']}/messages", json={"body": "ok"}, headers=user.headers)
    assert clean.json()["warnings"] == []


async def test_an_attachment_named_after_a_key_is_redacted(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    user = await make_account()
    created = await client.post(
        "/v1/support/tickets",
        data={"subject": "Screenshot", "category": "account", "body": "See the file."},
        files=[("files", (f"{user.key}.png", png(), "image/png"))],
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    [attachment] = ticket["messages"][0]["attachments"]
    assert attachment["filename"] == f"[redacted API key {user.key[:12]}…].png"
    assert ticket["messages"][0]["redacted_keys"] == 1
    [warning] = ticket["warnings"]
    assert warning["code"] == "api_key_redacted" and warning["key_prefix"] == user.key[:12]
    stored = await services.db.fetchval("SELECT filename FROM support_attachments WHERE id = $1", attachment["id"])
    assert user.key not in stored
    download = await client.get(attachment["url"], headers=user.headers)
    assert download.status_code == 200 and download.content == png()
    assert user.key not in download.headers["content-disposition"]
    shown = await client.get(f"/v1/support/tickets/{ticket['id']}", headers=user.headers)
    assert user.key not in shown.text
