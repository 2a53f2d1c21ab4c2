"""A batch line is charged exactly once, whatever cuts its run short: its charge commits with its result, so a line
that runs again after a worker died mid-way is charged once, and the hold of the run that died is released."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import openai

from shared.accounts.keys import principal_of_key
from shared.batches import BATCH_PREFIX, parse_id
from shared.batches.runner import _record, _run_line, _start_line, batch_catalog, run_batch
from shared.ledger import void_abandoned_request_holds
from shared.ledger.invariants import check_ledger
from shared.openai_api import settlements
from shared.openai_api.chat_response import ChatCompletion
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.batches.helpers import OpenAIClients, batch_price, charged_micro, chat_line, jsonl
from tests.integration.helpers import balance
from worker.jobs.batches import batch_runtime


async def key_id(services: Services, account_id: uuid.UUID) -> uuid.UUID:
    found: uuid.UUID = await services.db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", account_id)
    return found


async def _one_line_batch(oai: openai.AsyncOpenAI, services: Services) -> tuple[uuid.UUID, uuid.UUID, dict]:
    uploaded = await oai.files.create(file=("one.jsonl", jsonl([chat_line("only", "hello there")])), purpose="batch")
    batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")  # fmt: skip
    batch_id = parse_id(BATCH_PREFIX, batch.id)
    assert batch_id is not None
    row = await services.db.fetchrow("SELECT id, body FROM openai_batch_lines WHERE batch_id = $1", batch_id)
    assert row is not None
    return batch_id, row["id"], json.loads(row["body"]) if isinstance(row["body"], str) else row["body"]


async def test_a_line_cut_off_after_its_upstream_answer_runs_again_and_is_charged_once(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, clients: OpenAIClients
) -> None:
    account = await make_account(credits="5")
    oai = clients(account)
    batch_id, line_id, body = await _one_line_batch(oai, services)
    rt = batch_runtime(services)
    principal = await principal_of_key(services.db, await key_id(services, account.id))

    # A worker starts the line, the upstream answers, the worker dies before the line's result is committed.
    assert await _start_line(services.db, batch_id, line_id)
    with settlements.collected() as charges:
        outcome = await _run_line(rt, batch_catalog(rt.catalog), principal, "/v1/chat/completions", body)
    assert outcome.response is not None and len(charges) == 1
    assert await charged_micro(services, account.id) == 0  # nothing charged without the result
    assert (await balance(client, account))[1] > 0  # its hold stays pending

    # The next run of the batch (the worker restarted) runs the line again: one charge, for the run recorded.
    assert await run_batch(rt, batch_id) is False
    done = await oai.batches.retrieve(f"{BATCH_PREFIX}{batch_id.hex}")
    assert done.status == "completed" and done.request_counts and done.request_counts.completed == 1
    [line] = [json.loads(text) for text in (await oai.files.content(done.output_file_id or "")).text.splitlines()]
    charge = batch_price(line["response"]["body"]["usage"])
    assert await charged_micro(services, account.id) == charge
    # The dead run's hold is released by the abandoned-hold sweep, uncharged.
    assert await void_abandoned_request_holds(services.db, older_than_s=0) >= 1  # other tests' too
    assert await balance(client, account) == (Decimal(5) - Decimal(charge) / 1_000_000, Decimal(0))
    usage = await services.db.fetch(
        "SELECT status, credits FROM usage_records WHERE account_id = $1 AND source = 'chat.completion' "
        "ORDER BY status",
        account.id,
    )
    assert [(row["status"], row["credits"]) for row in usage] == [("failed", 0), ("succeeded", charge)]
    assert await check_ledger(services.db) == []


async def test_a_line_recorded_by_another_run_is_not_charged_again(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, clients: OpenAIClients
) -> None:
    account = await make_account(credits="5")
    oai = clients(account)
    batch_id, line_id, body = await _one_line_batch(oai, services)
    rt = batch_runtime(services)
    principal = await principal_of_key(services.db, await key_id(services, account.id))
    catalog = batch_catalog(rt.catalog)

    assert await _start_line(services.db, batch_id, line_id)
    with settlements.collected() as first_charges:
        first = await _run_line(rt, catalog, principal, "/v1/chat/completions", body)
    with settlements.collected() as second_charges:  # a second run of the same line, at the same time
        second = await _run_line(rt, catalog, principal, "/v1/chat/completions", body)
    await _record(services.db, batch_id, line_id, "only", first, first_charges)
    await _record(services.db, batch_id, line_id, "only", second, second_charges)

    assert isinstance(first.response, ChatCompletion)
    charge = batch_price(first.response.usage)
    assert await charged_micro(services, account.id) == charge  # the second run's hold went back
    assert await balance(client, account) == (Decimal(5) - Decimal(charge) / 1_000_000, Decimal(0))
    counts = await services.db.fetchrow("SELECT completed, failed FROM openai_batches WHERE id = $1", batch_id)
    assert counts is not None and (counts["completed"], counts["failed"]) == (1, 0)
    assert await check_ledger(services.db) == []
