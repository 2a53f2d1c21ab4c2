"""A member's budget per period through the API: set by an owner, it covers the keys the member created, and a
member who leaves takes no reservation with them."""

from __future__ import annotations

from shared.services import Services
from tests.integration.accounts.conftest import BrowserFactory
from tests.integration.teams.conftest import TeamFactory

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a member's task", "width": 256, "height": 256}}


async def test_a_member_budget_covers_their_keys(
    team: TeamFactory, browser: BrowserFactory, services: Services
) -> None:
    t = await team("developer")
    member_path = f"/v1/account/members/{t.member.account_id}"
    refused = await t.member.browser.request("PATCH", member_path, json={"budget": {"amount": 5, "period": "day"}})
    assert refused.status_code == 403  # a developer does not set budgets
    set_ = await t.owner.browser.request("PATCH", member_path, json={"budget": {"amount": 0.5, "period": "day"}})
    assert set_.status_code == 200, set_.text
    shown = set_.json()
    assert shown["budget"] == {"amount": 0.5, "period": "day", "reset": "calendar", "spent": 0, "reserved": 0}
    assert shown["budget_remaining"] == 0.5 and shown["role"] == "developer"

    key = (await t.member.browser.post("/v1/keys", json={"name": "member key"})).json()
    owners = (await t.owner.browser.post("/v1/keys", json={"name": "owner key"})).json()
    program = browser()
    as_member = {"Authorization": f"Bearer {key['secret']}"}
    assert (await program.post("/v1/tasks", json=IMAGE, headers=as_member)).status_code == 202
    over = await program.post("/v1/tasks", json=IMAGE, headers=as_member)
    assert over.status_code == 402
    assert (
        over.json()["error"]["code"] == "budget_exceeded" and "member budget (daily)" in over.json()["error"]["message"]
    )
    # The owner's own key is not the member's: it is not limited by their budget.
    assert (await program.post("/v1/tasks", json=IMAGE, headers={"Authorization": f"Bearer {owners['secret']}"})
            ).status_code == 202  # fmt: skip
    listed = {m["person_id"]: m for m in (await t.owner.browser.get("/v1/account/members")).json()["data"]}
    assert listed[str(t.member.account_id)]["budget"]["reserved"] == 0.3
    assert listed[str(t.owner.account_id)]["budget"] is None
    audit = (await t.owner.browser.get("/v1/account/audit", params={"action": "member.budget"})).json()["data"]
    assert audit[0]["before"] is None and audit[0]["after"]["amount"] == 0.5

    # Leaving drops the member's reservations; their key goes on working for the account, unlimited by them.
    removed = await t.owner.browser.request("DELETE", member_path)
    assert removed.status_code == 204
    held = await services.db.fetchval("SELECT count(*) FROM member_holds WHERE person_id = $1", t.member.account_id)
    assert held == 0
    assert (await program.post("/v1/tasks", json=IMAGE, headers=as_member)).status_code == 202
