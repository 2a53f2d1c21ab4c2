"""A key's budget through the API: set on the keys route, shown on the key, enforced with 402 budget_exceeded."""

from __future__ import annotations

from tests.integration.accounts.conftest import BrowserFactory, PersonFactory

IMAGE = {"model": "flux-schnell", "input": {"prompt": "a budgeted task", "width": 256, "height": 256}}


async def test_a_daily_budget_on_a_key(person: PersonFactory, browser: BrowserFactory) -> None:
    owner = await person("budget")
    bad = await owner.browser.post("/v1/keys", json={"name": "b", "budget": {"amount": 1, "period": "fortnight"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget.period"
    created = await owner.browser.post(
        "/v1/keys", json={"name": "budgeted", "budget": {"amount": 0.5, "period": "day"}}
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["budget"] == {"amount": 0.5, "period": "day", "reset": "calendar", "spent": 0, "reserved": 0}
    assert key["budget_remaining"] == 0.5 and key["resets_at"].endswith("T00:00:00Z")
    program = browser()
    headers = {"Authorization": f"Bearer {key['secret']}"}
    first = await program.post("/v1/tasks", json=IMAGE, headers=headers)
    assert first.status_code == 202, first.text
    second = await program.post("/v1/tasks", json=IMAGE, headers=headers)
    assert second.status_code == 402
    error = second.json()["error"]
    assert error["code"] == "budget_exceeded" and "daily budget" in error["message"]
    shown = (await owner.browser.get(f"/v1/keys/{key['id']}")).json()
    assert shown["budget"]["reserved"] == 0.3 and shown["budget_remaining"] == 0.2
    # Raised, the budget lets the next task through; removed, it is gone from the key.
    raised = await owner.browser.request("PATCH", f"/v1/keys/{key['id']}", json={"budget": {"amount": 1,
                                         "period": "day"}})  # fmt: skip
    assert raised.status_code == 200 and raised.json()["budget_remaining"] == 0.7
    assert (await program.post("/v1/tasks", json=IMAGE, headers=headers)).status_code == 202
    removed = await owner.browser.request("PATCH", f"/v1/keys/{key['id']}", json={"budget": None})
    assert removed.json()["budget"] is None and removed.json()["budget_remaining"] is None
    audit = (await owner.browser.get("/v1/account/audit", params={"action": "key."})).json()["data"]
    assert [e["action"] for e in audit] == ["key.update", "key.update", "key.create"]
    assert audit[1]["before"]["budget"]["amount"] == 0.5 and audit[1]["after"]["budget"]["amount"] == 1
