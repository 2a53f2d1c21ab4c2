"""Products, checkout and the purchase flow, against the simulated Stripe."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import httpx

from shared.services import Services
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.billing.conftest import Shop
from tests.integration.helpers import balance


async def test_products_are_public_and_priced_by_the_server(shop: Shop) -> None:
    response = await shop.http.get("/v1/billing/products")
    assert response.status_code == 200
    products = {p["id"]: p for p in response.json(parse_float=Decimal)["data"]}
    assert products["starter"] == {
        "id": "starter",
        "object": "billing.product",
        "name": "Starter pack",
        "description": "500 credits, valid for one year.",
        "price": 500,
        "currency": "usd",
        "credits": 500,
        "validity_days": 365,
    }
    assert products["studio"]["validity_days"] is None


async def test_purchase_grants_the_pack_once_paid(
    shop: Shop, make_account: AccountFactory, billing_worker: InProcessWorker
) -> None:
    account = await make_account(credits="0")
    response = await shop.http.post("/v1/billing/checkout", json={"product_id": "starter"}, headers=account.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    order = body["order"]
    assert order["status"] == "pending"
    assert (order["amount"], order["currency"], order["credits"], order["credits_granted"]) == (500, "usd", 500, 0)
    session = next(s for s in shop.sim.sessions.values() if s["client_reference_id"] == order["id"])
    assert body["url"] == session["url"] == order["checkout_url"]
    # What Stripe was asked for: the server's price, the order id in both places, URLs naming the order.
    sent = shop.sim.calls("POST", "/v1/checkout/sessions")[-1]
    assert sent["mode"] == "payment"
    assert sent["metadata"]["order_id"] == order["id"]
    assert sent["line_items"][0]["price_data"]["unit_amount"] == "500"
    assert sent["customer_email"] == account.email
    assert order["id"] in sent["success_url"] and sent["success_url"].startswith(str(shop.http.base_url))
    assert order["id"] in sent["cancel_url"]

    assert await balance(shop.http, account) == (0, 0)  # nothing before the payment
    event = shop.sim.pay(session["id"])
    delivered = await shop.deliver(event)
    assert delivered.status_code == 200, delivered.text
    assert await shop.wait_event(event) == "processed"

    paid = await shop.order(account, order["id"])
    assert paid["status"] == "paid"
    assert (paid["amount_paid"], paid["credits_granted"]) == (500, 500)
    assert paid["checkout_url"] is None
    assert await balance(shop.http, account) == (Decimal(500), 0)
    expires = dt.datetime.fromisoformat(paid["credits_expire_at"])
    assert abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(days=365))) < dt.timedelta(minutes=5)
    assert paid["refundable"] == {"credits": 500, "amount": 500}
    ledger = (await shop.http.get("/v1/account/ledger", headers=account.headers)).json()["data"]
    assert [(e["type"], e["amount"], e["lot"]["source"]) for e in ledger] == [("grant", 500, "purchase")]
    account_page = (await shop.http.get("/v1/account", headers=account.headers)).json()
    assert [(x["source"], x["amount"], x["expires_at"]) for x in account_page["upcoming_expiries"]] == [
        ("purchase", 500, paid["credits_expire_at"])
    ]

    listed = (await shop.http.get("/v1/billing/orders", headers=account.headers)).json()
    assert [o["id"] for o in listed["data"]] == [order["id"]]
    assert listed["data"][0]["status"] == "paid"


async def test_a_never_expiring_pack(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id = await shop.buy(account, "studio")
    order = await shop.order(account, order_id)
    assert (order["status"], order["credits_granted"], order["credits_expire_at"]) == ("paid", 12000, None)
    page = (await shop.http.get("/v1/account", headers=account.headers)).json()
    assert page["upcoming_expiries"] == []
    assert page["balance"] == {"available": 12000, "held": 0}


async def test_checkout_takes_no_price_from_the_client(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account()
    for body, code in [
        ({"product_id": "starter", "amount": 1}, "invalid_request"),
        ({"product_id": "platinum"}, "unknown_product"),
        ({}, "invalid_request"),
    ]:
        response = await shop.http.post("/v1/billing/checkout", json=body, headers=account.headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == code
    assert (await shop.http.post("/v1/billing/checkout", json={"product_id": "starter"})).status_code == 401
    count = await shop.db.fetchval("SELECT count(*) FROM billing_orders WHERE account_id = $1", account.id)
    assert count == 0


async def test_orders_of_another_account_are_not_found(shop: Shop, make_account: AccountFactory) -> None:
    owner, other = await make_account(), await make_account()
    order_id, _ = await shop.checkout(owner)
    attempts = [
        ("GET", f"/v1/billing/orders/{order_id}"),
        ("POST", f"/v1/billing/orders/{order_id}/refund"),
        ("GET", f"/v1/billing/orders/{uuid.uuid4()}"),
        ("GET", "/v1/billing/orders/not-an-id"),
    ]
    for method, path in attempts:
        response = await shop.http.request(method, path, headers=other.headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "order_not_found"
    assert (await shop.http.get("/v1/billing/orders", headers=other.headers)).json()["data"] == []


async def test_stripe_down_at_checkout(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account()
    shop.sim.fail_next("POST", "/v1/checkout/sessions", status=500, times=3)  # the library retries twice
    response = await shop.http.post("/v1/billing/checkout", json={"product_id": "pro"}, headers=account.headers)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "payment_provider_error"
    orders = (await shop.http.get("/v1/billing/orders", headers=account.headers)).json()["data"]
    assert [(o["status"], o["product"]["id"]) for o in orders] == [("failed", "pro")]
    assert "unavailable" in orders[0]["failure_reason"]


async def test_billing_without_stripe_keys_is_unavailable(
    client: httpx.AsyncClient, make_account: AccountFactory
) -> None:
    """The suite's main server has no Stripe settings: products list, but nothing can be bought."""
    account = await make_account()
    assert (await client.get("/v1/billing/products")).status_code == 200
    response = await client.post("/v1/billing/checkout", json={"product_id": "starter"}, headers=account.headers)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "type": "service_unavailable_error",
        "code": "billing_unavailable",
        "message": "payments are not configured on this server",
        "param": None,
    }
    hook = await client.post("/v1/billing/stripe/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=x"})
    assert hook.status_code == 503


async def test_the_checkout_return_page(shop: Shop) -> None:
    success = await shop.http.get("/v1/billing/return", params={"result": "success", "order_id": str(uuid.uuid4())})
    assert success.status_code == 200
    assert success.headers["content-type"].startswith("text/html")
    assert "Payment received" in success.text
    cancel = await shop.http.get("/v1/billing/return", params={"result": "cancel"})
    assert "No payment was taken" in cancel.text


async def test_listing_orders_pages_and_filters(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    first = await shop.buy(account, "starter")
    second, _ = await shop.checkout(account, "pro")
    third, _ = await shop.checkout(account, "studio")
    page = (await shop.http.get("/v1/billing/orders?limit=2", headers=account.headers)).json()
    assert [o["id"] for o in page["data"]] == [third, second]
    assert page["has_more"] is True
    rest = await shop.http.get(f"/v1/billing/orders?limit=2&after={page['next_cursor']}", headers=account.headers)
    assert [o["id"] for o in rest.json()["data"]] == [first]
    assert rest.json()["has_more"] is False
    pending = (await shop.http.get("/v1/billing/orders?status=pending", headers=account.headers)).json()
    assert [o["id"] for o in pending["data"]] == [third, second]
    assert all(o["checkout_url"] for o in pending["data"])
    for query, param in [("status=unpaid", "status"), ("after=nope", "after"), ("limit=0", "limit")]:
        response = await shop.http.get(f"/v1/billing/orders?{query}", headers=account.headers)
        assert response.status_code == 400, query
        assert response.json()["error"]["param"] == param


async def test_a_signed_in_person_buys_with_a_session(
    shop: Shop, make_account: AccountFactory, services: Services
) -> None:
    """The dashboard's way: the session cookie, and the CSRF token on the POST."""
    account = await make_account(credits="0")
    token, session = await services.sessions.create(account.id, ip="127.0.0.1", user_agent="pytest")
    body = {"product_id": "starter"}
    async with httpx.AsyncClient(base_url=shop.http.base_url, cookies={"conduit_session": token}) as browser:
        refused = await browser.post("/v1/billing/checkout", json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
        response = await browser.post("/v1/billing/checkout", json=body, headers={"X-CSRF-Token": session.csrf_token})
        assert response.status_code == 201, response.text
        order_id = response.json()["order"]["id"]
        listed = await browser.get("/v1/billing/orders")
    assert [o["id"] for o in listed.json()["data"]] == [order_id]
