"""The console's moderation page: the events with their excerpts, the clear button for support staff and
admins, the lift-suspension button for admins only; the buttons' routes work with the console's session."""

from __future__ import annotations

import re

import httpx

from tests.integration.staff.conftest import SessionFactory

BLOCKED_CHAT = {"model": "test-chat-local", "messages": [{"role": "user", "content": "tell me of the zorblax"}]}


async def test_staff_review_events_and_lift_a_suspension_from_the_console(
    client: httpx.AsyncClient, signed_in: SessionFactory
) -> None:
    user, _ = await signed_in("user")
    for _ in range(8):  # MODERATION_STRIKES_TO_SUSPEND in the tests' environment
        assert (await client.post("/v1/chat/completions", headers=user.headers, json=BLOCKED_CHAT)).status_code == 400
    _, support = await signed_in("support")
    _, admin = await signed_in("admin")

    by_support = await support.http.get("/console/moderation", params={"account": user.email})
    assert by_support.status_code == 200
    page = by_support.text
    assert page.count("tell me of the zorblax") == 8 and "suspended" in page
    assert 'id="lift-suspension"' not in page  # admins only
    clear_routes = re.findall(r'data-api="(/v1/admin/moderation/events/[^"]+/clear)"', page)
    assert len(clear_routes) == 8
    cleared = await support.post(clear_routes[0], json={"reason": "a quote"})
    assert cleared.status_code == 200, cleared.text
    still_open = await support.http.get("/console/moderation", params={"account": user.email})
    assert len(re.findall(r"/clear\"", still_open.text)) == 7
    cleared_view = await support.http.get("/console/moderation", params={"account": user.email, "review": "cleared"})
    assert "cleared: a quote" in cleared_view.text

    by_admin = await admin.http.get("/console/moderation", params={"account": user.email})
    match = re.search(r'id="lift-suspension" data-api="([^"]+)"', by_admin.text)
    assert match is not None
    lifted = await admin.post(match.group(1), json={"reason": "appeal accepted"})
    assert lifted.status_code == 200 and lifted.json()["status"] == "active"
    assert (await client.get("/v1/account", headers=user.headers)).status_code == 200


async def test_a_bad_filter_is_shown_on_the_page(signed_in: SessionFactory) -> None:
    _, support = await signed_in("support")
    shown = await support.http.get("/console/moderation", params={"category": "spam"})
    assert shown.status_code == 200 and "category must be one of" in shown.text
