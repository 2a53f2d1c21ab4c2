"""The one place that talks to Stripe (and the only module that imports ``stripe``).

A ``StripeClient`` per process, built from ``Settings`` (secret key, API base) when the process starts:
no global ``stripe.api_key``, nothing at import time. Calls are async (httpx). Stripe's errors are turned
into two outcomes the billing services act on:

* ``StripeUnavailable`` - the call may work later (network, 5xx, 429, a rejected key): retry it, with the
  same idempotency key;
* ``StripeRefused`` - Stripe answered and refused the request (4xx): retrying the same request is useless.

Objects come back as plain dicts in Stripe's wire format.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from shared.infra.errors import BillingUnavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_S = 300  # the stripe library's default: refuse replays of old deliveries


class StripeUnavailable(Exception):
    """Stripe could not be reached or failed; the same call (same idempotency key) may succeed later."""


class StripeRefused(Exception):
    """Stripe refused the request; ``message`` is Stripe's explanation (safe to show)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidSignature(Exception):
    """A webhook delivery whose ``Stripe-Signature`` does not verify."""


class _HttpxClient(stripe.HTTPXClient):
    """stripe's httpx client hands the encoded form to httpx as ``data=<str>``, which httpx 0.28 deprecates
    (a DeprecationWarning on every call); send it as ``content=`` (the same bytes on the wire)."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if data:
            kwargs["content"] = data
        return [args, kwargs]


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self.secret_key = settings.stripe_secret_key
        self.webhook_secret = settings.stripe_webhook_secret
        self.api_base = settings.stripe_api_base
        self._http: _HttpxClient | None = None
        self._client: stripe.StripeClient | None = None

    @property
    def configured(self) -> bool:
        return bool(self.secret_key)

    def _stripe(self) -> stripe.StripeClient:
        if not self.secret_key:
            raise BillingUnavailable("payments are not configured on this server (STRIPE_SECRET_KEY is unset)")
        if self._client is None:
            self._http = _HttpxClient(timeout=20)
            self._client = stripe.StripeClient(
                self.secret_key,
                base_addresses={"api": self.api_base},
                http_client=self._http,
                max_network_retries=2,
            )
        return self._client

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close_async()
            self._http = None
            self._client = None

    # -- webhooks -------------------------------------------------------------------------------------

    def verify_webhook(self, payload: bytes, signature: str | None) -> None:
        """Check ``Stripe-Signature`` against the raw body. Raises ``InvalidSignature``."""
        if not self.webhook_secret:
            raise BillingUnavailable("Stripe webhooks are not configured on this server (STRIPE_WEBHOOK_SECRET)")
        if not signature:
            raise InvalidSignature("missing Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), signature, self.webhook_secret, SIGNATURE_TOLERANCE_S
            )
        except UnicodeDecodeError as exc:
            raise InvalidSignature("the body is not UTF-8") from exc
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(str(exc.user_message or "signature verification failed")) from exc

    # -- API calls ------------------------------------------------------------------------------------

    async def create_checkout_session(self, params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        client = self._stripe()
        with _translated("create a Checkout Session"):
            session = await client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return session.to_dict()

    async def retrieve_checkout_session(self, session_id: str) -> dict[str, Any]:
        client = self._stripe()
        with _translated("retrieve a Checkout Session"):
            session = await client.v1.checkout.sessions.retrieve_async(session_id)
        return session.to_dict()

    async def find_checkout_session(self, payment_intent: str) -> dict[str, Any] | None:
        """The Checkout Session that created ``payment_intent``, if any."""
        client = self._stripe()
        with _translated("list Checkout Sessions"):
            page = await client.v1.checkout.sessions.list_async({"payment_intent": payment_intent, "limit": 1})
        return page.data[0].to_dict() if page.data else None

    async def expire_checkout_session(self, session_id: str) -> dict[str, Any]:
        client = self._stripe()
        with _translated("expire a Checkout Session"):
            session = await client.v1.checkout.sessions.expire_async(session_id)
        return session.to_dict()

    async def create_refund(self, params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        client = self._stripe()
        with _translated("create a refund"):
            refund = await client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        return refund.to_dict()


class _translated:
    """Context manager: stripe's exceptions -> ``StripeUnavailable`` / ``StripeRefused``."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return
        status = exc.http_status
        if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.AuthenticationError) or (
            status is None or status >= 500 or status in (401, 403, 409, 429)
        ):
            log.warning("Stripe: could not %s: %s (HTTP %s)", self.what, exc.user_message or exc, status)
            raise StripeUnavailable(f"could not {self.what}: the payment provider is unavailable") from exc
        log.info("Stripe refused to %s: %s (HTTP %s, %s)", self.what, exc.user_message, status, exc.code)
        raise StripeRefused(str(exc.user_message or "the payment provider refused the request"), exc.code) from exc
