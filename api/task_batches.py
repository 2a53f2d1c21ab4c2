"""The answer of ``POST /v1/tasks/batch``: one item per submitted body, in order, with its task or its error."""

from __future__ import annotations

import msgspec
from litestar import Response

from api.errors import domain_status
from shared.infra.storage import UrlSigner
from shared.tasks.batch import BatchItemResult
from shared.tasks.views import Task, public_task


class BatchItemError(msgspec.Struct):
    type: str
    code: str
    message: str
    param: str | None


class BatchItem(msgspec.Struct):
    """``status``: 202 for a task created, 200 for an idempotent replay, else the error's HTTP status."""

    index: int
    status: int
    task: Task | None = None
    error: BatchItemError | None = None


class BatchSubmitResult(msgspec.Struct):
    data: list[BatchItem]
    created: int
    failed: int
    object: str = "list"


def batch_response(results: list[BatchItemResult], signer: UrlSigner) -> Response[BatchSubmitResult]:
    """202 when every item has its task, 207 (per-item outcomes) when some were refused."""
    items = []
    for index, result in enumerate(results):
        if result.error is not None:
            status, type_ = domain_status(result.error)
            error = BatchItemError(type_, result.error.code, result.error.message, result.error.param)
            items.append(BatchItem(index, status, error=error))
        elif result.task is not None:
            items.append(BatchItem(index, 202 if result.created else 200, task=public_task(result.task, signer)))
    failed = sum(1 for item in items if item.error is not None)
    created = sum(1 for item in items if item.status == 202)
    return Response(BatchSubmitResult(items, created, failed), status_code=207 if failed else 202)
