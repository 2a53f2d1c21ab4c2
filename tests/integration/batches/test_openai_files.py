"""The Files API in OpenAI's shapes through the official client: list (by purpose, paged), retrieve, delete; files
expire after BATCH_FILE_RETENTION_S and the retention sweep deletes them; another account's file is a 404."""

from __future__ import annotations

import datetime as dt

import openai
import pytest

from shared.batches import FILE_PREFIX, parse_id
from shared.batches.files import erase_batch_data, purge_expired_files
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.batches.helpers import OpenAIClients, chat_line, finished, jsonl


async def _stored(services: Services, file_id: str) -> bool:
    """Whether the file's bytes are still in storage."""
    key = await services.db.fetchval(
        "SELECT storage_key FROM openai_files WHERE id = $1", parse_id(FILE_PREFIX, file_id)
    )
    return bool(services.storage.path(key).is_file())


async def test_files_are_listed_retrieved_and_deleted_in_openai_shapes(
    make_account: AccountFactory, services: Services, settings: Settings, worker: InProcessWorker,
    clients: OpenAIClients,
) -> None:  # fmt: skip
    owner, stranger = await make_account(credits="5"), await make_account(credits="5")
    oai, theirs = clients(owner), clients(stranger)
    first = await oai.files.create(file=("first.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    second = await oai.files.create(file=("second.jsonl", jsonl([chat_line("b", "hey")])), purpose="batch")
    batch = await oai.batches.create(input_file_id=second.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = await finished(oai, batch.id)
    assert done.status == "completed" and done.output_file_id

    listed = await oai.files.list()
    assert [f.id for f in listed.data] == [done.output_file_id, second.id, first.id]  # newest first
    assert [f.purpose for f in listed.data] == ["batch_output", "batch", "batch"]
    assert [f.id for f in (await oai.files.list(purpose="batch")).data] == [second.id, first.id]
    assert [f.id for f in (await oai.files.list(purpose="batch_output")).data] == [done.output_file_id]
    assert [f.id for f in (await oai.files.list(order="asc")).data] == [first.id, second.id, done.output_file_id]
    page = await oai.files.list(limit=2)
    assert [f.id for f in page.data] == [done.output_file_id, second.id] and page.has_next_page()
    assert [f.id for f in (await page.get_next_page()).data] == [first.id]
    assert [f.id async for f in await oai.files.list(limit=1)] == [done.output_file_id, second.id, first.id]
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.files.list(purpose="fine-tune")
    assert refused.value.body["param"] == "purpose"  # type: ignore[index]

    got = await oai.files.retrieve(first.id)
    assert (got.id, got.object, got.filename, got.purpose, got.bytes) == (first.id, "file", "first.jsonl", "batch",
                                                                          first.bytes)  # fmt: skip
    assert got.expires_at == got.created_at + settings.batches.file_retention_s == got.created_at + 30 * 86_400

    # Another account sees none of them.
    assert (await theirs.files.list()).data == []
    for call in (theirs.files.retrieve, theirs.files.delete, theirs.files.content):
        with pytest.raises(openai.NotFoundError):
            await call(first.id)

    deleted = await oai.files.delete(first.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "file", True)
    assert not await _stored(services, first.id)
    for call in (oai.files.retrieve, oai.files.delete, oai.files.content):
        with pytest.raises(openai.NotFoundError):
            await call(first.id)
    assert [f.id for f in (await oai.files.list()).data] == [done.output_file_id, second.id]
    # The batch made from a file keeps its results when the file goes.
    await oai.files.delete(second.id)
    assert (await oai.batches.retrieve(batch.id)).status == "completed"
    assert (await oai.files.content(done.output_file_id)).text.count("\n") == 1


async def test_the_retention_sweep_and_account_erasure_delete_files(
    make_account: AccountFactory, services: Services, settings: Settings, clients: OpenAIClients
) -> None:
    account = await make_account(credits="5")
    oai = clients(account)
    old = await oai.files.create(file=("old.jsonl", jsonl([chat_line("a", "hi")])), purpose="batch")
    new = await oai.files.create(file=("new.jsonl", jsonl([chat_line("b", "yo")])), purpose="batch")
    retention = settings.batches.file_retention_s
    await services.db.execute(
        "UPDATE openai_files SET created_at = $2 WHERE id = $1",
        parse_id(FILE_PREFIX, old.id),
        dt.datetime.now(dt.UTC) - dt.timedelta(seconds=retention + 1),
    )
    assert await purge_expired_files(services.db, services.storage, retention_s=retention) == 1
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(old.id)
    assert not await _stored(services, old.id) and await _stored(services, new.id)
    assert [f.id for f in (await oai.files.list()).data] == [new.id]
    assert await purge_expired_files(services.db, services.storage, retention_s=retention) == 0

    # Erasing the account's batch data (as deleting the account does) deletes every file and every batch's lines.
    batch = await oai.batches.create(input_file_id=new.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert await erase_batch_data(services.db, services.storage, account.id) == 1
    assert not await _stored(services, new.id)
    assert (await oai.files.list()).data == []
    erased = await oai.batches.retrieve(batch.id)
    assert erased.status == "cancelled" and erased.metadata is None
    lines = await services.db.fetchval(
        "SELECT count(*) FROM openai_batch_lines WHERE batch_id = $1", parse_id("batch_", batch.id)
    )
    assert lines == 0
    await services.redis.flushdb()  # its job: nothing to run
