"""Operators' tools behind the console: a provider's circuit opened and closed by hand, each route a task tried
on its timeline, the queue, retrying a failed Stripe event, limits, roles and verification mails."""

from __future__ import annotations

import json
import uuid

import httpx

from shared.infra.ids import uuid7
from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.helpers import submit, wait_terminal
from tests.integration.staff.conftest import SessionFactory


async def test_a_circuit_opened_by_hand_stops_a_provider_until_closed(
    client: httpx.AsyncClient, signed_in: SessionFactory, services: Services, make_account: AccountFactory,
    worker: InProcessWorker,
) -> None:  # fmt: skip
    _, admin = await signed_in("admin")
    customer = await make_account(credits="5")
    breaker = services.providers.breaker
    assert breaker is not None
    no_reason = await admin.post("/v1/admin/providers/local/circuit/open", json={})
    assert no_reason.status_code == 400 and no_reason.json()["error"]["param"] == "reason"
    assert (await admin.post("/v1/admin/providers/nowhere/circuit/open", json={"reason": "x"})).status_code == 404
    opened = await admin.post("/v1/admin/providers/local/circuit/open", json={"reason": "GPU host rebooting"})
    assert opened.json()["circuit"]["state"] == "open" and opened.json()["circuit"]["held_open"] is True
    await breaker.record_failure("local")  # failures and time change nothing while it is held open
    assert (await breaker.state("local"))["held_open"] is True
    try:
        blocked = (await submit(client, customer, "flux-schnell", prompt="while it is down")).json()
        done = await wait_terminal(client, customer, blocked["id"])
        assert done["status"] == "failed" and done["error"]["code"] == "upstream_unavailable"
    finally:
        closed = await admin.post("/v1/admin/providers/local/circuit/close", json={})
    assert closed.json()["circuit"]["state"] == "closed"
    served = (await submit(client, customer, "flux-schnell", prompt="after")).json()
    assert (await wait_terminal(client, customer, served["id"]))["status"] == "succeeded"

    timeline = (await admin.get(f"/console/tasks/{blocked['id']}")).text
    assert "local: skipped" in timeline and "circuit open" in timeline
    timeline = (await admin.get(f"/console/tasks/{served['id']}")).text
    assert "local: succeeded" in timeline and "settlement: charge" in timeline
    health = (await admin.get("/v1/admin/providers")).json()["data"]
    local = next(p for p in health if p["name"] == "local")
    assert local["attempts_last_hour"]["count"] >= 1 and local["attempts_last_hour"]["latency_p50_ms"] is not None
    actions = await services.db.fetch(
        "SELECT action, reason FROM staff_audit_log WHERE target_type = 'provider' AND target_id = 'local' ORDER BY id"
    )
    assert [(a["action"], a["reason"]) for a in actions][-2:] == [
        ("provider.circuit_open", "GPU host rebooting"),
        ("provider.circuit_close", ""),
    ]


async def test_queue_limits_roles_mails_and_stripe_events(
    client: httpx.AsyncClient, signed_in: SessionFactory, services: Services, make_account: AccountFactory
) -> None:
    await services.redis.flushdb()
    _, admin = await signed_in("admin")
    customer = await make_account(credits="5")
    await submit(client, customer, "sdxl", prompt="waiting")  # no worker: it stays queued
    queue = (await admin.get("/v1/admin/queue")).json()
    assert queue["queued"] >= 1 and queue["oldest_queued_task"] is not None

    limits = await admin.post(f"/v1/admin/accounts/{customer.id}/limits", json={"rate_limit_rpm": 2, "reason": "abuse"})
    assert limits.json()["rate_limit_rpm"] == 2
    assert (await admin.post(f"/v1/admin/accounts/{customer.id}/limits", json={"rate_limit_rpm": 0})).status_code == 400
    reset = await admin.post(f"/v1/admin/accounts/{customer.id}/limits", json={"rate_limit_rpm": None})
    assert reset.json()["rate_limit_rpm"] is None
    role = await admin.post(f"/v1/admin/accounts/{customer.id}/role", json={"role": "support"})
    assert role.json()["role"] == "support"
    assert (await admin.post(f"/v1/admin/accounts/{customer.id}/role", json={"role": "root"})).status_code == 400
    verified = await admin.post(f"/v1/admin/accounts/{customer.id}/resend-verification")
    assert verified.status_code == 409 and verified.json()["error"]["code"] == "email_already_verified"

    row_id = uuid7()
    await services.db.execute(
        """
        INSERT INTO stripe_events (id, event_id, type, payload, status, attempts, last_error)
        VALUES ($1, $2, 'customer.created', $3::jsonb, 'failed', 8, 'KeyError: boom')
        """,
        row_id, f"evt_{uuid.uuid4().hex}", json.dumps({"data": {"object": {}}}),
    )  # fmt: skip
    retried = await admin.post(f"/v1/admin/stripe-events/{row_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "ignored" and retried.json()["last_error"] is None
    again = await admin.post(f"/v1/admin/stripe-events/{row_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "stripe_event_not_failed"
    assert (await admin.post(f"/v1/admin/orders/{uuid.uuid4()}/refund", json={"reason": "x"})).status_code == 404
    billing = (await admin.get("/console/billing", params={"events": "ignored"})).text
    assert "customer.created" in billing

    actions = await services.db.fetch(
        "SELECT action FROM staff_audit_log WHERE target_id = $1 ORDER BY id", str(customer.id)
    )
    assert [a["action"] for a in actions] == ["account.limits", "account.limits", "staff.role"]
