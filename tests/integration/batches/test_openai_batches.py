"""The OpenAI Batch API through the official ``openai`` client: upload JSONL, create, poll to completed, download
the output and error files; every line charged exactly at the batch discount; cancelling; refusals."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import openai
import pytest

from shared.batches import BATCH_PREFIX, parse_id
from shared.batches.batches import requeue_batches
from shared.infra import jobs
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker, wait_for
from tests.integration.batches.helpers import OpenAIClients, batch_price, charged_micro, chat_line, finished, jsonl
from tests.integration.helpers import balance
from tests.simulators import Simulators


async def test_a_batch_runs_end_to_end_with_the_official_client_at_half_price(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, services: Services,
    clients: OpenAIClients,
) -> None:  # fmt: skip
    account = await make_account(credits="10")
    oai = clients(account)
    lines = [chat_line(f"req-{n}", f"Tell me about lighthouse number {n}") for n in range(3)]
    lines.append(chat_line("bad", "too hot", temperature=7))  # refused like the request would be
    uploaded = await oai.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.object == "file" and uploaded.purpose == "batch" and uploaded.id.startswith("file-")
    assert uploaded.bytes == len(jsonl(lines)) and uploaded.filename == "requests.jsonl"

    created = await oai.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"purpose": "nightly"},
    )  # fmt: skip
    assert created.status == "in_progress" and created.id.startswith("batch_")
    assert created.request_counts is not None and created.request_counts.total == 4
    assert created.metadata == {"purpose": "nightly"}

    done = await finished(oai, created.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    assert done.completed_at and done.finalizing_at and done.output_file_id and done.error_file_id

    output = [json.loads(line) for line in (await oai.files.content(done.output_file_id)).text.splitlines()]
    assert [line["custom_id"] for line in output] == ["req-0", "req-1", "req-2"]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in output)
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in output)
    [error] = [json.loads(line) for line in (await oai.files.content(done.error_file_id)).text.splitlines()]
    assert error["custom_id"] == "bad" and error["response"] is None and error["error"]["code"] == "invalid_input"

    # Each line charged what its usage costs at half price, once; nothing stays held.
    expected = sum(batch_price(line["response"]["body"]["usage"]) for line in output)
    assert expected > 0 and await charged_micro(services, account.id) == expected
    assert await balance(client, account) == (Decimal(10) - Decimal(expected) / 1_000_000, Decimal(0))

    listed = await oai.batches.list(limit=5)
    assert [batch.id for batch in listed.data] == [created.id]
    with pytest.raises(openai.ConflictError):
        await oai.batches.cancel(created.id)  # finished already
    # the uploaded input is readable back, byte for byte
    assert (await oai.files.content(uploaded.id)).content == jsonl(lines)


async def test_cancelling_a_batch_stops_the_lines_not_started_and_holds_nothing(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, services: Services,
    sims: Simulators, clients: OpenAIClients,
) -> None:  # fmt: skip
    sims.openai.latency_s = 1.0  # each line takes a second upstream
    account = await make_account(credits="10")
    oai = clients(account)
    lines = [chat_line(f"req-{n}", f"line {n}") for n in range(12)]
    uploaded = await oai.files.create(file=("slow.jsonl", jsonl(lines)), purpose="batch")
    batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")  # fmt: skip

    async def in_flight() -> bool:
        return (await balance(client, account))[1] > 0  # some line holds its worst case: it is running

    await wait_for(in_flight, timeout=30, what="a line to run")
    cancelling = await oai.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    done = await finished(oai, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts is not None
    ran = done.request_counts.completed
    assert 1 <= ran < 12 and done.request_counts.failed == 0
    output = [json.loads(line) for line in (await oai.files.content(done.output_file_id or "")).text.splitlines()]
    assert len(output) == ran
    assert await charged_micro(services, account.id) == sum(batch_price(o["response"]["body"]["usage"]) for o in output)
    assert (await balance(client, account))[1] == 0  # nothing held for what did not run


async def test_refusals_in_openai_shapes(make_account: AccountFactory, clients: OpenAIClients) -> None:
    owner, stranger = await make_account(credits="5"), await make_account(credits="5")
    oai, theirs = clients(owner), clients(stranger)
    good = await oai.files.create(file=("ok.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.batches.create(input_file_id=good.id, endpoint="/v1/images/generations", completion_window="24h")
    assert refused.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        await oai.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):  # another account's file
        await theirs.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        await theirs.files.content(good.id)
    with pytest.raises(openai.BadRequestError):
        await oai.files.create(file=("notes.txt", b"hello"), purpose="batch")

    # Invalid lines: the batch fails at once with OpenAI's errors (line numbers 1-based) and runs nothing.
    duplicate = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "test-up-chat"}}
    mixed = [chat_line("a", "hi"), duplicate, {"custom_id": "c", "method": "GET", "url": "/v1/chat/completions"}]
    uploaded = await oai.files.create(file=("mixed.jsonl", jsonl(mixed) + b"not json\n"), purpose="batch")
    failed = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")  # fmt: skip
    assert failed.status == "failed" and failed.failed_at and failed.errors is not None
    assert [(e.code, e.line) for e in failed.errors.data or []] == [
        ("duplicate_custom_id", 2), ("invalid_method", 3), ("invalid_json_line", 4),
    ]  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        await theirs.batches.retrieve(failed.id)
    with pytest.raises(openai.NotFoundError):
        await oai.batches.retrieve("batch_nope")
    assert (await theirs.batches.list()).data == []


async def test_a_batch_whose_job_was_lost_is_handed_over_again_by_the_sweep(
    make_account: AccountFactory, services: Services, clients: OpenAIClients
) -> None:
    account = await make_account(credits="5")
    oai = clients(account)
    uploaded = await oai.files.create(file=("one.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")  # fmt: skip
    job_id = f"{jobs.RUN_OPENAI_BATCH}:{parse_id(BATCH_PREFIX, batch.id)}"
    assert await services.redis.zscore(jobs.BATCH_QUEUE, job_id) is not None  # no worker here: it waits
    await services.redis.flushdb()  # Redis lost it
    assert await requeue_batches(services.db, services.queue) >= 1
    assert await services.redis.zscore(jobs.BATCH_QUEUE, job_id) is not None
    assert await requeue_batches(services.db, services.queue) == 0  # queued already: nothing doubled
    await oai.batches.cancel(batch.id)
    await services.db.execute(
        "UPDATE openai_batches SET status = 'cancelled', cancelled_at = now() WHERE id = $1",
        parse_id(BATCH_PREFIX, batch.id),
    )
    await services.redis.flushdb()


async def test_a_batch_past_its_window_expires_with_what_ran(
    make_account: AccountFactory, services: Services, settings: Settings, clients: OpenAIClients
) -> None:
    """No worker while the batch waits; its window closes; Redis loses its job. A worker then starts: its sweep
    hands the job over again and the batch ends expired, nothing run, nothing charged."""
    account = await make_account(credits="5")
    oai = clients(account)
    uploaded = await oai.files.create(file=("late.jsonl", jsonl([chat_line("a", "hi"), chat_line("b", "yo")])),
                                      purpose="batch")  # fmt: skip
    batch = await oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")  # fmt: skip
    await services.db.execute(
        "UPDATE openai_batches SET expires_at = now() - interval '1 second' WHERE id = $1",
        parse_id(BATCH_PREFIX, batch.id),
    )
    await services.redis.flushdb()
    async with InProcessWorker(settings):
        done = await finished(oai, batch.id)
    assert done.status == "expired" and done.expired_at and done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (2, 0, 0)
    assert done.output_file_id is None and done.error_file_id is None
    assert await charged_micro(services, account.id) == 0
