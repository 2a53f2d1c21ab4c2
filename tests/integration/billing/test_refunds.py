"""Refunds of unused credits through the API, and refunds made in the Stripe dashboard."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.billing.sweeps import retry_refunds
from tests.conftest import AccountFactory
from tests.integration.billing.conftest import C, Shop, hold, settle, spend
from tests.integration.helpers import balance

if TYPE_CHECKING:
    from tests.conftest import TestAccount


async def refund(shop: Shop, account: TestAccount, order_id: str) -> tuple[int, dict[str, Any]]:
    response = await shop.http.post(f"/v1/billing/orders/{order_id}/refund", headers=account.headers)
    return response.status_code, response.json(parse_float=Decimal)


async def entries(shop: Shop, account: TestAccount) -> list[tuple[str, int]]:
    rows = await shop.db.fetch(
        "SELECT kind, amount FROM ledger_entries WHERE account_id = $1 AND kind NOT IN ('hold', 'release') ORDER BY id",
        account.id,
    )
    return [(row["kind"], row["amount"]) for row in rows]


async def stripe_refunds(shop: Shop, order_id: str) -> list[int]:
    payment_intent = await shop.payment_intent(order_id)
    return [r["amount"] for r in shop.sim.refunds.values() if r["payment_intent"] == payment_intent]


async def test_an_unused_pack_is_refunded_in_full(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    status, body = await refund(shop, account, order_id)
    assert status == 200, body
    assert (body["object"], body["status"], body["amount"], body["credits"]) == (
        "billing.refund",
        "succeeded",
        500,
        500,
    )
    order = body["order"]
    assert (order["status"], order["amount_refunded"], order["credits_refunded"]) == ("refunded", 500, 500)
    assert order["refundable"] == {"credits": 0, "amount": 0}
    assert await balance(shop.http, account) == (0, 0)
    assert await entries(shop, account) == [("grant", 500 * C), ("refund", 500 * C)]
    assert await stripe_refunds(shop, order_id) == [500]
    sent = shop.sim.calls("POST", "/v1/refunds")[-1]
    assert sent["payment_intent"] == await shop.payment_intent(order_id)
    assert (sent["metadata"]["order_id"], sent["reason"]) == (order_id, "requested_by_customer")
    # Stripe tells us about the refund we made (charge.refunded): that is not a second refund.
    echo = shop.sim.events[-1]
    assert echo["type"] == "charge.refunded"
    await shop.deliver(echo)
    assert await shop.process(echo) == "processed"
    assert await entries(shop, account) == [("grant", 500 * C), ("refund", 500 * C)]
    again_status, again = await refund(shop, account, order_id)
    assert (again_status, again["error"]["code"]) == (409, "order_not_refundable")


async def test_partial_consumption_then_refund(shop: Shop, make_account: AccountFactory) -> None:
    """500 credits for 5.00 USD, 123.456789 credits spent: 376.543211 unused are worth 376.54 cents,
    refunded as 376 cents (rounded down); the spent credits stay spent."""
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    await spend(shop.db, account.id, 123_456_789)
    order = await shop.order(account, order_id)
    assert order["refundable"] == {"credits": 376.543211, "amount": 376}
    status, body = await refund(shop, account, order_id)
    assert status == 200, body
    assert (body["amount"], body["credits"]) == (376, Decimal("376.543211"))
    assert (body["order"]["status"], body["order"]["amount_refunded"]) == ("partially_refunded", 376)
    assert await stripe_refunds(shop, order_id) == [376]
    assert await balance(shop.http, account) == (0, 0)
    assert await entries(shop, account) == [("grant", 500 * C), ("charge", 123_456_789), ("refund", 376_543_211)]
    status, body = await refund(shop, account, order_id)
    assert (status, body["error"]["code"]) == (409, "nothing_to_refund")


async def test_credits_on_hold_are_not_refunded(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    task_id = await hold(shop.db, account.id, 100 * C)  # a running task holds 100 credits
    status, body = await refund(shop, account, order_id)
    assert status == 200, body
    assert (body["amount"], body["credits"]) == (400, 400)
    assert await balance(shop.http, account) == (0, Decimal(100))
    # The task finishes using 30: 70 come back to the balance; they can be refunded in a second request.
    await settle(shop.db, task_id, 30 * C)
    assert await balance(shop.http, account) == (Decimal(70), 0)
    status, body = await refund(shop, account, order_id)
    assert status == 200, body
    assert (body["amount"], body["credits"]) == (70, 70)
    order = body["order"]
    assert (order["status"], order["amount_refunded"], order["credits_refunded"]) == ("partially_refunded", 470, 470)
    assert [r["amount"] for r in order["refunds"]] == [400, 70]
    assert await stripe_refunds(shop, order_id) == [400, 70]


async def test_no_refund_after_seven_days(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    await shop.db.execute(
        "UPDATE billing_orders SET paid_at = now() - interval '7 days 1 minute' WHERE id = $1", uuid.UUID(order_id)
    )
    assert (await shop.order(account, order_id))["refundable"] == {"credits": 0, "amount": 0}
    status, body = await refund(shop, account, order_id)
    assert status == 409
    assert body["error"]["code"] == "refund_window_closed"
    assert await balance(shop.http, account) == (Decimal(500), 0)
    assert await stripe_refunds(shop, order_id) == []
    # Six days and 23 hours is still within the period.
    await shop.db.execute(
        "UPDATE billing_orders SET paid_at = now() - interval '6 days 23 hours' WHERE id = $1", uuid.UUID(order_id)
    )
    status, body = await refund(shop, account, order_id)
    assert (status, body["amount"]) == (200, 500)


async def test_nothing_to_refund_when_everything_is_spent(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    await spend(shop.db, account.id, 500 * C - 5_000)  # 0.005 credits left: worth 0.005 cents
    status, body = await refund(shop, account, order_id)
    assert status == 409
    assert body["error"]["code"] == "nothing_to_refund"
    assert "worth less than the smallest USD unit" in body["error"]["message"]
    assert await balance(shop.http, account) == (Decimal("0.005"), 0)
    pending_order, _ = await shop.checkout(account)
    status, body = await refund(shop, account, pending_order)
    assert (status, body["error"]["code"]) == (409, "order_not_refundable")


async def test_a_refund_stripe_refuses_gives_the_credits_back(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    shop.sim.fail_next("POST", "/v1/refunds", status=400, code="charge_disputed")
    status, body = await refund(shop, account, order_id)
    assert status == 502, body
    assert body["error"]["code"] == "refund_failed"
    assert "credits were restored" in body["error"]["message"]
    assert await balance(shop.http, account) == (Decimal(500), 0)
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_refunded"], order["amount_refunded"]) == ("paid", 0, 0)
    assert [(r["status"], r["amount"]) for r in order["refunds"]] == [("failed", 500)]
    assert await entries(shop, account) == [("grant", 500 * C), ("refund", 500 * C), ("adjust", 500 * C)]
    status, body = await refund(shop, account, order_id)  # and it can be asked again
    assert (status, body["amount"]) == (200, 500)


async def test_stripe_unreachable_leaves_the_refund_pending_until_the_sweep(
    shop: Shop, make_account: AccountFactory
) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    # Stripe makes the refund but every answer is lost (three tries by the library).
    shop.sim.fail_next("POST", "/v1/refunds", status=500, times=3, after=True)
    status, body = await refund(shop, account, order_id)
    assert status == 202, body
    assert body["status"] == "pending"
    assert body["order"]["status"] == "paid"
    assert await balance(shop.http, account) == (0, 0)  # the credits left the balance already
    assert await stripe_refunds(shop, order_id) == [500]
    status, again = await refund(shop, account, order_id)
    assert (status, again["error"]["code"]) == (409, "nothing_to_refund")
    # The sweep asks again with the same idempotency key: Stripe answers with the same refund.
    assert await retry_refunds(shop.db, shop.gateway, older_than_s=0) == 1
    order = await shop.order(account, order_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", 500)
    assert [r["status"] for r in order["refunds"]] == ["succeeded"]
    assert await stripe_refunds(shop, order_id) == [500]  # one refund at Stripe, not two
    assert await retry_refunds(shop.db, shop.gateway, older_than_s=0) == 0


async def test_a_refund_racing_submits_never_refunds_spent_credits(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)

    async def submit() -> int:
        response = await shop.http.post(
            "/v1/tasks", json={"model": "flux-dev", "input": {"prompt": "a race"}}, headers=account.headers
        )
        return response.status_code

    refunding = asyncio.ensure_future(refund(shop, account, order_id))
    statuses = await asyncio.gather(*(submit() for _ in range(30)))
    refund_status, body = await refunding
    assert set(statuses) <= {202, 402}
    accepted = statuses.count(202)
    assert refund_status == 200, body
    held = Decimal(accepted) * Decimal("2.5")  # flux-dev holds 2.5 credits per task
    assert body["credits"] == 500 - held
    assert body["amount"] == int(500 - held)  # 1 credit = 1 cent in this pack, rounded down
    assert await balance(shop.http, account) == (0, held)
    tasks = (await shop.http.get("/v1/tasks?limit=100", headers=account.headers)).json()["data"]
    for task in tasks:
        await shop.http.post(f"/v1/tasks/{task['id']}/cancel", headers=account.headers)
    assert await balance(shop.http, account) == (held, 0)


async def test_a_dashboard_refund_revokes_the_unused_credits(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="7")  # credits from elsewhere are not touched
    order_id = await shop.buy(account)
    await spend(shop.db, account.id, 200 * C)  # drawn from the purchase, which expires first
    task_id = await hold(shop.db, account.id, 50 * C)
    event = shop.sim.dashboard_refund(await shop.payment_intent(order_id))  # the whole 5.00 USD
    assert event["type"] == "charge.refunded"
    for _ in range(2):  # delivered twice
        await shop.deliver(event)
    assert await shop.process(event) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["amount_refunded"], order["credits_revoked"]) == ("refunded", 500, 250)
    assert await balance(shop.http, account) == (Decimal(7), Decimal(50))
    assert await entries(shop, account) == [
        ("grant", 7 * C), ("grant", 500 * C), ("charge", 200 * C), ("revoke", 250 * C),
    ]  # fmt: skip
    status, body = await refund(shop, account, order_id)
    assert (status, body["error"]["code"]) == (409, "order_not_refundable")
    await settle(shop.db, task_id, 50 * C)
    assert await balance(shop.http, account) == (Decimal(7), 0)


async def test_a_partial_dashboard_refund_then_more(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    payment_intent = await shop.payment_intent(order_id)
    task_id = await hold(shop.db, account.id, 100 * C)
    first = shop.sim.dashboard_refund(payment_intent, 100)
    await shop.deliver(first)
    assert await shop.process(first) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["amount_refunded"], order["credits_revoked"]) == ("partially_refunded", 100, 400)
    assert await balance(shop.http, account) == (0, Decimal(100))
    await settle(shop.db, task_id, 0)  # the held credits come back...
    second = shop.sim.dashboard_refund(payment_intent, 50)
    await shop.deliver(second)
    assert await shop.process(second) == "processed"  # ...and the next refund revokes them
    order = await shop.order(account, order_id)
    assert (order["status"], order["amount_refunded"], order["credits_revoked"]) == ("partially_refunded", 150, 500)
    assert await balance(shop.http, account) == (0, 0)


async def test_a_refund_event_before_the_payment_event(shop: Shop, make_account: AccountFactory) -> None:
    """charge.refunded is processed before checkout.session.completed: Conduit asks Stripe which checkout the
    payment belongs to, applies the payment, then the refund; the late completion changes nothing."""
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    completed = shop.sim.pay(session_id)
    refunded = shop.sim.dashboard_refund(shop.sim.sessions[session_id]["payment_intent"])
    await shop.deliver(refunded)
    assert await shop.process(refunded) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"], order["credits_revoked"]) == ("refunded", 500, 500)
    await shop.deliver(completed)
    assert await shop.process(completed) == "processed"
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"], order["credits_revoked"]) == ("refunded", 500, 500)
    assert await balance(shop.http, account) == (0, 0)
    assert await entries(shop, account) == [("grant", 500 * C), ("revoke", 500 * C)]
