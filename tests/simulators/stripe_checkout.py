"""Stripe's hosted Checkout page, for browser tests: the ``url`` of a simulated Checkout Session opens a page
with a "Pay" button. Paying completes the session (``StripeSimulator.pay``), delivers the signed
``checkout.session.completed`` event to ``webhook_url`` as Stripe does, and sends the browser to the
session's ``success_url`` (``{CHECKOUT_SESSION_ID}`` filled in); "Cancel" goes to its ``cancel_url``."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from tests.simulators.stripe import Receive, Scope, Send, StripeSimulator

PAY_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout (simulated Stripe)</title>
</head><body><h1>Pay {amount} {currency}</h1>
<form method="post" action="/c/pay/{session}"><button id="pay" type="submit">Pay</button></form>
<p><a id="cancel" href="{cancel}">Cancel</a></p></body></html>"""


@dataclass
class HostedCheckoutStripe(StripeSimulator):
    webhook_url: str = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = re.fullmatch(r"/c/pay/(cs_test_[0-9a-f]+)", scope["path"])
        if scope["type"] != "http" or not match or match.group(1) not in self.sessions:
            await super().__call__(scope, receive, send)
            return
        session = self.sessions[match.group(1)]
        if scope["method"] == "POST":
            while (await receive()).get("more_body"):
                pass
            event = self.pay(session["id"])
            delivered = await self.deliver(self.webhook_url, event)
            assert delivered.status_code == 200, delivered.text
            target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
            await send({"type": "http.response.start", "status": 303, "headers": [(b"location", target.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return
        page = PAY_PAGE.format(
            amount=session["amount_total"] / 100,
            currency=html.escape(session["currency"].upper()),
            session=session["id"],
            cancel=html.escape(session["cancel_url"]),
        )
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": page.encode()})
