"""Helpers for tests that use the official ``openai`` package against a running Conduit."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import openai

from shared.infra.db import from_json
from shared.openai_api import settlements
from tests.conftest import TestAccount
from tests.harness import ApiServer


def sync_client(api: ApiServer, account: TestAccount | None = None, key: str | None = None) -> openai.OpenAI:
    """The sync client: call it through ``asyncio.to_thread`` (the API runs on the test's event loop)."""
    return openai.OpenAI(base_url=f"{api.base_url}/v1", api_key=key or (account.key if account else ""), max_retries=0)


def async_client(api: ApiServer, account: TestAccount | None = None, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{api.base_url}/v1", api_key=key or (account.key if account else ""), max_retries=0
    )


def token_cost(
    prompt_tokens: int, completion_tokens: int, input_per_token: int = 1000, output_per_token: int = 2000
) -> Decimal:
    """Credits for a completion on the test models (1000 / 2000 credits per 1M tokens: micro-credits per token)."""
    return Decimal(prompt_tokens * input_per_token + completion_tokens * output_per_token) / 1_000_000


async def usage_records(api: ApiServer, account_id: uuid.UUID) -> list[dict[str, Any]]:
    """The account's usage records, oldest first. Chat completions are answered before they settle; like the
    API's own reads, these read once the account's settlements in the API process ``api`` are done."""
    await settlements.settled(api.services.background, account_id)
    rows = await api.services.db.fetch(
        """
        SELECT source, status, model, provider, kind, units, credits, latency_ms, request_id, task_id
        FROM usage_records WHERE account_id = $1 ORDER BY id
        """,
        account_id,
    )
    return [{**dict(row), "units": from_json(row["units"])} for row in rows]


async def charges(api: ApiServer, account_id: uuid.UUID) -> list[int]:
    """The amounts of the account's ledger charge entries, oldest first (settled, as ``usage_records``)."""
    await settlements.settled(api.services.background, account_id)
    rows = await api.services.db.fetch(
        "SELECT amount FROM ledger_entries WHERE account_id = $1 AND kind = 'charge' ORDER BY id", account_id
    )
    return [row["amount"] for row in rows]
