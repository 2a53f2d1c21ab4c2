"""API keys managed with a session: lifecycle, limits (allowed models, spend cap) enforced on /v1/tasks."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from decimal import Decimal
from functools import partial
from typing import Any

import httpx

from shared.services import Services
from shared.settings import Settings
from tests.harness import InProcessWorker, wait_for
from tests.integration.accounts.conftest import Person, PersonFactory

FLUX = {"model": "flux-schnell", "input": {"prompt": "a capped lighthouse", "width": 256, "height": 256}}  # 0.3
SDXL = {"model": "sdxl", "input": {"prompt": "an allowed cat"}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def create_key(someone: Person, **body: Any) -> dict[str, Any]:
    response = await someone.browser.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def status_is(http: httpx.AsyncClient, secret: str, status: int) -> httpx.Response | None:
    response = await http.get("/v1/account", headers=bearer(secret))
    return response if response.status_code == status else None


async def test_create_list_and_use_a_key(person: PersonFactory, services: Services) -> None:
    someone = await person("keys")
    created = await create_key(someone, name="laptop")
    secret = created["secret"]
    assert re.fullmatch(r"cdt_[A-Za-z0-9]{40}", secret)
    assert created["prefix"] == secret[:12]
    assert created["status"] == "active"
    assert created["allowed_models"] is None and created["spend_cap"] is None and created["spent"] == 0
    stored = await services.db.fetchrow("SELECT key_hash FROM api_keys WHERE id = $1", created["id"])
    assert stored is not None and secret not in stored["key_hash"]  # only a hash is kept

    listed = (await someone.browser.get("/v1/keys")).json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert set(listed[0]) >= {"name", "prefix", "created_at", "last_used_at", "expires_at", "allowed_models"}

    account = await someone.browser.http.get("/v1/account", headers=bearer(secret))
    assert account.status_code == 200
    assert account.json()["id"] == str(someone.account_id)

    async def used() -> Any:
        return (await someone.browser.get(f"/v1/keys/{created['id']}")).json()["last_used_at"]

    await wait_for(used, timeout=10, what="last_used_at to be recorded")


async def test_an_api_key_cannot_manage_keys(person: PersonFactory) -> None:
    someone = await person("no-key-mgmt")
    secret = (await create_key(someone))["secret"]
    http = someone.browser.http
    for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/account")):
        # Even with the session cookie present, a bearer key on the request is refused here.
        response = await http.request(method, path, headers=bearer(secret), json={})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "session_required"
    no_csrf = await http.post("/v1/keys", json={"name": "sneaky"})
    assert no_csrf.status_code == 403
    assert no_csrf.json()["error"]["code"] == "csrf_failed"
    assert len((await someone.browser.get("/v1/keys")).json()["data"]) == 1


async def test_revoke_delete_and_rotate_take_effect_at_once_on_every_api_process(
    person: PersonFactory, client: httpx.AsyncClient
) -> None:
    someone = await person("lifecycle")
    b, other_process = someone.browser, client  # two API servers, each with its own key cache
    keys = [await create_key(someone, name=name) for name in ("revoked", "deleted", "rotated")]
    for key in keys:  # warm both caches
        assert await status_is(b.http, key["secret"], 200)
        assert await status_is(other_process, key["secret"], 200)

    assert (await b.post(f"/v1/keys/{keys[0]['id']}/revoke")).json()["status"] == "revoked"
    assert (await b.request("DELETE", f"/v1/keys/{keys[1]['id']}")).status_code == 204
    new = (await b.post(f"/v1/keys/{keys[2]['id']}/rotate")).json()
    assert new["id"] == keys[2]["id"] and new["secret"] != keys[2]["secret"] and new["rotated_at"]

    for http in (b.http, other_process):
        for key in keys:
            refused = await wait_for(partial(status_is, http, key["secret"], 401), timeout=2, interval=0.01)
            expected = "invalid_api_key" if key is keys[2] else "revoked_api_key"  # a rotated secret is unknown
            assert refused.json()["error"]["code"] == expected
        assert await status_is(http, new["secret"], 200)

    listed = {k["id"]: k for k in (await b.get("/v1/keys")).json()["data"]}
    assert keys[1]["id"] not in listed  # deleted keys are gone from the list
    assert listed[keys[0]["id"]]["status"] == "revoked"
    assert (await b.get(f"/v1/keys/{keys[1]['id']}")).status_code == 404
    not_active = await b.post(f"/v1/keys/{keys[0]['id']}/rotate")
    assert not_active.status_code == 409
    assert not_active.json()["error"]["code"] == "key_not_active"
    # Another account's key is not found, whatever the operation.
    stranger = await person("stranger")
    for method, path in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate"), ("DELETE", "")):
        response = await stranger.browser.request(method, f"/v1/keys/{new['id']}{path}")
        assert response.status_code == 404, (method, path)
    assert await status_is(b.http, new["secret"], 200)


async def test_keys_expire(person: PersonFactory) -> None:
    someone = await person("expiring")
    past = await someone.browser.post("/v1/keys", json={"expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400
    assert past.json()["error"]["param"] == "expires_at"
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).isoformat()
    key = await create_key(someone, expires_at=soon)
    assert await status_is(someone.browser.http, key["secret"], 200)  # cached now, with its expiry
    expired = await wait_for(
        lambda: status_is(someone.browser.http, key["secret"], 401), timeout=20, what="the key to expire"
    )
    assert expired.json()["error"]["code"] == "expired_api_key"
    assert (await someone.browser.get(f"/v1/keys/{key['id']}")).json()["status"] == "expired"


async def test_allowed_models_are_enforced_on_tasks(person: PersonFactory) -> None:
    someone = await person("allowed")
    b = someone.browser
    typo = await b.post("/v1/keys", json={"allowed_models": ["sdxl", "no-such-model"]})
    assert typo.status_code == 400
    assert typo.json()["error"]["param"] == "allowed_models[1]"
    key = await create_key(someone, allowed_models=["sdxl"])
    refused = await b.http.post("/v1/tasks", json=FLUX, headers=bearer(key["secret"]))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.json()["error"]["param"] == "model"
    assert (await b.http.post("/v1/tasks", json=SDXL, headers=bearer(key["secret"]))).status_code == 202
    # Lifting the limit applies to the next request.
    lifted = await b.request("PATCH", f"/v1/keys/{key['id']}", json={"allowed_models": None})
    assert lifted.json()["allowed_models"] is None

    async def accepted() -> bool:
        return (await b.http.post("/v1/tasks", json=FLUX, headers=bearer(key["secret"]))).status_code == 202

    await wait_for(accepted, timeout=2, interval=0.01)


async def _key_row(services: Services, key_id: str) -> Any:
    return await services.db.fetchrow("SELECT spend_cap, spent, cap_held FROM api_keys WHERE id = $1", key_id)


async def test_spend_cap_is_enforced_and_settled(person: PersonFactory, services: Services, settings: Settings) -> None:
    someone = await person("capped")
    b = someone.browser
    key = await create_key(someone, spend_cap=1)
    headers = bearer(key["secret"])
    accepted = [await b.http.post("/v1/tasks", json=FLUX, headers=headers) for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    over = await b.http.post("/v1/tasks", json=FLUX, headers=headers)
    assert over.status_code == 402
    assert over.json()["error"]["code"] == "spend_cap_exceeded"
    shown = (await b.get(f"/v1/keys/{key['id']}")).json()
    assert (shown["spend_cap"], shown["spend_reserved"], shown["spent"], shown["spend_remaining"]) == (1, 0.9, 0, 0.1)

    # A canceled task gives its reservation back; the others are charged to the key when they finish.
    task_id = accepted[0].json()["id"]
    assert (await b.http.post(f"/v1/tasks/{task_id}/cancel", headers=headers)).status_code == 200
    assert tuple(await _key_row(services, key["id"])) == (1_000_000, 0, 600_000)
    running = InProcessWorker(settings)
    await running.start()
    try:
        for response in accepted[1:]:
            done = await wait_terminal(b.http, headers, response.json()["id"])
            assert done["status"] == "succeeded"
    finally:
        await running.stop()
    assert tuple(await _key_row(services, key["id"])) == (1_000_000, 600_000, 0)
    assert (await b.http.post("/v1/tasks", json=FLUX, headers=headers)).status_code == 202  # 0.6 + 0.3 <= 1
    assert (await b.http.post("/v1/tasks", json=FLUX, headers=headers)).status_code == 402

    # Raising the cap applies to the next request.
    raised = await b.request("PATCH", f"/v1/keys/{key['id']}", json={"spend_cap": "5.5"})
    assert raised.json()["spend_cap"] == 5.5
    retried = {**headers, "Idempotency-Key": "capped-retry"}

    async def accepted_again() -> httpx.Response | None:
        response = await b.http.post("/v1/tasks", json=FLUX, headers=retried)
        return response if response.status_code == 202 else None

    first = await wait_for(accepted_again, timeout=2, interval=0.01)
    replay = await b.http.post("/v1/tasks", json=FLUX, headers=retried)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert tuple(await _key_row(services, key["id"])) == (5_500_000, 600_000, 600_000)  # reserved once
    # The person's own session is not a key: no cap applies to it.
    assert (await b.post("/v1/tasks", json=FLUX)).status_code == 202


async def wait_terminal(http: httpx.AsyncClient, headers: dict[str, str], task_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/v1/tasks/{task_id}", headers=headers)).json()
        return body if body["status"] in ("succeeded", "failed", "canceled") else None

    result: dict[str, Any] = await wait_for(done, timeout=60, what=f"task {task_id} to finish")
    return result


async def test_spend_cap_holds_under_concurrent_submits(person: PersonFactory, services: Services) -> None:
    someone = await person("cap-burst")  # 25 credits: the balance is not what limits here
    key = await create_key(someone, spend_cap=3)  # exactly 10 flux-schnell tasks at 0.3
    headers = bearer(key["secret"])
    http = someone.browser.http
    responses = await asyncio.gather(*(http.post("/v1/tasks", json=FLUX, headers=headers) for _ in range(30)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 10
    assert statuses.count(402) == 20
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 402} == {"spend_cap_exceeded"}
    assert tuple(await _key_row(services, key["id"])) == (3_000_000, 0, 3_000_000)
    held = await services.db.fetchval("SELECT credits_held FROM accounts WHERE id = $1", someone.account_id)
    assert held == 3_000_000  # refused submits held nothing
    balance = (await http.get("/v1/account", headers=headers)).json(parse_float=Decimal)["balance"]
    assert balance == {"available": Decimal(22), "held": Decimal(3)}
