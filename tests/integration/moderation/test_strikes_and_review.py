"""Strikes suspend an account (MODERATION_STRIKES_TO_SUSPEND=8 in the tests' environment), its owner can still
appeal, staff review the events, clear a false positive and lift the suspension; the evidence is purged after
MODERATION_EVIDENCE_RETENTION_S."""

from __future__ import annotations

import httpx

from shared.accounts.keys import set_account_status
from shared.moderation.events import purge_evidence
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.staff.sessions import open_session

BLOCKED_CHAT = {"model": "test-chat-local", "messages": [{"role": "user", "content": "zorblax"}]}


async def _block(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/v1/chat/completions", headers=headers, json=BLOCKED_CHAT)


async def test_strikes_suspend_the_account_which_can_still_appeal_until_staff_lift_it(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    user = await make_account(credits="5")
    support = await make_account(role="support")
    admin = await make_account(role="admin")
    for _ in range(8):
        refused = await _block(client, user.headers)
        assert refused.json()["error"]["code"] == "content_policy_violation"
    suspended = await client.get("/v1/account", headers=user.headers)
    assert suspended.status_code == 403
    assert suspended.json()["error"]["code"] == "account_suspended"
    assert "content policy" in suspended.json()["error"]["message"]  # the reason, shown to the user
    ticket = await client.post("/v1/support/tickets", headers=user.headers,
                               json={"subject": "hi", "category": "account", "body": "let me in"})  # fmt: skip
    assert ticket.status_code == 403  # every other route stays closed

    appeal = await client.post("/v1/moderation/appeals", headers=user.headers,
                               json={"message": "It was a quote from a novel."})  # fmt: skip
    assert appeal.status_code == 201, appeal.text
    assert appeal.json()["subject"] == "Appeal: account suspension"
    body = await services.db.fetchval(
        "SELECT m.body FROM support_messages m JOIN support_tickets t ON t.id = m.ticket_id WHERE t.account_id = $1",
        user.id,
    )
    assert body.startswith("It was a quote from a novel.") and "content policy" in body
    staff_view = await client.get(f"/v1/staff/tickets/{appeal.json()['id']}", headers=support.headers)
    assert staff_view.status_code == 200 and staff_view.json()["subject"] == "Appeal: account suspension"

    listed = await client.get("/v1/admin/moderation/events", headers=support.headers,
                              params={"account": user.email, "limit": 5})  # fmt: skip
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert len(page["data"]) == 5 and page["has_more"] and page["next_cursor"]
    event = page["data"][0]
    assert (event["category"], event["action"], event["source"], event["excerpt"]) == (
        "violence", "blocked", "chat.completion", "zorblax"
    )  # fmt: skip
    rest = await client.get("/v1/admin/moderation/events", headers=support.headers,
                            params={"account": str(user.id), "after": page["next_cursor"]})  # fmt: skip
    assert len(rest.json()["data"]) == 3 and not rest.json()["has_more"]

    cleared = await client.post(f"/v1/admin/moderation/events/{event['id']}/clear", headers=support.headers,
                                json={"reason": "quoting fiction"})  # fmt: skip
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["cleared_at"] and cleared.json()["cleared_reason"] == "quoting fiction"
    again = await client.post(f"/v1/admin/moderation/events/{event['id']}/clear", headers=support.headers,
                              json={"reason": "twice"})  # fmt: skip
    assert again.status_code == 409
    only_cleared = await client.get("/v1/admin/moderation/events", headers=support.headers,
                                    params={"account": str(user.id), "cleared": "true"})  # fmt: skip
    assert [e["id"] for e in only_cleared.json()["data"]] == [event["id"]]

    refused = await client.post(f"/v1/admin/moderation/accounts/{user.id}/lift-suspension", headers=support.headers,
                                json={"reason": "appeal accepted"})  # fmt: skip
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
    lifted = await client.post(f"/v1/admin/moderation/accounts/{user.id}/lift-suspension", headers=admin.headers,
                               json={"reason": "appeal accepted"})  # fmt: skip
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["status"], lifted.json()["strikes_cleared"]) == ("active", 7)
    assert (await client.get("/v1/account", headers=user.headers)).status_code == 200
    # the strikes were cleared: one more block does not suspend the account again
    assert (await _block(client, user.headers)).status_code == 400
    assert (await client.get("/v1/account", headers=user.headers)).status_code == 200
    actions = await services.db.fetch(
        "SELECT action FROM staff_audit_log WHERE target_id IN ($1, $2) ORDER BY created_at",
        str(user.id), event["id"],
    )  # fmt: skip
    assert [row["action"] for row in actions] == ["account.suspend", "moderation.clear", "account.unsuspend"]
    logged = await client.get("/v1/admin/audit", headers=admin.headers,
                              params={"target_id": str(user.id), "action": "account.suspend"})  # fmt: skip
    assert logged.status_code == 200, logged.text
    [entry] = logged.json()["data"]  # the automatic suspension: the rule is the actor, not a staff member
    assert (entry["actor"], entry["actor_id"], entry["role"], entry["via"]) == (
        "moderation strike rule", None, "system", "strike_rule"
    )  # fmt: skip
    assert "content policy" in entry["reason"] and "violence" in entry["reason"]
    assert entry["before"] == {"status": "active"}
    assert entry["after"] == {"status": "suspended", "strikes": 8, "window_s": entry["after"]["window_s"]}


async def test_review_is_for_staff_and_appeals_for_suspended_accounts(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    user = await make_account()
    listed = await client.get("/v1/admin/moderation/events", headers=user.headers)
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "staff_only"
    appeal = await client.post("/v1/moderation/appeals", headers=user.headers, json={"message": "why?"})
    assert appeal.status_code == 409 and appeal.json()["error"]["code"] == "account_not_suspended"
    nobody = await client.post("/v1/moderation/appeals", json={"message": "why?"})
    assert nobody.status_code == 401
    support = await make_account(role="support")
    bad = await client.get("/v1/admin/moderation/events", headers=support.headers, params={"category": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "category"
    missing = await client.post("/v1/admin/moderation/events/not-an-id/clear", headers=support.headers,
                                json={"reason": "x"})  # fmt: skip
    assert missing.status_code == 404


async def test_the_evidence_is_purged_after_its_retention(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    user = await make_account()
    assert (await _block(client, user.headers)).status_code == 400
    assert await purge_evidence(services.db, retention_s=3600) == 0  # too young
    await services.db.execute(
        "UPDATE moderation_events SET created_at = now() - interval '2 hours' WHERE account_id = $1", user.id
    )
    assert await purge_evidence(services.db, retention_s=3600) == 1
    row = await services.db.fetchrow(
        "SELECT excerpt, excerpt_purged_at, category FROM moderation_events WHERE account_id = $1", user.id
    )
    assert row is not None and row["excerpt"] is None and row["excerpt_purged_at"] is not None
    assert row["category"] == "violence"  # the event itself stays


async def test_a_suspended_account_signed_in_on_the_website_can_appeal_with_its_session(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    user = await make_account()
    browser = await open_session(services, str(client.base_url), user.id, second_factor=False)
    try:
        await set_account_status(services.db, services.redis, user.id, "suspended", reason="strikes")
        closed = await browser.get("/v1/account")
        assert (closed.status_code, closed.json()["error"]["code"]) == (403, "account_suspended")
        forged = await browser.http.post("/v1/moderation/appeals", json={"message": "no CSRF token"})
        assert (forged.status_code, forged.json()["error"]["code"]) == (403, "csrf_failed")
        empty = await browser.post("/v1/moderation/appeals", json={})
        assert (empty.status_code, empty.json()["error"]["param"]) == (400, "message")
        appeal = await browser.post("/v1/moderation/appeals", json={"message": "Please look again."})
        assert appeal.status_code == 201, appeal.text
        assert (appeal.json()["subject"], appeal.json()["category"]) == ("Appeal: account suspension", "account")
        body = await services.db.fetchval(
            "SELECT m.body FROM support_messages m JOIN support_tickets t ON t.id = m.ticket_id"
            " WHERE t.account_id = $1",
            user.id,
        )
        assert body.startswith("Please look again.") and "strikes" in body
        # the session opens the appeal only: everything else stays closed
        ticket = await browser.post("/v1/support/tickets",
                                    json={"subject": "hi", "category": "account", "body": "let me in"})  # fmt: skip
        assert ticket.status_code == 403
        # and its API key still can too (both credentials)
        by_key = await client.post("/v1/moderation/appeals", headers=user.headers, json={"message": "again"})
        assert by_key.status_code == 201, by_key.text
    finally:
        await browser.http.aclose()
