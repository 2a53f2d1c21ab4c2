"""Every bad input gets a clear error in the one shape, and holds nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from shared.accounts.keys import revoke_key, set_account_status
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import wait_for
from tests.integration.helpers import balance

IMAGE = {"prompt": "x", "width": 256, "height": 256}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "no-such-model", "input": IMAGE}, 404, "model_not_found", "model"),
        ({"model": "flux-schnell", "input": {**IMAGE, "width": 100}}, 400, "invalid_input", "input.width"),
        ({"model": "flux-schnell", "input": {**IMAGE, "width": 300}}, 400, "invalid_input", "input.width"),
        ({"model": "flux-schnell", "input": {**IMAGE, "num_images": "2"}}, 400, "invalid_input", "input.num_images"),
        ({"model": "flux-schnell", "input": {**IMAGE, "colour": "red"}}, 400, "invalid_input", "input.colour"),
        ({"model": "flux-schnell", "input": {"width": 512}}, 400, "invalid_input", "input.prompt"),
        ({"model": "flux-schnell", "input": {**IMAGE, "prompt": ""}}, 400, "invalid_input", "input.prompt"),
        (
            {"model": "flux-schnell", "input": {**IMAGE, "guidance_scale": True}},
            400,
            "invalid_input",
            "input.guidance_scale",
        ),
        ({"model": "llama-3.1-8b-instruct", "input": {"messages": []}}, 400, "invalid_input", "input.messages"),
        (
            {"model": "llama-3.1-8b-instruct", "input": {"messages": [{"role": "robot", "content": "hi"}]}},
            400,
            "invalid_input",
            "input.messages[0].role",
        ),
        ({"model": "flux-schnell", "input": "a string"}, 400, "invalid_request", "input"),
        ({"model": 5, "input": IMAGE}, 400, "invalid_request", "model"),
        ({"input": IMAGE}, 400, "invalid_request", "model"),
        ({"model": "flux-schnell", "input": IMAGE, "surprise": 1}, 400, "invalid_request", "surprise"),
        ({"model": "flux-schnell", "input": IMAGE, "webhook_url": "ftp://x"}, 400, "invalid_input", "webhook_url"),
        ({"model": "flux-schnell", "input": IMAGE, "metadata": {"k": 1}}, 400, "invalid_input", "metadata.k"),
        ({"model": "test-unroutable", "input": IMAGE}, 503, "model_unavailable", "model"),
        ({"model": "flux-dev", "input": {**IMAGE, "num_images": 4}}, 402, "insufficient_credits", None),
    ],
)
async def test_bad_submits_are_refused_clearly_and_hold_nothing(
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    services: Services,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    account = await make_account(credits="5")
    response = await client.post("/v1/tasks", json=body, headers=account.headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"]
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))
    assert await services.db.fetchval("SELECT count(*) FROM tasks WHERE account_id = $1", account.id) == 0


async def test_malformed_json_and_oversized_bodies(client: httpx.AsyncClient, make_account: AccountFactory) -> None:
    account = await make_account(credits="5")
    headers = {**account.headers, "Content-Type": "application/json"}
    broken = await client.post("/v1/tasks", content=b'{"model": "sdxl", "input": {', headers=headers)
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    huge = b'{"model": "sdxl", "input": {"prompt": "' + b"a" * 2_000_000 + b'"}}'
    too_big = await client.post("/v1/tasks", content=huge, headers=headers)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"
    assert await balance(client, account) == (Decimal("5"), Decimal("0"))


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer cdt_" + "x" * 40}, "invalid_api_key"),
        ({"Authorization": "Bearer nonsense"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
    ],
)
async def test_missing_or_unknown_keys_get_401(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> None:
    for method, path in (("GET", "/v1/account"), ("GET", "/v1/tasks"), ("POST", "/v1/tasks")):
        response = await client.request(method, path, headers=headers, json={"model": "sdxl", "input": IMAGE})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.json()["error"]["code"] == code


async def test_revoked_key_and_suspended_account(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    account = await make_account(credits="5")
    assert (await client.get("/v1/account", headers=account.headers)).status_code == 200
    key_id = await services.db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account.id)
    assert await revoke_key(services.db, services.redis, key_id)
    # The API caches keys; the revocation reaches it over Redis pub/sub within moments, not a TTL later.
    revoked = await wait_for(lambda: _status(client, account.headers, 401), timeout=1, interval=0.01)
    assert revoked.json()["error"]["code"] == "revoked_api_key"

    other = await make_account(credits="5")
    assert (await client.get("/v1/account", headers=other.headers)).status_code == 200  # now cached
    assert await set_account_status(services.db, services.redis, other.id, "suspended")
    suspended = await wait_for(lambda: _status(client, other.headers, 403), timeout=1, interval=0.01)
    assert suspended.json()["error"]["code"] == "account_suspended"
    refused = await client.post("/v1/tasks", json={"model": "sdxl", "input": IMAGE}, headers=other.headers)
    assert refused.status_code == 403
    assert await set_account_status(services.db, services.redis, other.id, "active")
    await wait_for(lambda: _status(client, other.headers, 200), timeout=1, interval=0.01)


async def _status(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> httpx.Response | None:
    response = await client.get("/v1/account", headers=headers)
    return response if response.status_code == status else None


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "route_not_found"
    wrong = await client.delete("/v1/models")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    model = await client.get("/v1/models/no-such-model")
    assert model.status_code == 404
    assert model.json()["error"]["code"] == "model_not_found"


async def test_file_links_cannot_be_forged(client: httpx.AsyncClient) -> None:
    key = "outputs/00000000-0000-0000-0000-000000000000/0.png"
    for query in ("", "?expires=9999999999&signature=forged", "?expires=1&signature=x"):
        response = await client.get(f"/v1/files/{key}{query}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "file_not_found"
    traversal = await client.get("/v1/files/outputs/../../secret_key?expires=9999999999&signature=x")
    assert traversal.status_code == 404
