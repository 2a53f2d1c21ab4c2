"""Managing endpoints and secrets through the API, and rotation as a receiver sees it."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from shared.services import Services
from shared.webhooks.delivery import deliver
from shared.webhooks.endpoints import MAX_ENDPOINTS
from tests.conftest import AccountFactory
from tests.integration.webhooks.conftest import ManualClock, RuntimeFactory
from tests.integration.webhooks.flows import account_secret, canceled_task, create_endpoint, only_delivery
from tests.integration.webhooks.receiver import Receiver


async def test_endpoint_lifecycle_and_the_secret_shown_once(
    lclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    created = await create_endpoint(lclient, account, "http://127.0.0.1:9000/in", description="orders")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["task.succeeded", "task.failed", "task.canceled"]  # the default filter
    assert (created["enabled"], created["status"], created["description"]) == (True, "enabled", "orders")
    path = f"/v1/webhooks/endpoints/{created['id']}"

    shown = (await lclient.get(path, headers=account.headers)).json()
    assert "secret" not in shown
    listed = (await lclient.get("/v1/webhooks/endpoints", headers=account.headers)).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert all("secret" not in e for e in listed["data"])

    patched = await lclient.patch(
        path, json={"events": ["task.failed", "task.started"], "enabled": False}, headers=account.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["task.started", "task.failed"]
    assert (patched.json()["enabled"], patched.json()["disabled_reason"]) == (False, "manual")
    assert "secret" not in patched.json()
    enabled = await lclient.patch(path, json={"enabled": True}, headers=account.headers)
    assert (enabled.json()["enabled"], enabled.json()["disabled_reason"]) == (True, None)

    deleted = await lclient.delete(path, headers=account.headers)
    assert deleted.json() == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    gone = await lclient.get(path, headers=account.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "webhook_endpoint_not_found"


async def test_another_accounts_endpoint_is_not_found(lclient: httpx.AsyncClient, make_account: AccountFactory) -> None:
    owner, other = await make_account(), await make_account()
    created = await create_endpoint(lclient, owner, "http://127.0.0.1:9000/in")
    path = f"/v1/webhooks/endpoints/{created['id']}"
    for response in (
        await lclient.get(path, headers=other.headers),
        await lclient.patch(path, json={"enabled": False}, headers=other.headers),
        await lclient.delete(path, headers=other.headers),
        await lclient.post(f"{path}/rotate-secret", json={}, headers=other.headers),
        await lclient.get("/v1/webhooks/endpoints/not-an-id", headers=other.headers),
    ):
        assert response.status_code == 404, response.text
    assert (await lclient.get(path, headers=owner.headers)).json()["enabled"] is True


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"url": "http://127.0.0.1:9/", "events": ["task.exploded"]}, "events", "unknown event type 'task.exploded'"),
        ({"url": "http://127.0.0.1:9/", "events": []}, "events", "non-empty list"),
        ({"url": "http://127.0.0.1:9/", "description": "x" * 201}, "description", "at most 200"),
        ({"url": "http://127.0.0.1:9/", "colour": "red"}, "colour", "colour"),
        ({"events": ["task.failed"]}, "url", "url"),
    ],
)
async def test_bad_endpoint_bodies_get_a_clear_400(
    body: dict[str, object], param: str, fragment: str, lclient: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    account = await make_account()
    response = await lclient.post("/v1/webhooks/endpoints", json=body, headers=account.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]


async def test_the_number_of_endpoints_is_limited(lclient: httpx.AsyncClient, make_account: AccountFactory) -> None:
    account = await make_account()
    for n in range(MAX_ENDPOINTS):
        await create_endpoint(lclient, account, f"http://127.0.0.1:9/{n}")
    response = await lclient.post(
        "/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/x"}, headers=account.headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "too_many_webhook_endpoints"


async def test_endpoints_need_an_api_key(lclient: httpx.AsyncClient) -> None:
    response = await lclient.get("/v1/webhooks/endpoints")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_endpoint_secret_rotation_signs_with_both_during_the_grace_period_then_only_the_new(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
    clock: ManualClock,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    old = endpoint["secret"]
    response = await lclient.post(
        f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={"grace_period_s": 3600}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new != old and new.startswith("whsec_")
    expires = dt.datetime.fromisoformat(response.json()["previous_secret_expires_at"])
    rt = make_runtime()

    await deliver(rt, await only_delivery(services, await canceled_task(lclient, account)))
    during = receiver.requests[-1]
    assert len(during.signatures) == 2
    assert during.verify(old)["type"] == "task.canceled"  # a receiver not yet updated
    assert during.verify(new)["type"] == "task.canceled"  # a receiver already updated

    clock.current = expires + dt.timedelta(seconds=1)
    await deliver(rt, await only_delivery(services, await canceled_task(lclient, account)))
    after = receiver.requests[-1]
    assert len(after.signatures) == 1
    assert after.verify(new)["type"] == "task.canceled"
    with pytest.raises(WebhookVerificationError):
        after.verify(old)


async def test_rotation_without_grace_retires_the_old_secret_at_once(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    endpoint = await create_endpoint(lclient, account, receiver.url())
    response = await lclient.post(
        f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={"grace_period_s": 0}, headers=account.headers
    )
    await deliver(make_runtime(), await only_delivery(services, await canceled_task(lclient, account)))
    [request] = receiver.requests
    assert request.verify(response.json()["secret"])
    with pytest.raises(WebhookVerificationError):
        request.verify(endpoint["secret"])
    bad = await lclient.post(
        f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret",
        json={"grace_period_s": 8 * 86400},
        headers=account.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "grace_period_s"


async def test_the_account_signing_secret_signs_task_urls_and_rotates(
    lclient: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    receiver: Receiver,
    make_runtime: RuntimeFactory,
) -> None:
    account = await make_account()
    first = await account_secret(lclient, account)
    assert first == await account_secret(lclient, account)  # stable until rotated
    other = await make_account()
    assert await account_secret(lclient, other) != first  # one per account
    no_body = await lclient.post("/v1/webhooks/secret/rotate", headers=account.headers)
    assert no_body.status_code == 400, no_body.text  # the body is required: nothing rotated by accident
    assert no_body.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_request",
        "message": "this request needs a JSON body; see the API documentation at /docs",
        "param": None,
    }
    assert await account_secret(lclient, account) == first
    rotated = await lclient.post("/v1/webhooks/secret/rotate", json={}, headers=account.headers)  # default: a day
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    assert await account_secret(lclient, account) == second

    task_id = await canceled_task(lclient, account, webhook_url=receiver.url())
    await deliver(make_runtime(), await only_delivery(services, task_id))
    [request] = receiver.requests
    assert request.verify(first)["data"]["id"] == task_id
    assert request.verify(second)["data"]["id"] == task_id
    with pytest.raises(WebhookVerificationError):
        request.verify(await account_secret(lclient, other))


async def test_the_webhook_routes_are_documented(lclient: httpx.AsyncClient) -> None:
    paths = (await lclient.get("/docs/openapi.json")).json()["paths"]
    for path in (
        "/v1/webhooks/endpoints",
        "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
        "/v1/webhooks/secret",
        "/v1/webhooks/deliveries",
        "/v1/webhooks/deliveries/{delivery_id}/retry",
        "/v1/tasks/{task_id}/webhooks",
    ):
        assert path in paths, sorted(paths)
    # A rotation needs its body (what the documentation says), and says which secret it rotates.
    for path, names in (
        ("/v1/webhooks/secret/rotate", "the account's signing secret of tasks' webhook_url"),
        ("/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", "an endpoint's signing secret"),
    ):
        rotate = paths[path]["post"]
        assert rotate["requestBody"]["required"] is True
        assert rotate["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/RotateSecretBody"
        }
        assert names in rotate["summary"]
