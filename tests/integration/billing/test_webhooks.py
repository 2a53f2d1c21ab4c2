"""Stripe's webhook: signatures, duplicate and out-of-order deliveries, lost jobs."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

from shared.billing import events
from shared.billing.stripe_gateway import StripeUnavailable
from shared.billing.sweeps import requeue_events, settle_stale_checkouts
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.billing.conftest import C, Shop
from tests.integration.helpers import balance
from tests.simulators.stripe import sign


async def grants(shop: Shop, order_id: str) -> list[int]:
    rows = await shop.db.fetch(
        "SELECT amount FROM ledger_entries WHERE kind = 'grant' AND idempotency_key = $1", f"purchase:{order_id}"
    )
    return [row["amount"] for row in rows]


async def stored(shop: Shop, event_id: str) -> int:
    count: int = await shop.db.fetchval("SELECT count(*) FROM stripe_events WHERE event_id = $1", event_id)
    return count


async def test_the_same_event_delivered_ten_times_grants_once(
    shop: Shop, make_account: AccountFactory, billing_worker: InProcessWorker
) -> None:
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    event = shop.sim.pay(session_id)
    responses = await asyncio.gather(*(shop.deliver(event) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert await shop.wait_event(event) == "processed"
    for _ in range(3):  # and late re-deliveries after processing
        assert (await shop.deliver(event)).status_code == 200
    assert await stored(shop, event["id"]) == 1
    assert await grants(shop, order_id) == [500 * C]
    assert await balance(shop.http, account) == (Decimal(500), 0)


async def test_two_different_events_for_one_session_grant_once(
    shop: Shop, make_account: AccountFactory, billing_worker: InProcessWorker
) -> None:
    """Stripe may send checkout.session.completed and, for the same session, another event that also
    says it is paid (a new event id each): the order is paid once."""
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    completed = shop.sim.pay(session_id)
    again = shop.sim.event("checkout.session.completed", shop.sim.sessions[session_id])
    succeeded = shop.sim.event("checkout.session.async_payment_succeeded", shop.sim.sessions[session_id])
    assert len({completed["id"], again["id"], succeeded["id"]}) == 3
    await asyncio.gather(shop.deliver(completed), shop.deliver(again), shop.deliver(succeeded))
    for event in (completed, again, succeeded):
        assert await shop.wait_event(event) == "processed"
    assert await grants(shop, order_id) == [500 * C]
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"]) == ("paid", 500)
    assert await balance(shop.http, account) == (Decimal(500), 0)


async def test_a_late_expiry_does_not_undo_a_payment(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    paid = shop.sim.pay(session_id)
    expired = shop.sim.event("checkout.session.expired", {**shop.sim.sessions[session_id], "status": "expired"})
    failed = shop.sim.event("checkout.session.async_payment_failed", shop.sim.sessions[session_id])
    for event in (paid, expired, failed):
        await shop.deliver(event)
        assert await shop.process(event) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"], order["failure_reason"]) == ("paid", 500, None)
    assert await balance(shop.http, account) == (Decimal(500), 0)


async def test_a_payment_after_a_closed_checkout_still_buys_the_credits(
    shop: Shop, make_account: AccountFactory
) -> None:
    """Events out of order the other way round: 'expired' processed first, then the (earlier) payment.
    Money was taken, so the credits are granted and the order is paid."""
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    expired = shop.sim.event("checkout.session.expired", {**shop.sim.sessions[session_id], "status": "expired"})
    await shop.deliver(expired)
    assert await shop.process(expired) == "processed"
    assert (await shop.order(account, order_id))["status"] == "expired"
    paid = shop.sim.pay(session_id)
    await shop.deliver(paid)
    assert await shop.process(paid) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"]) == ("paid", 500)


async def test_delayed_payment_methods(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    # Paid later: nothing on completion, the credits when the payment succeeds, whatever the arrival order.
    order_id, session_id = await shop.checkout(account)
    completed = shop.sim.pay(session_id, async_payment=True)
    succeeded = shop.sim.settle_async_payment(session_id, succeeded=True)
    await shop.deliver(succeeded)
    assert await shop.process(succeeded) == "processed"
    assert (await shop.order(account, order_id))["status"] == "paid"
    await shop.deliver(completed)  # the older event, late: 'unpaid' does not undo anything
    assert await shop.process(completed) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"]) == ("paid", 500)
    # The payment fails: the order is closed, no credits.
    failed_order, failed_session = await shop.checkout(account)
    completed = shop.sim.pay(failed_session, async_payment=True)
    await shop.deliver(completed)
    assert await shop.process(completed) == "processed"
    assert (await shop.order(account, failed_order))["status"] == "pending"
    failed = shop.sim.settle_async_payment(failed_session, succeeded=False)
    await shop.deliver(failed)
    assert await shop.process(failed) == "processed"
    order = await shop.order(account, failed_order)
    assert (order["status"], order["credits_granted"], order["failure_reason"]) == ("failed", 0, "the payment failed")
    assert await balance(shop.http, account) == (Decimal(500), 0)


async def test_an_expired_checkout_closes_the_order(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    event = shop.sim.expire(session_id)
    await shop.deliver(event)
    assert await shop.process(event) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["checkout_url"], order["refundable"]) == (
        "expired",
        None,
        {"credits": 0, "amount": 0},
    )
    refund = await shop.http.post(f"/v1/billing/orders/{order_id}/refund", headers=account.headers)
    assert refund.status_code == 409
    assert refund.json()["error"]["code"] == "order_not_refundable"


async def test_bad_signatures_are_refused_and_nothing_is_stored(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    event = shop.sim.pay(session_id)
    body = json.dumps(event).encode()
    tampered = json.dumps({**event, "type": "checkout.session.async_payment_succeeded"}).encode()
    attempts = {
        "missing": {},
        "garbage": {"Stripe-Signature": "not a signature"},
        "wrong secret": {"Stripe-Signature": sign(body, "whsec_someone_else")},
        "too old": {"Stripe-Signature": sign(body, shop.sim.webhook_secret, timestamp=int(time.time()) - 3600)},
        "other body": {"Stripe-Signature": sign(tampered, shop.sim.webhook_secret)},
    }
    for name, headers in attempts.items():
        response = await shop.http.post(shop.webhook_url, content=body, headers=headers)
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_signature"), name
    assert await stored(shop, event["id"]) == 0
    # A correctly signed body that is not an event is refused too, and a good delivery still works.
    junk = b'{"hello": "world"}'
    response = await shop.http.post(shop.webhook_url, content=junk,
                                    headers={"Stripe-Signature": sign(junk, shop.sim.webhook_secret)})  # fmt: skip
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_event")
    assert (await shop.deliver(event)).status_code == 200
    assert await shop.process(event) == "processed"
    assert await grants(shop, order_id) == [500 * C]


async def test_events_that_are_not_ours_are_ignored(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    _, session_id = await shop.checkout(account)
    foreign = shop.sim.event("checkout.session.completed", {**shop.sim.sessions[session_id],
                             "client_reference_id": None, "metadata": {}, "payment_status": "paid"})  # fmt: skip
    other_type = shop.sim.event("customer.created", {"id": "cus_123", "object": "customer"})
    for event in (foreign, other_type):
        assert (await shop.deliver(event)).status_code == 200
        assert await shop.process(event) == "ignored"
    assert await balance(shop.http, account) == (0, 0)


@pytest.mark.parametrize("recovery", ["sweep", "redelivery"])
async def test_an_event_whose_job_was_lost_is_processed_later(
    shop: Shop, make_account: AccountFactory, services: Services, billing_settings: Settings, recovery: str
) -> None:
    """The event is stored but its job is lost (Redis restarted empty): the billing sweep enqueues it again,
    and so does Stripe's next delivery of the same event."""
    await services.redis.flushdb()
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    event = shop.sim.pay(session_id)
    assert (await shop.deliver(event)).status_code == 200  # no worker is running
    await services.redis.flushdb()  # ...and its job is lost
    restarted = InProcessWorker(billing_settings)
    await restarted.start()
    try:
        if recovery == "sweep":
            assert await requeue_events(shop.db, services.queue, older_than_s=0) >= 1
        else:
            assert (await shop.deliver(event)).status_code == 200
        assert await shop.wait_event(event) == "processed"
    finally:
        await restarted.stop()
    assert await grants(shop, order_id) == [500 * C]


async def test_checkouts_whose_events_never_came_are_settled_from_stripe(
    shop: Shop, make_account: AccountFactory
) -> None:
    """No webhook reached Conduit (endpoint misconfigured, say): once the session must have ended, the sweep
    asks Stripe. A paid session grants the credits; a session still open is expired and the order closed."""
    account = await make_account(credits="0")
    paid_order, paid_session = await shop.checkout(account)
    shop.sim.pay(paid_session)  # the event is never delivered
    open_order, open_session = await shop.checkout(account)
    assert await settle_stale_checkouts(shop.db, shop.gateway) == 0  # too recent for the default age
    assert (await shop.order(account, paid_order))["status"] == "pending"
    await settle_stale_checkouts(shop.db, shop.gateway, older_than_s=0)
    paid = await shop.order(account, paid_order)
    assert (paid["status"], paid["credits_granted"]) == ("paid", 500)
    closed = await shop.order(account, open_order)
    assert (closed["status"], closed["failure_reason"]) == ("expired", "the checkout expired unpaid")
    assert shop.sim.sessions[open_session]["status"] == "expired"
    assert await balance(shop.http, account) == (Decimal(500), 0)


async def test_an_event_that_needs_stripe_waits_for_it(shop: Shop, make_account: AccountFactory) -> None:
    """A refund of a payment not matched yet needs a look-up at Stripe; while Stripe is down the event stays
    pending with the error recorded, and is applied once Stripe answers again."""
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    shop.sim.pay(session_id)
    refunded = shop.sim.dashboard_refund(shop.sim.sessions[session_id]["payment_intent"])
    await shop.deliver(refunded)
    for _ in range(events.MAX_ATTEMPTS + 1):  # an outage longer than the retry limit for bugs
        shop.sim.fail_next("GET", "/v1/checkout/sessions", status=503, should_retry=False)
        with pytest.raises(StripeUnavailable):
            await shop.process(refunded)
    row = await shop.db.fetchrow("SELECT status, attempts, last_error FROM stripe_events WHERE event_id = $1",
                                 refunded["id"])  # fmt: skip
    assert row is not None
    assert (row["status"], row["attempts"]) == ("pending", events.MAX_ATTEMPTS + 1)
    assert "StripeUnavailable" in row["last_error"]
    assert await shop.process(refunded) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"], order["credits_revoked"]) == ("refunded", 500, 500)
