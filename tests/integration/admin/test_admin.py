"""The admin API: who may use it, and what each action does to accounts, keys, tasks and the ledger."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import httpx
import pytest

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import balance, submit, task, wait_terminal
from tests.integration.operating.test_operating import metric_sample
from tests.integration.operating.test_platform import conduit

ADMIN_ROUTES = [
    ("GET", "/v1/admin/accounts", None),
    ("GET", "/v1/admin/accounts/{account}", None),
    ("POST", "/v1/admin/accounts/{account}/credits", {"amount": 5, "reason": "goodwill"}),
    ("POST", "/v1/admin/accounts/{account}/suspend", {"reason": "abuse"}),
    ("POST", "/v1/admin/accounts/{account}/unsuspend", None),
    ("POST", "/v1/admin/keys/{key}/revoke", None),
    ("GET", "/v1/admin/tasks/{task}", None),
    ("POST", "/v1/admin/tasks/{task}/fail", {"reason": "stuck"}),
    ("POST", "/v1/admin/tasks/{task}/retry", None),
    ("GET", "/v1/admin/providers", None),
    ("GET", "/v1/admin/promo-codes", None),
    ("POST", "/v1/admin/promo-codes", {"credits": 5}),
    ("POST", "/v1/admin/promo-codes/ANY/disable", None),
    ("POST", "/v1/admin/accounts/{account}/limits", {"rate_limit_rpm": 1}),
    ("POST", "/v1/admin/accounts/{account}/role", {"role": "admin"}),
    ("POST", "/v1/admin/accounts/{account}/resend-verification", None),
    ("GET", "/v1/admin/queue", None),
    ("POST", "/v1/admin/providers/replicate/circuit/open", {"reason": "x"}),
    ("POST", "/v1/admin/providers/replicate/circuit/close", {}),
    ("GET", "/v1/admin/orders", None),
    ("POST", "/v1/admin/orders/{account}/refund", {"reason": "x"}),
    ("GET", "/v1/admin/stripe-events", None),
    ("POST", "/v1/admin/stripe-events/{account}/retry", None),
    ("GET", "/v1/admin/audit", None),
    ("GET", "/v1/admin/audit/export", None),
]


async def _key_id(services: Services, account_id: uuid.UUID) -> str:
    return str(await services.db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account_id))


@pytest.mark.parametrize("role", ["user", "support"])
async def test_users_and_support_staff_cannot_use_admin_routes(
    role: str, client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    caller = await make_account(credits="5", role=role)
    victim = await make_account(credits="5")
    queued = (await submit(client, victim, "sdxl", prompt="not yours")).json()
    ids = {"account": str(victim.id), "key": await _key_id(services, victim.id), "task": queued["id"]}
    for method, path, body in ADMIN_ROUTES:
        response = await client.request(method, path.format(**ids), json=body, headers=caller.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "admin_only"
    anonymous = await client.get("/v1/admin/accounts")
    assert anonymous.status_code == 401
    # Nothing happened to the victim.
    assert await balance(client, victim) == (Decimal("4.6"), Decimal("0.4"))
    assert (await task(client, victim, queued["id"]))["status"] == "queued"
    assert (await client.get("/v1/account", headers=victim.headers)).status_code == 200


async def test_search_finds_accounts_by_email_id_and_key_prefix(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    admin = await make_account(role="admin")
    target = await make_account(credits="3")
    by_email = (await client.get("/v1/admin/accounts", params={"q": target.email[:14]}, headers=admin.headers)).json()
    assert [a["id"] for a in by_email["data"]] == [str(target.id)]
    assert by_email["data"][0]["balance"] == {"available": 3, "held": 0}
    by_id = (await client.get("/v1/admin/accounts", params={"q": str(target.id)}, headers=admin.headers)).json()
    assert [a["id"] for a in by_id["data"]] == [str(target.id)]
    prefix = target.key[:12]
    by_key = (await client.get("/v1/admin/accounts", params={"q": prefix}, headers=admin.headers)).json()
    assert str(target.id) in [a["id"] for a in by_key["data"]]
    admins = (await client.get("/v1/admin/accounts", params={"role": "admin"}, headers=admin.headers)).json()
    assert {a["role"] for a in admins["data"]} == {"admin"}
    wildcard = (await client.get("/v1/admin/accounts", params={"q": "%"}, headers=admin.headers)).json()
    assert wildcard["data"] == []  # LIKE wildcards are matched literally
    detail = (await client.get(f"/v1/admin/accounts/{target.email}", headers=admin.headers)).json()
    assert detail["id"] == str(target.id)
    assert [k["prefix"] for k in detail["api_keys"]] == [prefix]
    missing = await client.get(f"/v1/admin/accounts/{uuid.uuid4()}", headers=admin.headers)
    assert missing.status_code == 404


async def test_grant_and_deduct_write_ledger_entries_with_the_reason_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    admin = await make_account(role="admin")
    target = await make_account(credits="2")
    path = f"/v1/admin/accounts/{target.id}/credits"
    granted = await client.post(
        path, json={"amount": "10.5", "reason": "outage credit", "operation_id": "op-1"}, headers=admin.headers
    )
    assert granted.status_code == 200, granted.text
    assert granted.json()["balance"]["available"] == 12.5
    replay = await client.post(
        path, json={"amount": "10.5", "reason": "outage credit", "operation_id": "op-1"}, headers=admin.headers
    )
    assert replay.json()["replayed"] is True
    assert replay.json()["amount"] == 10.5  # what the operation did, not nothing
    assert await balance(client, target) == (Decimal("12.5"), Decimal("0"))
    for other in ("11", "-10.5"):  # the same operation id for another adjustment: refused, nothing moves
        reused = await client.post(
            path, json={"amount": other, "reason": "outage credit", "operation_id": "op-1"}, headers=admin.headers
        )
        assert reused.status_code == 409, reused.text
        assert (reused.json()["error"]["code"], reused.json()["error"]["param"]) == (
            "operation_id_reused",
            "operation_id",
        )
    assert await balance(client, target) == (Decimal("12.5"), Decimal("0"))

    # A pending hold's credits cannot be deducted; the rest can, across lots.
    await submit(client, target, "sdxl", prompt="held")  # holds 0.4, stays queued (no worker)
    too_much = await client.post(path, json={"amount": "-12.5", "reason": "fraud"}, headers=admin.headers)
    assert too_much.status_code == 402
    assert await balance(client, target) == (Decimal("12.1"), Decimal("0.4"))
    deducted = await client.post(
        path, json={"amount": "-12.1", "reason": "chargeback", "operation_id": "op-2"}, headers=admin.headers
    )
    assert deducted.status_code == 200, deducted.text
    again = await client.post(
        path, json={"amount": "-12.1", "reason": "chargeback", "operation_id": "op-2"}, headers=admin.headers
    )
    assert again.json()["replayed"] is True
    assert again.json()["amount"] == -12.1  # taken from two lots, reported whole
    assert await balance(client, target) == (Decimal("0"), Decimal("0.4"))

    ledger = (await client.get("/v1/account/ledger", headers=target.headers)).json()["data"]
    reasons = [(e["type"], e["description"]) for e in ledger if "by admin" in e["description"]]
    assert ("grant", f"outage credit (by admin {admin.id})") in reasons
    assert all(description == f"chargeback (by admin {admin.id})" for kind, description in reasons if kind == "revoke")
    assert sum(e["amount"] for e in ledger if e["type"] == "revoke") == pytest.approx(12.1)

    for bad in ({"amount": 0, "reason": "x"}, {"amount": 1, "reason": "  "}, {"amount": "0.0000001", "reason": "x"}):
        refused = await client.post(path, json=bad, headers=admin.headers)
        assert refused.status_code == 400, bad


async def test_suspend_revoke_and_unsuspend(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    admin = await make_account(role="admin")
    target = await make_account(credits="2")
    path = f"/v1/admin/accounts/{target.id}/suspend"
    no_reason = await client.post(path, json={}, headers=admin.headers)
    assert no_reason.status_code == 400 and no_reason.json()["error"]["param"] == "reason"
    suspended = await client.post(path, json={"reason": "unpaid chargeback"}, headers=admin.headers)
    assert suspended.json()["status"] == "suspended"
    refused = await client.get("/v1/account", headers=target.headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "account_suspended"
    assert "unpaid chargeback" in refused.json()["error"]["message"]
    await client.post(f"/v1/admin/accounts/{target.id}/unsuspend", headers=admin.headers)
    assert (await client.get("/v1/account", headers=target.headers)).status_code == 200

    key_id = await _key_id(services, target.id)
    revoked = await client.post(f"/v1/admin/keys/{key_id}/revoke", headers=admin.headers)
    assert revoked.status_code == 200
    assert revoked.json()["account_id"] == str(target.id)
    assert (await client.get("/v1/account", headers=target.headers)).status_code == 401
    assert (await client.post(f"/v1/admin/keys/{uuid.uuid4()}/revoke", headers=admin.headers)).status_code == 404


async def test_fail_and_retry_a_stuck_task(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: object
) -> None:
    await services.redis.flushdb()
    admin = await make_account(role="admin")
    target = await make_account(credits="5")
    stuck = (await submit(client, target, "sdxl", prompt="stuck")).json()
    other = (await submit(client, target, "sdxl", prompt="lost job", width=256, height=256)).json()
    # Both look stuck: running under a lease nobody renews, and their jobs are gone (Redis restarted empty).
    await services.db.execute(
        "UPDATE tasks SET status = 'running', lease_expires_at = now() + interval '1 hour' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(stuck["id"]), uuid.UUID(other["id"])],
    )
    await services.redis.flushdb()

    seen = (await client.get(f"/v1/admin/tasks/{stuck['id']}", headers=admin.headers)).json()
    assert seen["account_id"] == str(target.id) and seen["status"] == "running"

    failed = await client.post(f"/v1/admin/tasks/{stuck['id']}/fail", json={"reason": "hung"}, headers=admin.headers)
    assert failed.status_code == 200, failed.text
    assert failed.json()["error"] == {"code": "failed_by_operator", "message": "failed by an operator: hung"}
    twice = await client.post(f"/v1/admin/tasks/{stuck['id']}/fail", json={}, headers=admin.headers)
    assert twice.status_code == 409

    retried = await client.post(f"/v1/admin/tasks/{other['id']}/retry", headers=admin.headers)
    assert retried.status_code == 200 and retried.json()["requeued"] is True
    async with InProcessWorker(settings):  # type: ignore[arg-type]
        done = await wait_terminal(client, target, other["id"])
    assert done["status"] == "succeeded"
    assert (await client.post(f"/v1/admin/tasks/{other['id']}/retry", headers=admin.headers)).status_code == 409
    # 5 - 0.4 (the retried task's charge); the failed task's hold was voided.
    assert await balance(client, target) == (Decimal("4.6"), Decimal("0"))
    assert (await client.get(f"/v1/admin/tasks/{uuid.uuid4()}", headers=admin.headers)).status_code == 404


async def test_promo_codes_and_provider_health(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services
) -> None:
    admin = await make_account(role="admin")
    user = await make_account(credits="0")
    code = f"ADMIN-{uuid.uuid4().hex[:8]}".upper()
    created = await client.post(
        "/v1/admin/promo-codes", json={"credits": "7", "code": code, "max_redemptions": 1}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["credits"] == 7  # a number, like every other amount
    listed = {p["code"]: p for p in (await client.get("/v1/admin/promo-codes", headers=admin.headers)).json()["data"]}
    assert listed[code]["credits"] == 7
    disabled = await client.post(f"/v1/admin/promo-codes/{code}/disable", headers=admin.headers)
    assert disabled.json()["credits"] == 7
    refused = await client.post("/v1/promo-codes/redeem", json={"code": code}, headers=user.headers)
    assert refused.status_code in (400, 404, 409)
    assert await balance(client, user) == (Decimal("0"), Decimal("0"))

    await services.providers.breaker.record_failure("replicate")  # type: ignore[union-attr]
    for _ in range(10):
        await services.providers.breaker.record_failure("replicate")  # type: ignore[union-attr]
    try:
        health = (await client.get("/v1/admin/providers", headers=admin.headers)).json()["data"]
        by_name = {p["name"]: p for p in health}
        assert by_name["local"]["configured"] is True and by_name["local"]["circuit"]["state"] == "closed"
        assert by_name["replicate"]["circuit"]["state"] == "open"
    finally:
        await services.providers.breaker.reset("replicate")  # type: ignore[union-attr]


async def test_cli_does_the_same(
    env: dict[str, str], make_account: AccountFactory, services: Services, client: httpx.AsyncClient
) -> None:
    target = await make_account(credits="1")
    granted_before = metric_sample(
        (await client.get("/metrics")).text, "conduit_credits_granted_total", source="manual"
    )
    granted = await asyncio.to_thread(
        conduit, ["admin", "credits", target.email, "4", "--reason", "support ticket 42"], env
    )
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout)["balance"]["available"] == 5  # numbers, as the API shows them
    granted_after = metric_sample((await client.get("/metrics")).text, "conduit_credits_granted_total", source="manual")
    assert granted_after >= granted_before + 4  # the CLI process's counts reach the shared totals too
    found = await asyncio.to_thread(conduit, ["admin", "accounts", "search", target.email], env)
    assert [a["id"] for a in json.loads(found.stdout)["data"]] == [str(target.id)]
    refused = await asyncio.to_thread(conduit, ["admin", "credits", target.email, "-9", "--reason", "x"], env)
    assert refused.returncode == 1
    assert json.loads(refused.stderr)["error"]["code"] == "insufficient_credits"
    providers = await asyncio.to_thread(conduit, ["admin", "providers"], env)
    assert "local" in [p["name"] for p in json.loads(providers.stdout)]
