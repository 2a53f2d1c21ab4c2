"""Purchased credits expire: the sweep, a hold open across the expiry, and the account page."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from shared.ledger import expire_lots, grant
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.billing.conftest import C, Shop, hold, settle
from tests.integration.helpers import balance, submit, wait_terminal


async def expire_purchase(shop: Shop, order_id: str) -> None:
    """Time passes: the order's lot reaches its expiry."""
    await shop.db.execute(
        """
        UPDATE credit_lots SET expires_at = now() - interval '1 second'
        WHERE id = (SELECT lot_id FROM billing_orders WHERE id = $1)
        """,
        uuid.UUID(order_id),
    )


async def sweep(shop: Shop) -> int:
    """The expiry sweep (every worker runs it every 15 s); returns what it expired, for every account."""
    async with shop.db.transaction() as conn:
        return await expire_lots(conn)


async def kinds(shop: Shop, account_id: uuid.UUID) -> list[tuple[str, int]]:
    rows = await shop.db.fetch(
        """
        SELECT kind, amount FROM ledger_entries WHERE account_id = $1 AND kind IN ('grant', 'charge', 'expire')
        ORDER BY id
        """,
        account_id,
    )
    return [(row["kind"], row["amount"]) for row in rows]


async def test_a_purchased_lot_expires(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    await expire_purchase(shop, order_id)
    page = (await shop.http.get("/v1/account", headers=account.headers)).json()
    assert page["upcoming_expiries"] == []
    # Expired credits cannot be spent, even before the sweep has written them off.
    refused = await submit(shop.http, account, "flux-schnell", prompt="too late")
    assert refused.status_code == 402, refused.text
    assert await sweep(shop) >= 500 * C
    assert await balance(shop.http, account) == (0, 0)
    assert await kinds(shop, account.id) == [("grant", 500 * C), ("expire", 500 * C)]
    ledger = (await shop.http.get("/v1/account/ledger", headers=account.headers)).json()["data"]
    assert (ledger[0]["type"], ledger[0]["amount"], ledger[0]["lot"]["source"]) == ("expire", 500, "purchase")
    order = await shop.order(account, order_id)
    assert (order["status"], order["refundable"]) == ("paid", {"credits": 0, "amount": 0})
    response = await shop.http.post(f"/v1/billing/orders/{order_id}/refund", headers=account.headers)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "nothing_to_refund")


async def test_a_task_holding_purchased_credits_across_their_expiry(
    shop: Shop, make_account: AccountFactory, billing_settings: Settings
) -> None:
    """A chat task holds its worst case from the purchase; the lot expires while the task is queued. The
    sweep expires only what is not on hold; the task then runs and is charged its actual cost, and what its
    settlement releases expires at once instead of coming back."""
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    response = await submit(shop.http, account, "llama-3.1-8b-instruct",
                            messages=[{"role": "user", "content": "Hello!"}], max_tokens=4000)  # fmt: skip
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    held = Decimal(str(response.json()["credits"]["held"]))
    assert held > 0

    await expire_purchase(shop, order_id)
    assert await sweep(shop) >= 500 * C - int(held * C)
    assert await balance(shop.http, account) == (0, held)
    assert await kinds(shop, account.id) == [("grant", 500 * C), ("expire", 500 * C - int(held * C))]
    response = await shop.http.post(f"/v1/billing/orders/{order_id}/refund", headers=account.headers)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "nothing_to_refund")

    worker = InProcessWorker(billing_settings)
    await worker.start()
    try:
        task = await wait_terminal(shop.http, account, task_id, timeout=60)
    finally:
        await worker.stop()
    assert task["status"] == "succeeded", task
    charged = Decimal(str(task["credits"]["charged"]))
    assert 0 < charged < held
    assert await balance(shop.http, account) == (0, 0)
    entries = await kinds(shop, account.id)
    assert entries == [
        ("grant", 500 * C),
        ("expire", 500 * C - int(held * C)),
        ("charge", int(charged * C)),
        ("expire", int((held - charged) * C)),
    ]


async def test_the_held_part_of_an_expired_lot_can_still_be_spent_in_full(
    shop: Shop, make_account: AccountFactory
) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account)
    task_id = await hold(shop.db, account.id, 100 * C)
    await expire_purchase(shop, order_id)
    assert await sweep(shop) >= 400 * C
    await settle(shop.db, task_id, 100 * C)
    assert await balance(shop.http, account) == (0, 0)
    assert await kinds(shop, account.id) == [("grant", 500 * C), ("expire", 400 * C), ("charge", 100 * C)]
    lot = await shop.db.fetchrow(
        "SELECT remaining, reserved, closed_at FROM credit_lots WHERE id = "
        "(SELECT lot_id FROM billing_orders WHERE id = $1)",
        uuid.UUID(order_id),
    )
    assert lot is not None
    assert (lot["remaining"], lot["reserved"]) == (0, 0)
    assert lot["closed_at"] is not None


async def test_the_account_page_lists_upcoming_expiries_soonest_first(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="20")  # an initial grant that never expires: not listed
    order_id = await shop.buy(account)  # 500 credits for a year
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    async with shop.db.transaction() as conn:
        promo = await grant(conn, account_id=account.id, amount=30 * C, source="promo", expires_at=soon,
                            idempotency_key=f"promo:{account.id}")  # fmt: skip
    task_id = await hold(shop.db, account.id, 40 * C)  # draws the 30 expiring soonest, then 10 from the purchase
    page = (await shop.http.get("/v1/account", headers=account.headers)).json(parse_float=Decimal)
    order = await shop.order(account, order_id)
    purchase = await shop.db.fetchval("SELECT lot_id FROM billing_orders WHERE id = $1", uuid.UUID(order_id))
    assert page["balance"] == {"available": 510, "held": 40}
    assert [(x["lot_id"], x["source"], x["amount"]) for x in page["upcoming_expiries"]] == [
        (str(promo), "promo", 30),  # on hold, but expires with the lot if the task does not spend it
        (str(purchase), "purchase", 500),
    ]
    assert dt.datetime.fromisoformat(page["upcoming_expiries"][0]["expires_at"]) == soon
    assert page["upcoming_expiries"][1]["expires_at"] == order["credits_expire_at"]
    await settle(shop.db, task_id, 35 * C)  # spends the 30 first, then 5 of the purchase
    page = (await shop.http.get("/v1/account", headers=account.headers)).json(parse_float=Decimal)
    assert [(x["source"], x["amount"]) for x in page["upcoming_expiries"]] == [("purchase", 495)]
