"""Billing fixtures: a simulated Stripe, and an API server and worker configured to use it.

The suite's main API server runs without Stripe keys (billing answers 503 there); these tests get their
own server, on its own port, whose settings point at the simulator, and their own worker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.billing.events import process_event
from shared.billing.stripe_gateway import StripeGateway
from shared.infra.db import Database
from shared.infra.ids import uuid7
from shared.ledger import NewHold, place_hold, post_hold
from shared.services import Services
from shared.settings import Settings
from tests.conftest import TestAccount
from tests.harness import ApiServer, InProcessWorker, free_port, wait_for
from tests.simulators.stripe import StripeSimulator

STRIPE_KEY = "sk_test_conduit_simulated"
WEBHOOK_SECRET = "whsec_conduit_simulated"
C = 1_000_000  # one credit in micro-credits


@pytest.fixture(scope="session")
async def stripe_sim() -> AsyncIterator[StripeSimulator]:
    async with StripeSimulator(api_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET, port=free_port()) as sim:
        yield sim


@pytest.fixture(scope="session")
def billing_settings(env: dict[str, str], stripe_sim: StripeSimulator) -> Settings:
    port = free_port()
    return Settings.from_env(
        {
            **env,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": stripe_sim.base_url,
        }
    )


@pytest.fixture(scope="session")
async def billing_api(services: Services, billing_settings: Settings) -> AsyncIterator[ApiServer]:
    async with ApiServer(billing_settings) as server:
        yield server


@pytest.fixture(scope="session")
async def gateway(billing_settings: Settings) -> AsyncIterator[StripeGateway]:
    """For calling billing services directly (sweeps), as a worker would."""
    stripe = StripeGateway(billing_settings)
    try:
        yield stripe
    finally:
        await stripe.close()


@pytest.fixture
async def billing_worker(services: Services, billing_settings: Settings) -> AsyncIterator[InProcessWorker]:
    await services.redis.flushdb()
    async with InProcessWorker(billing_settings) as running:
        yield running


@dataclass
class Shop:
    """A buyer's view of the billing API, plus Stripe's side through the simulator."""

    http: httpx.AsyncClient
    sim: StripeSimulator
    db: Database
    gateway: StripeGateway

    @property
    def webhook_url(self) -> str:
        return f"{self.http.base_url}/v1/billing/stripe/webhook"

    async def checkout(self, account: TestAccount, product_id: str = "starter") -> tuple[str, str]:
        """Start a checkout; returns (order id, Checkout Session id)."""
        response = await self.http.post("/v1/billing/checkout", json={"product_id": product_id},
                                        headers=account.headers)  # fmt: skip
        assert response.status_code == 201, response.text
        order = response.json()["order"]
        session_id = await self.db.fetchval(
            "SELECT checkout_session_id FROM billing_orders WHERE id = $1", uuid.UUID(order["id"])
        )
        return order["id"], session_id

    async def deliver(self, event: dict[str, Any], **kwargs: Any) -> httpx.Response:
        response = await self.sim.deliver(self.webhook_url, event, **kwargs)
        return response

    async def order(self, account: TestAccount, order_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/billing/orders/{order_id}", headers=account.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_event(self, event: dict[str, Any], timeout: float = 30) -> str:
        """Wait until the worker has dealt with a delivered event; returns its final status."""

        async def done() -> str | None:
            status = await self.db.fetchval("SELECT status FROM stripe_events WHERE event_id = $1", event["id"])
            return status if status in ("processed", "ignored", "failed") else None

        status: str = await wait_for(done, timeout=timeout, what=f"Stripe event {event['type']} to be processed")
        return status

    async def process(self, event: dict[str, Any]) -> str:
        """Process a delivered event right here, as the worker job would (for tests without a worker)."""
        row_id = await self.db.fetchval("SELECT id FROM stripe_events WHERE event_id = $1", event["id"])
        assert row_id is not None, "the event was not stored"
        return await process_event(self.db, self.gateway, row_id)

    async def buy(self, account: TestAccount, product_id: str = "starter", *, worker: bool = False) -> str:
        """A complete purchase: checkout, payment, event delivered and processed. Returns the order id."""
        order_id, session_id = await self.checkout(account, product_id)
        event = self.sim.pay(session_id)
        assert (await self.deliver(event)).status_code == 200
        if worker:
            assert await self.wait_event(event) == "processed"
        else:
            assert await self.process(event) == "processed"
        return order_id

    async def payment_intent(self, order_id: str) -> str:
        pi: str = await self.db.fetchval(
            "SELECT payment_intent_id FROM billing_orders WHERE id = $1", uuid.UUID(order_id)
        )
        return pi


@pytest.fixture
async def shop(
    billing_api: ApiServer, stripe_sim: StripeSimulator, services: Services, gateway: StripeGateway
) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=billing_api.base_url, timeout=60) as http:
        yield Shop(http=http, sim=stripe_sim, db=services.db, gateway=gateway)


async def hold(db: Database, account_id: uuid.UUID, amount: int) -> uuid.UUID:
    """A task holding ``amount`` micro-credits, as if a worker were running it (its lease keeps the sweeps
    away); ``settle`` finishes it. The ledger's own path, without a provider."""
    task_id = uuid7()
    async with db.transaction() as conn:
        await conn.execute(
            """
            INSERT INTO tasks (id, account_id, model, kind, status, credits_held, deadline_at, started_at,
                               lease_expires_at)
            VALUES ($1, $2, 'sdxl', 'image', 'running', $3, now() + interval '1 hour', now(),
                    now() + interval '1 hour')
            """,
            task_id,
            account_id,
            amount,
        )
        await place_hold(conn, NewHold(account_id=account_id, amount=amount, task_id=task_id))
    return task_id


async def settle(db: Database, task_id: uuid.UUID, charge: int) -> None:
    """Finish a task made by ``hold``: charge ``charge`` and release the rest, as the worker does."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE tasks SET status = 'succeeded', credits_charged = $2, completed_at = now() WHERE id = $1",
            task_id,
            charge,
        )
        await post_hold(conn, task_id=task_id, charge=charge)


async def spend(db: Database, account_id: uuid.UUID, amount: int) -> None:
    await settle(db, await hold(db, account_id, amount), amount)
