"""The money of one synchronous OpenAI-compatible request (chat or legacy completion, embeddings): its hold before
the upstream call, its single settlement after, and the usage record of a request refused before anything was
held. Amounts come from ``shared.openai_api.pricing``; the statements are the ledger's
(``shared.ledger.request_holds``).

The settlement runs as a task of its own among the process's background tasks (``shared.openai_api.settlements``),
so the cancellation of the request that triggered it cannot interrupt it, and a plain answer goes out without
waiting for its commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.accounts.keys import Principal
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.infra.errors import InsufficientCredits
from shared.infra.ids import uuid7
from shared.ledger import Settlement
from shared.ledger.request_holds import (
    place_request_hold,
    record_refused_request,
    request_settlement,
    settle_request,
)
from shared.openai_api import settlements

log = logging.getLogger(__name__)

SETTLE_RETRY_PAUSES_S = (0.1, 0.5, 2.0)
_TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.DeadlockDetectedError, OSError)  # worth settling again


@dataclass(slots=True)
class RequestBill:
    """Who asked, which hold covers the request, and since when."""

    db: Database
    background: BackgroundTasks  # the process's, where settlements run
    principal: Principal
    source: str  # the usage record's source: chat.completion, text_completion, embedding
    kind: str  # the model kind: text, embedding
    hold_id: uuid.UUID
    hold: int
    started: float
    request_id: uuid.UUID

    def settle(
        self, *, charge: int, units: dict[str, Any], status: str, model: str, provider: str | None
    ) -> asyncio.Future[int | None]:
        """Charge ``charge`` (0 voids the hold; never more than the hold) and record the request, in a task of its
        own; returns that task (awaiting it is optional). Inside ``settlements.collected()`` the settlement is
        handed to the collector instead (the returned future answers None: nothing charged yet)."""
        into = settlements.collector()
        if into is not None:
            into.append(self._settlement(charge, units, status, model, provider))
            done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        settlement = _settle_retrying(self.db, self._settlement(charge, units, status, model, provider))
        return settlements.detach(self.background, settlement, self.principal.account_id)

    def _settlement(
        self, charge: int, units: dict[str, Any], status: str, model: str, provider: str | None
    ) -> Settlement:
        return request_settlement(
            hold_id=self.hold_id,
            request_id=self.request_id,
            principal=self.principal,
            charge=min(charge, self.hold),
            status=status,
            source=self.source,
            model=model,
            kind=self.kind,
            provider=provider,
            units=units,
            latency_ms=int((time.monotonic() - self.started) * 1000),
        )


async def open_bill(
    db: Database,
    background: BackgroundTasks,
    principal: Principal,
    amount: int,
    *,
    source: str,
    kind: str,
    model: str,
    started: float,
    request_id: uuid.UUID | None = None,
) -> RequestBill:
    """Hold ``amount`` for a request (``request_id``: the id its moderation step already named). Refused for want
    of credits while earlier requests of the account are still settling here: tried once more when they are done
    (their unused holds come back)."""
    description = f"{model} {source}"
    try:
        hold_id = await place_request_hold(db, principal, amount, description)
    except InsufficientCredits:
        if not await settlements.settled(background, principal.account_id):
            raise
        hold_id = await place_request_hold(db, principal, amount, description)
    return RequestBill(db, background, principal, source, kind, hold_id, amount, started, request_id or uuid7())


async def record_refusal(
    db: Database, principal: Principal, *, source: str, kind: str, model: str, started: float
) -> None:
    """The usage record of a request for a model the caller may use, refused before anything was held."""
    latency_ms = int((time.monotonic() - started) * 1000)
    await record_refused_request(db, principal=principal, source=source, model=model, kind=kind, latency_ms=latency_ms)


async def _settle_retrying(db: Database, settlement: Settlement) -> int | None:
    """``settle_request``, tried again after a lost connection or a deadlock (settling twice changes nothing).
    If it still fails the hold stays pending and the abandoned-hold sweep voids it: not charged, never twice.
    Never raises: nobody may be waiting for it (the answer went out), and a caller that is (a failed request)
    must answer with its own error."""
    for pause in (*SETTLE_RETRY_PAUSES_S, None):
        try:
            return await settle_request(db, settlement)
        except _TRANSIENT as exc:
            failure: Exception = exc
            if pause is not None:
                log.warning("settling request %s failed (%s); retrying", settlement.request_id, exc)
                await asyncio.sleep(pause)
                continue
        except Exception as exc:
            failure = exc
        break
    log.error("could not settle request %s (%s): the abandoned-hold sweep will void its hold",
              settlement.request_id, failure)  # fmt: skip
    return None
