"""Receipts of paid orders: what was bought, by whom, for how much (with the tax and the card Stripe reports,
and every refund), as data for the API and as a PDF generated here (fpdf2).

The details Stripe reports come with its events (``shared.billing.events``): the tax in a Checkout Session's
``total_details`` (``note_session``), the card's last four digits and Stripe's own hosted receipt in a Charge
(``note_charge``: ``charge.succeeded`` and ``charge.refunded``). A receipt is addressed to the account's billing
address (``set_billing_email``), or its own address when none is set.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from fpdf import FPDF

from shared.accounts.service import normalize_email
from shared.billing.orders import order_not_found
from shared.infra.db import Connection, Database
from shared.infra.errors import NotFound
from shared.infra.ids import parse_uuid
from shared.teams import audit
from shared.teams.audit import AccountActor

ZERO_DECIMAL_CURRENCIES = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                                     "vnd", "vuv", "xaf", "xof", "xpf"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReceiptRefund:
    amount: int
    status: str
    created_at: dt.datetime | None  # None: refunded outside Conduit (e.g. Stripe's dashboard)


@dataclass(frozen=True, slots=True)
class Receipt:
    number: str
    order_id: uuid.UUID
    account_id: uuid.UUID
    buyer: str | None  # the billing address
    paid_at: dt.datetime
    item: str
    credits: int  # micro-credits
    amount: int  # minor units, what was paid
    currency: str
    amount_tax: int | None  # included in ``amount``; None when Stripe did not report tax
    card_last4: str | None
    amount_refunded: int
    stripe_receipt_url: str | None
    refunds: list[ReceiptRefund] = field(default_factory=list)


def receipt_number(order_id: uuid.UUID, paid_at: dt.datetime) -> str:
    """``R-<date paid>-<the order id's last 12 hex digits>``: unique (the id's random part) and sortable by day."""
    return f"R-{paid_at.astimezone(dt.UTC):%Y%m%d}-{order_id.hex[-12:].upper()}"


def money(amount: int, currency: str) -> str:
    """A minor-unit amount as people write it: ``USD 5.00`` (``JPY 500`` for a zero-decimal currency)."""
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return f"{currency.upper()} {amount:,}"
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency.upper()} {abs(amount) // 100:,}.{abs(amount) % 100:02d}"


async def get_receipt(db: Database, account_id: uuid.UUID, order_id: str) -> Receipt:
    """The receipt of one of the account's paid orders (another account's order, or an unpaid one: 404)."""
    parsed = parse_uuid(order_id)
    if parsed is None:
        raise order_not_found(order_id)
    async with db.connection() as conn:
        row = await conn.fetchrow(
            """
            SELECT o.*, COALESCE(a.billing_email, a.email) AS buyer
            FROM billing_orders o JOIN accounts a ON a.id = o.account_id
            WHERE o.id = $1 AND o.account_id = $2
            """,
            parsed,
            account_id,
        )
        if row is None:
            raise order_not_found(order_id)
        if row["paid_at"] is None:
            raise NotFound(f"order {order_id} is not paid: it has no receipt", code="receipt_not_found",
                           param="order_id")  # fmt: skip
        refund_rows = await conn.fetch(
            "SELECT amount, status, created_at FROM billing_refunds WHERE order_id = $1 AND status <> 'failed'"
            " ORDER BY id",
            parsed,
        )
    refunds = [ReceiptRefund(r["amount"], r["status"], r["created_at"]) for r in refund_rows]
    if row["amount_refunded_external"] > 0:
        refunds.append(ReceiptRefund(row["amount_refunded_external"], "succeeded", None))
    return Receipt(
        number=receipt_number(row["id"], row["paid_at"]), order_id=row["id"], account_id=row["account_id"],
        buyer=row["buyer"], paid_at=row["paid_at"], item=row["product_name"], credits=row["credits_granted"],
        amount=row["amount_paid"], currency=row["currency"], amount_tax=row["amount_tax"],
        card_last4=row["card_last4"], amount_refunded=row["amount_refunded"],
        stripe_receipt_url=row["stripe_receipt_url"], refunds=refunds,
    )  # fmt: skip


def _latin1(text: str) -> str:
    """The PDF's core fonts cover Latin-1: anything else shows as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def render_pdf(receipt: Receipt, *, seller: str = "Conduit") -> bytes:
    """The receipt as a one-page PDF."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {receipt.number}")
    pdf.set_author(seller)
    pdf.set_creation_date(receipt.paid_at)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _latin1(f"{seller} - Receipt"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    lines = [
        ("Receipt number", receipt.number),
        ("Date paid", f"{receipt.paid_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"),
        ("Billed to", receipt.buyer or "(erased)"),
        ("Order", str(receipt.order_id)),
        ("Payment method", f"card ending in {receipt.card_last4}" if receipt.card_last4 else "card"),
    ]
    for label, value in lines:
        pdf.cell(45, 8, _latin1(label))
        pdf.cell(0, 8, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(120, 8, "Item")
    pdf.cell(0, 8, "Amount", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    credits = f"{receipt.credits / 1_000_000:,.6f}".rstrip("0").rstrip(".")
    pdf.cell(120, 8, _latin1(f"{receipt.item} ({credits} credits)"))
    pdf.cell(0, 8, money(receipt.amount, receipt.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    if receipt.amount_tax is not None:
        pdf.cell(120, 8, "of which tax")
        pdf.cell(0, 8, money(receipt.amount_tax, receipt.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(120, 8, "Total paid")
    pdf.cell(0, 8, money(receipt.amount, receipt.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    for refund in receipt.refunds:
        when = f"{refund.created_at.astimezone(dt.UTC):%Y-%m-%d}" if refund.created_at else "outside Conduit"
        pending = " (pending)" if refund.status == "pending" else ""
        pdf.cell(120, 8, _latin1(f"Refund {when}{pending}"))
        pdf.cell(0, 8, money(-refund.amount, receipt.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    if receipt.refunds:
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(120, 8, "Net paid")
        pdf.cell(0, 8, money(receipt.amount - receipt.amount_refunded, receipt.currency), align="R",
                 new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    return bytes(pdf.output())


async def note_session(conn: Connection, order_id: uuid.UUID, session: dict[str, Any]) -> None:
    """Keep the tax a paid Checkout Session reports (``total_details.amount_tax``)."""
    details = session.get("total_details")
    tax = details.get("amount_tax") if isinstance(details, dict) else None
    if isinstance(tax, int) and not isinstance(tax, bool) and tax >= 0:
        await conn.execute("UPDATE billing_orders SET amount_tax = $2 WHERE id = $1", order_id, tax)


async def note_charge(conn: Connection, charge: dict[str, Any]) -> bool:
    """Keep the card's last four digits and Stripe's hosted receipt URL of the order the charge paid. True if an
    order was found."""
    payment_intent = charge.get("payment_intent")
    if not isinstance(payment_intent, str):
        return False
    details = charge.get("payment_method_details")
    card = details.get("card") if isinstance(details, dict) else None
    last4 = card.get("last4") if isinstance(card, dict) else None
    url = charge.get("receipt_url")
    found = await conn.fetchval(
        """
        UPDATE billing_orders SET card_last4 = COALESCE($2, card_last4),
                                  stripe_receipt_url = COALESCE($3, stripe_receipt_url)
        WHERE payment_intent_id = $1 RETURNING id
        """,
        payment_intent,
        last4 if isinstance(last4, str) and len(last4) == 4 and last4.isdigit() else None,
        url if isinstance(url, str) and url.startswith("https://") and len(url) <= 2000 else None,
    )
    return found is not None


async def billing_email(db: Database, account_id: uuid.UUID) -> str | None:
    value: str | None = await db.fetchval("SELECT billing_email FROM accounts WHERE id = $1", account_id)
    return value


async def set_billing_email(db: Database, actor: AccountActor, email: str | None) -> str | None:
    """Set (or, with None, clear) the address receipts are addressed to; recorded in the audit trail."""
    new = normalize_email(email) if email is not None else None
    async with db.transaction() as conn:
        old = await conn.fetchval("SELECT billing_email FROM accounts WHERE id = $1 FOR UPDATE", actor.account_id)
        if old != new:
            await conn.execute("UPDATE accounts SET billing_email = $2, updated_at = now() WHERE id = $1",
                               actor.account_id, new)  # fmt: skip
            await audit.record(conn, actor, "billing.email", "account", actor.account_id,
                               before={"billing_email": old}, after={"billing_email": new})  # fmt: skip
    return new
