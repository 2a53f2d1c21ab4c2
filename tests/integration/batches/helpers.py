"""Helpers of the batch tests: the official client per account, JSONL request lines, prices at the discount."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import openai
import pytest

from shared.services import Services
from tests.harness import ApiServer, wait_for
from tests.integration.openai_helpers import async_client

if TYPE_CHECKING:
    from tests.conftest import TestAccount

OpenAIClients = Callable[["TestAccount"], openai.AsyncOpenAI]


@pytest.fixture
async def clients(api: ApiServer) -> AsyncIterator[OpenAIClients]:
    """The official async client for an account, closed after the test."""
    made: list[openai.AsyncOpenAI] = []

    def make(account: TestAccount) -> openai.AsyncOpenAI:
        made.append(async_client(api, account))
        return made[-1]

    yield make
    for client in made:
        await client.close()


def chat_line(custom_id: str, content: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "test-up-chat", "messages": [{"role": "user", "content": content}], "max_tokens": 50, **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def finished(oai: openai.AsyncOpenAI, batch_id: str, timeout: float = 60) -> Any:
    async def done() -> Any:
        batch = await oai.batches.retrieve(batch_id)
        return batch if batch.status in ("completed", "failed", "cancelled", "expired") else None

    return await wait_for(done, timeout=timeout, interval=0.2, what=f"batch {batch_id} to finish")


def batch_price(usage: dict[str, int]) -> int:
    """Micro-credits of a test-up-chat line at the default 50% batch discount (1,000 / 2,000 micro-credits per
    input / output token at full price), rounded up as every charge is."""
    exact = Fraction(usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) * Fraction(1, 2)
    return -((-exact.numerator) // exact.denominator)


async def charged_micro(services: Services, account_id: uuid.UUID) -> int:
    total: int = await services.db.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'", account_id
    )
    return total
