"""A local Stripe: the parts of Stripe's API that Conduit uses, over real HTTP, in Stripe's wire format.

Requests are form-encoded with Stripe's bracket notation (``line_items[0][price_data][currency]=usd``),
authenticated with ``Authorization: Bearer sk_...``; responses are JSON objects with an ``object`` field,
errors are ``{"error": {"type", "code", "message", "param"}}``. POSTs honour ``Idempotency-Key`` like
Stripe: the same key with the same parameters replays the first response, with other parameters it is an
``idempotency_error``.

Endpoints: ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}``, ``GET /v1/checkout/sessions``
(``payment_intent`` filter), ``POST /v1/checkout/sessions/{id}/expire``, ``POST /v1/refunds``,
``GET /v1/refunds/{id}``.

What a customer or an operator would do happens through methods (``pay``, ``expire``, ``dashboard_refund``,
``settle_async_payment``). Each returns the event Stripe would send; every event is also appended to
``events``. ``deliver`` POSTs an event to a webhook URL signed the way Stripe signs them
(``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the endpoint secret>``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.harness import AsgiServer, Started

API_VERSION = "2025-09-30.clover"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class StripeApiError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "code": code, "message": message, "param": param}}


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding -> nested dicts and lists (``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}``)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None:
        if required:
            raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise StripeApiError(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends with ``payload`` for an endpoint with ``secret``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    times: int
    code: str | None
    after: bool
    should_retry: bool


@dataclass
class StripeSimulator(Started):
    api_key: str
    webhook_secret: str
    port: int
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payment intent id
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _server: AsgiServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- process ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = AsgiServer(self, self.port, name="the Stripe simulator")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        times: int = 1,
        code: str | None = None,
        after: bool = False,
        should_retry: bool = True,
    ) -> None:
        """The next ``times`` requests ``method path`` (path prefix) answer ``status`` (500: an API error,
        400/402: a refusal with ``code``) instead of doing anything; with ``after``, the request is carried
        out first and only its response is lost (a timeout after Stripe acted). ``should_retry=False`` sends
        ``Stripe-Should-Retry: false``, which tells the client library not to retry."""
        self._failures.append(_Failure(method, path, status, times, code, after, should_retry))

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        """The parameters of every request made to ``method path`` (path prefix), in order."""
        return [params for m, p, params in self.requests if m == method and p.startswith(path)]

    # -- what customers and operators do ----------------------------------------------------------------

    def pay(self, session_id: str, *, async_payment: bool = False) -> dict[str, Any]:
        """The customer completes the checkout. With ``async_payment`` (e.g. a bank debit) the session is
        complete but unpaid until ``settle_async_payment``. Returns ``checkout.session.completed``."""
        session = self.sessions[session_id]
        assert session["status"] == "open", f"session is {session['status']}"
        payment_intent = _id("pi")
        session.update(status="complete", payment_intent=payment_intent,
                       payment_status="unpaid" if async_payment else "paid")  # fmt: skip
        if not async_payment:
            self._charge(payment_intent, session)
        return self.event("checkout.session.completed", session)

    def settle_async_payment(self, session_id: str, *, succeeded: bool = True) -> dict[str, Any]:
        session = self.sessions[session_id]
        assert session["status"] == "complete" and session["payment_status"] == "unpaid"
        if succeeded:
            session["payment_status"] = "paid"
            self._charge(session["payment_intent"], session)
            return self.event("checkout.session.async_payment_succeeded", session)
        return self.event("checkout.session.async_payment_failed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        """The session reaches its expiry unpaid. Returns ``checkout.session.expired``."""
        session = self.sessions[session_id]
        assert session["status"] == "open"
        session["status"] = "expired"
        return self.event("checkout.session.expired", session)

    def dashboard_refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        """An operator refunds (part of) a payment in the Stripe dashboard. Returns ``charge.refunded``."""
        charge = self.charges[payment_intent]
        self._refund(charge, amount if amount is not None else charge["amount"] - charge["amount_refunded"], {})
        return self.events[-1]

    def event(self, type_: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},  # a snapshot, like Stripe's
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        self.events.append(event)
        return event

    async def deliver(
        self, url: str, event: dict[str, Any], *, secret: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        """POST the event to a webhook endpoint as Stripe does (``signature`` overrides the header)."""
        body = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
        header = signature if signature is not None else sign(body, secret or self.webhook_secret)
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header,
                         "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
            )  # fmt: skip

    # -- internals ----------------------------------------------------------------------------------------

    def _charge(self, payment_intent: str, session: dict[str, Any]) -> None:
        self.charges[payment_intent] = {
            "id": _id("ch"),
            "object": "charge",
            "amount": session["amount_total"],
            "amount_captured": session["amount_total"],
            "amount_refunded": 0,
            "currency": session["currency"],
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
            "paid": True,
            "payment_intent": payment_intent,
            "refunded": False,
            "status": "succeeded",
        }

    def _refund(self, charge: dict[str, Any], amount: int, params: dict[str, Any]) -> dict[str, Any]:
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise StripeApiError(400, f"Charge {charge['id']} has already been refunded.",
                                 code="charge_already_refunded")  # fmt: skip
        if amount <= 0 or amount > left:
            raise StripeApiError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                                 f"({left})", code="amount_too_large", param="amount")  # fmt: skip
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": params.get("metadata") or {},
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.event("charge.refunded", charge)
        return refund

    # -- HTTP ---------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        params = decode_form(body.decode() if method == "POST" else scope["query_string"].decode())
        status, payload, extra = self._handle(method, path, params, headers)
        data = json.dumps(payload).encode()
        response_headers = [(b"content-type", b"application/json"), (b"request-id", _id("req").encode()),
                            *((k.encode(), v.encode()) for k, v in extra.items())]  # fmt: skip
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": data})

    def _handle(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, StripeApiError(401, "Invalid API Key provided.").body, {}
        self.requests.append((method, path, params))
        for failure in self._failures:
            if failure.times > 0 and failure.method == method and path.startswith(failure.path):
                failure.times -= 1
                if failure.after:
                    self._respond(method, path, params, headers)
                if failure.status >= 500:
                    error = StripeApiError(failure.status, "Simulated API error.", type_="api_error")
                    return failure.status, error.body, {} if failure.should_retry else {"stripe-should-retry": "false"}
                error = StripeApiError(failure.status, "Simulated refusal.",
                                       type_="card_error" if failure.status == 402 else "invalid_request_error",
                                       code=failure.code)  # fmt: skip
                return failure.status, error.body, {}
        return self._respond(method, path, params, headers)

    def _respond(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = headers.get("idempotency-key") if method == "POST" else None
        if key is not None and key in self._idempotent:
            first_path, first_params, status, payload = self._idempotent[key]
            if (first_path, first_params) != (path, params):
                message = ("Keys for idempotent requests can only be used with the same parameters they were "
                           "first used with.")  # fmt: skip
                return 400, StripeApiError(400, message, type_="idempotency_error").body, {}
            return status, payload, {"idempotent-replayed": "true"}
        try:
            status, payload = 200, self._route(method, path, params)
        except StripeApiError as exc:
            status, payload = exc.status, exc.body
        if key is not None:
            self._idempotent[key] = (path, params, status, json.loads(json.dumps(payload)))
        return status, payload, {}

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            return self._create_session(params)
        if (method, path) == ("GET", "/v1/checkout/sessions"):
            found = [s for s in self.sessions.values()
                     if params.get("payment_intent") in (None, s["payment_intent"])]  # fmt: skip
            limit = _int(params, "limit", required=False) or 10
            return {"object": "list", "data": found[:limit], "has_more": len(found) > limit,
                    "url": "/v1/checkout/sessions"}  # fmt: skip
        match = re.fullmatch(r"/v1/checkout/sessions/([^/]+)(/expire)?", path)
        if match:
            session = self.sessions.get(match.group(1))
            if session is None:
                raise StripeApiError(404, f"No such checkout.session: '{match.group(1)}'", code="resource_missing",
                                     param="session")  # fmt: skip
            if method == "POST" and match.group(2):
                if session["status"] != "open":
                    raise StripeApiError(400, 'Only Checkout Sessions with a status in ["open"] can be expired.')
                self.expire(session["id"])
                return session
            if method == "GET" and not match.group(2):
                return session
        if (method, path) == ("POST", "/v1/refunds"):
            payment_intent = params.get("payment_intent")
            charge = self.charges.get(payment_intent) if isinstance(payment_intent, str) else None
            if charge is None:
                raise StripeApiError(404, f"No such payment_intent: '{payment_intent}'", code="resource_missing",
                                     param="payment_intent")  # fmt: skip
            amount = _int(params, "amount", required=False)
            return self._refund(charge, amount if amount is not None else charge["amount"] - charge["amount_refunded"],
                                params)  # fmt: skip
        match = re.fullmatch(r"/v1/refunds/([^/]+)", path)
        if match and method == "GET" and match.group(1) in self.refunds:
            return self.refunds[match.group(1)]
        raise StripeApiError(404, f"Unrecognized request URL ({method}: {path}).")

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise StripeApiError(400, "This simulator only supports mode=payment.", param="mode")
        for name in ("success_url", "cancel_url"):
            if not str(params.get(name, "")).startswith(("http://", "https://")):
                raise StripeApiError(400, f"Not a valid URL: {name}", code="url_invalid", param=name)
        line_items = params.get("line_items")
        if not isinstance(line_items, list) or not line_items:
            raise StripeApiError(400, "Missing required param: line_items.", code="parameter_missing",
                                 param="line_items")  # fmt: skip
        total, currencies = 0, set()
        for index, item in enumerate(line_items):
            price = item.get("price_data") or {}
            if not (price.get("product_data") or {}).get("name"):
                raise StripeApiError(400, "Missing required param: line_items[0][price_data][product_data][name].",
                                     code="parameter_missing")  # fmt: skip
            unit = _int(price, "unit_amount")
            quantity = _int(item, "quantity")
            assert unit is not None and quantity is not None
            if unit < 0 or quantity < 1:
                raise StripeApiError(400, "Invalid amount.", param=f"line_items[{index}]")
            total += unit * quantity
            currencies.add(price.get("currency"))
        if len(currencies) != 1:
            raise StripeApiError(400, "All line items must use the same currency.", param="line_items")
        session_id = f"cs_test_{secrets.token_hex(16)}"
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": params["cancel_url"],
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currencies.pop(),
            "customer_email": params.get("customer_email"),
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "url": f"{self.base_url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session
