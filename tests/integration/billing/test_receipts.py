"""Receipts: every paid order has one, as data and as a real PDF (read back with pypdf), with the tax and card
Stripe reports, the billing address, and its refunds."""

from __future__ import annotations

import io
import uuid

from pypdf import PdfReader

from tests.conftest import AccountFactory
from tests.integration.billing.conftest import Shop

STRIPE_RECEIPT = "https://pay.stripe.com/receipts/payment/test_receipt"


def pdf_text(body: bytes) -> str:
    reader = PdfReader(io.BytesIO(body))
    assert len(reader.pages) == 1
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_a_paid_order_has_a_pdf_receipt(shop: Shop, make_account: AccountFactory) -> None:
    account = await make_account(credits="0")
    order_id, session_id = await shop.checkout(account)
    unpaid = await shop.http.get(f"/v1/billing/orders/{order_id}/receipt", headers=account.headers)
    assert unpaid.status_code == 404 and unpaid.json()["error"]["code"] == "receipt_not_found"
    shop.sim.sessions[session_id]["total_details"] = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 83}
    paid = shop.sim.pay(session_id)
    assert (await shop.deliver(paid)).status_code == 200 and await shop.process(paid) == "processed"
    charge = shop.sim.charges[await shop.payment_intent(order_id)]
    charge.update(payment_method_details={"type": "card", "card": {"brand": "visa", "last4": "4242"}},
                  receipt_url=STRIPE_RECEIPT)  # fmt: skip
    succeeded = shop.sim.event("charge.succeeded", charge)
    assert (await shop.deliver(succeeded)).status_code == 200 and await shop.process(succeeded) == "processed"
    billing = await shop.http.put("/v1/billing/settings", json={"billing_email": "Accounts@Example.com"},
                                  headers=account.headers)  # fmt: skip
    assert billing.status_code == 200 and billing.json()["billing_email"] == "accounts@example.com"

    order = await shop.order(account, order_id)
    assert order["receipt_url"] == f"/v1/billing/orders/{order_id}/receipt.pdf"
    assert order["stripe_receipt_url"] == STRIPE_RECEIPT
    receipt = (await shop.http.get(f"/v1/billing/orders/{order_id}/receipt", headers=account.headers)).json()
    assert receipt["number"].startswith("R-") and receipt["number"].endswith(uuid.UUID(order_id).hex[-12:].upper())
    fields = ("buyer", "item", "amount", "currency", "amount_tax", "card_last4", "credits")
    assert [receipt[f] for f in fields] == ["accounts@example.com", "Starter pack", 500, "usd", 83, "4242", 500]
    pdf = await shop.http.get(order["receipt_url"], headers=account.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'attachment; filename="{receipt["number"]}.pdf"'
    text = pdf_text(pdf.content)
    for expected in (
        receipt["number"],
        "accounts@example.com",
        "Starter pack",
        "USD 5.00",
        "USD 0.83",
        "4242",
        order_id,
    ):
        assert expected in text, (expected, text)
    assert "Refund" not in text

    refunded = await shop.http.post(f"/v1/billing/orders/{order_id}/refund", headers=account.headers)
    assert refunded.status_code == 200, refunded.text
    audit = (await shop.http.get("/v1/account/audit", headers=account.headers)).json()["data"]
    assert [e["action"] for e in audit] == ["billing.refund", "billing.email"]
    assert audit[0]["actor"].startswith("API key cdt_") and audit[0]["after"]["amount"] == 500
    text = pdf_text((await shop.http.get(order["receipt_url"], headers=account.headers)).content)
    assert "Refund" in text and "-USD 5.00" in text and "Net paid" in text and "USD 0.00" in text

    other = await make_account(credits="0")
    for path in (f"/v1/billing/orders/{order_id}/receipt", order["receipt_url"]):
        response = await shop.http.get(path, headers=other.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found"
