"""Alerts: a low balance and a key's budget thresholds, once per crossing (mail to owners, admins and billing
members; a webhook event verified with ``standardwebhooks``), again only after the balance or period recovers."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from shared.accounts.keys import Principal
from shared.alerts.sweep import sweep_alerts
from shared.infra.ids import uuid7
from shared.infra.mail import Mailer
from shared.infra.urlguard import UrlGuard
from shared.ledger import NewHold, budgets, place_hold, void_hold
from shared.ledger.budgets import PeriodBudget
from shared.ledger.request_holds import place_request_hold, request_settlement, settle_request
from shared.services import Services
from shared.settings import Settings
from shared.webhooks.delivery import deliver
from shared.webhooks.endpoints import create_endpoint
from tests.integration.accounts.conftest import PersonFactory
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.teams.conftest import TeamFactory, invite_and_accept
from tests.integration.webhooks.conftest import RuntimeFactory
from tests.integration.webhooks.receiver import Receiver

EVENTS = ["account.balance_low", "key.budget_threshold"]


async def account_events(services: Services, account_id: uuid.UUID, event_type: str) -> list[uuid.UUID]:
    rows = await services.db.fetch(
        "SELECT id FROM webhook_deliveries WHERE account_id = $1 AND event_type = $2 ORDER BY id",
        account_id,
        event_type,
    )
    return [r["id"] for r in rows]


async def test_a_low_balance_alerts_once_per_crossing(
    team: TeamFactory, person: PersonFactory, mailbox: Mailbox, services: Services, accounts_settings: Settings,
    receiver: Receiver, make_runtime: RuntimeFactory,
) -> None:  # fmt: skip
    t = await team("billing")
    developer = await person("developer")
    await invite_and_accept(t.owner, developer, mailbox, "developer")
    account_id = t.owner.account_id
    endpoint = await create_endpoint(services.db, UrlGuard(allow_loopback=True), account_id, url=receiver.url(),
                                     events=EVENTS)  # fmt: skip
    mailer = Mailer(accounts_settings.mail, services.background)
    refused = await developer.browser.request("PUT", "/v1/billing/alerts", json={"low_balance_threshold": 20},
                                              headers={"X-Conduit-Account": str(account_id)})  # fmt: skip
    assert refused.status_code == 403
    set_ = await t.owner.browser.request("PUT", "/v1/billing/alerts", json={"low_balance_threshold": 20})
    assert set_.status_code == 200, set_.text
    assert set_.json() == {"low_balance_threshold": 20, "budget_thresholds": [80, 100], "low_balance_alerted": False,
                           "object": "billing.alerts"}  # fmt: skip

    async with services.db.transaction() as conn:
        first = await place_hold(conn, NewHold(account_id, 6_000_000, description="alert test"))
    sent = await sweep_alerts(services.db, mailer)
    assert sent.balance_low == 1
    for address in (t.owner.email, t.member.email):  # the owner and the billing member
        mail = await mailbox.wait(address, "balance is low")
        assert "19 credits available" in mail.text
    assert (await sweep_alerts(services.db, mailer)).balance_low == 0  # once per crossing, not per sweep
    [delivery] = await account_events(services, account_id, "account.balance_low")
    await deliver(make_runtime(), delivery)
    [received] = receiver.requests
    payload = received.verify(endpoint.secret)
    assert payload["type"] == "account.balance_low"
    assert payload["data"] == {"object": "balance_alert", "account_id": str(account_id), "available": 19,
                               "threshold": 20}  # fmt: skip
    assert not [m for m in mailbox.to(developer.email) if "balance is low" in m.subject]

    # Back above the threshold: re-armed; below again: a second alert.
    async with services.db.transaction() as conn:
        await void_hold(conn, hold_id=first)
    assert (await sweep_alerts(services.db, mailer)).rearmed == 1
    async with services.db.transaction() as conn:
        second = await place_hold(conn, NewHold(account_id, 10_000_000, description="alert test"))
    assert (await sweep_alerts(services.db, mailer)).balance_low == 1
    await mailbox.wait(t.owner.email, "balance is low", count=2)
    assert len(await account_events(services, account_id, "account.balance_low")) == 2
    async with services.db.transaction() as conn:
        await void_hold(conn, hold_id=second)


async def test_budget_thresholds_alert_once_per_period(
    person: PersonFactory, mailbox: Mailbox, services: Services, accounts_settings: Settings,
    receiver: Receiver, make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    owner = await person("budget-alerts")
    endpoint = await create_endpoint(services.db, UrlGuard(allow_loopback=True), owner.account_id,
                                     url=receiver.url(), events=EVENTS)  # fmt: skip
    mailer = Mailer(accounts_settings.mail, services.background)
    created = await owner.browser.post("/v1/keys", json={"name": "ci", "budget": {"amount": 1, "period": "day"}})
    key_id = uuid.UUID(created.json()["id"])
    anchor = await services.db.fetchval("SELECT budget_anchor FROM api_keys WHERE id = $1", key_id)
    principal = Principal(owner.account_id, key_id, "user", budget=PeriodBudget(1_000_000, "day", False, anchor))
    today = dt.datetime.now(dt.UTC)
    monkeypatch.setattr(budgets, "clock", lambda: today)

    async def spend(amount: int) -> None:
        hold = await place_request_hold(services.db, principal, amount, "budget alert test")
        await settle_request(services.db, request_settlement(
            hold_id=hold, request_id=uuid7(), principal=principal, charge=amount, status="succeeded",
            source="chat.completion", model="alert-test", kind="text", provider=None, units={}, latency_ms=1,
        ))  # fmt: skip

    await spend(500_000)
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 0  # 50%: below every threshold
    await spend(300_000)
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 1  # 80%
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 0
    mail = await mailbox.wait(owner.email, "reached 80% of its budget")
    assert "spent 0.8 of its daily budget of 1 credits" in mail.text
    await spend(200_000)
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 1  # 100%
    await mailbox.wait(owner.email, "reached 100% of its budget")
    deliveries = await account_events(services, owner.account_id, "key.budget_threshold")
    assert len(deliveries) == 2
    runtime = make_runtime()
    for delivery in deliveries:
        await deliver(runtime, delivery)
    payloads = [r.verify(endpoint.secret) for r in receiver.requests]
    assert [(p["type"], p["data"]["threshold_percent"], p["data"]["spent"]) for p in payloads] == [
        ("key.budget_threshold", 80, 0.8),
        ("key.budget_threshold", 100, 1),
    ]
    # The next day the period starts afresh: nothing until its own spend crosses a threshold again.
    tomorrow = today + dt.timedelta(days=1)
    monkeypatch.setattr(budgets, "clock", lambda: tomorrow)
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 0
    await spend(850_000)
    assert (await sweep_alerts(services.db, mailer)).budget_thresholds == 1
    await mailbox.wait(owner.email, "reached 80% of its budget", count=2)
