"""A key's own rate limits, set by its owner with a session, apply on every process at once."""

from __future__ import annotations

from shared.services import Services
from tests.harness import wait_for
from tests.integration.accounts.conftest import PersonFactory


async def test_owner_sets_and_removes_a_keys_limits(person: PersonFactory, services: Services) -> None:
    someone = await person("limits")
    created = await someone.browser.post(
        "/v1/keys", json={"name": "ci", "rate_limits": {"requests_per_minute": 2, "max_inflight_tasks": 1}}
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["rate_limits"] == {"requests_per_minute": 2, "max_inflight_tasks": 1}
    headers = {"Authorization": f"Bearer {key['secret']}"}
    http = someone.browser.http
    assert (await http.get("/v1/account", headers=headers)).headers["RateLimit-Limit"] == "2"
    assert (await http.get("/v1/account", headers=headers)).status_code == 200
    assert (await http.get("/v1/account", headers=headers)).status_code == 429

    patched = await someone.browser.request(
        "PATCH", f"/v1/keys/{key['id']}", json={"rate_limits": {"requests_per_minute": 50}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rate_limits"] == {"requests_per_minute": 50, "max_inflight_tasks": 1}

    async def raised() -> bool:  # the cached key is invalidated on every API process
        response = await http.get("/v1/account", headers=headers)
        return response.status_code == 200 and response.headers["RateLimit-Limit"] == "50"

    await wait_for(raised, timeout=10, what="the new limit to apply")
    removed = await someone.browser.request(
        "PATCH", f"/v1/keys/{key['id']}", json={"rate_limits": {"requests_per_minute": None}}
    )
    assert removed.json()["rate_limits"]["requests_per_minute"] is None
    assert (await someone.browser.get("/v1/keys")).json()["data"][0]["rate_limits"]["max_inflight_tasks"] == 1

    for bad in (0, -3, 10**7, "many"):
        refused = await someone.browser.request(
            "PATCH", f"/v1/keys/{key['id']}", json={"rate_limits": {"max_inflight_tasks": bad}}
        )
        assert refused.status_code == 400, (bad, refused.text)
    # A session counts against the account's limit (it has no key), and sees the account's headers.
    own = await someone.browser.get("/v1/account")
    assert own.status_code == 200 and own.headers["RateLimit-Limit"] == "100000"
