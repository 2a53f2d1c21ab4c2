"""The OpenAI Batch API: ``/v1/files`` (upload with ``purpose: "batch"``, list, retrieve, delete),
``GET /v1/files/{id}/content``, and
``/v1/batches`` (create, list, retrieve, cancel), in OpenAI's shapes so that OpenAI's clients work unchanged.
(``GET /v1/files/{key}`` with a signed URL, for task outputs, is ``api.routes.files``; it hands
``file-…/content`` to ``file_content_response``.)"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.contract import raises, reads
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.batches import FILE_PREFIX, public_id
from shared.batches.batches import cancel_batch, create_batch, get_batch, list_batches, public_batch
from shared.batches.files import (
    FileRecord,
    delete_file,
    file_content,
    get_file,
    list_files,
    public_file,
    upload_file,
)
from shared.infra.errors import Conflict, InvalidInput, NotFound, UnsupportedMediaType
from shared.services import Services


class FileObject(msgspec.Struct):
    id: str
    object: str
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: str
    status: str
    status_details: str | None


class FileList(msgspec.Struct):
    object: str
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(msgspec.Struct):
    id: str
    object: str
    deleted: bool


class RequestCounts(msgspec.Struct):
    total: int
    completed: int
    failed: int


class BatchError(msgspec.Struct):
    code: str
    message: str
    param: str | None
    line: int | None


class BatchErrors(msgspec.Struct):
    object: str
    data: list[BatchError]


class BatchObject(msgspec.Struct):
    id: str
    object: str
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, str] | None


class BatchList(msgspec.Struct):
    object: str
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class CreateBatchBody(msgspec.Struct, forbid_unknown_fields=True):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None = None


def _batch(shape: dict[str, Any]) -> BatchObject:
    return msgspec.convert(shape, BatchObject)


class FileForm(msgspec.Struct):
    """``POST /v1/files``: the ``file`` part (JSONL, one request per line) and its ``purpose``."""

    purpose: str


class OpenAIFileController(Controller):
    path = "/v1/files"
    tags = ["openai"]
    dependencies = {"principal": Provide(provide_principal)}
    opt = requires("tasks.run")

    @post("/", operation_id="createFile", status_code=200)
    @reads(FileForm, files=("file",), required_files=("file",), multipart_only=True)
    async def upload(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, services: ServicesDep
    ) -> FileObject:
        """A file for a batch: multipart ``file`` (JSONL, one request per line) and ``purpose`` (``batch``)."""
        if request.content_type[0] != "multipart/form-data":
            raise UnsupportedMediaType("send the file as multipart/form-data with a purpose field")
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file is required (the JSONL file, as a multipart file part)", param="file")
        if not isinstance(purpose, str):
            raise InvalidInput('purpose is required ("batch")', param="purpose")
        data = await upload.read()
        await upload.close()
        file = await upload_file(
            services.db, services.storage, principal.account_id,
            purpose=purpose, filename=upload.filename or "", data=data,
        )  # fmt: skip
        return _file(file, services)

    @get("/", operation_id="listFiles", opt=requires("tasks.read"))
    async def list(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        purpose: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 10_000,
        after: FromQuery[str | None] = None,
        order: FromQuery[str] = "desc",
    ) -> FileList:
        """Your files (``purpose``: ``batch`` or ``batch_output``), newest first (``order``: ``asc`` for oldest
        first; ``after``: the last id of the previous page)."""
        files, more = await list_files(services.db, principal.account_id, purpose=purpose, limit=limit, after=after,
                                       order=order)  # fmt: skip
        shown = [_file(file, services) for file in files]
        first, last = (shown[0].id, shown[-1].id) if shown else (None, None)
        return FileList("list", shown, first, last, more)

    @delete("/{file_id:str}", operation_id="deleteFile", status_code=200)
    @raises((NotFound, "file_not_found"))
    async def delete(self, principal: PrincipalDep, services: ServicesDep, file_id: FromPath[str]) -> FileDeleted:
        """Delete a file: its bytes are gone; batches that name it keep their results."""
        file = await delete_file(services.db, services.storage, principal.account_id, _file_id(file_id))
        return FileDeleted(id=public_id(FILE_PREFIX, file.id), object="file", deleted=True)


def _file_id(value: str) -> str:
    """The path parameter as the id it names: next to ``/v1/files/{key:path}`` (``api.routes.files``), Litestar
    hands it over with the leading slash of a path parameter."""
    return value.lstrip("/")


def _file(file: FileRecord, services: Services) -> FileObject:
    return msgspec.convert(public_file(file, services.settings.batches.file_retention_s), FileObject)


async def file_content_response(request: Request[Any, Any, Any], services: Services, file_id: str) -> Response[bytes]:
    """``GET /v1/files/{file_id}/content``: the bytes of an uploaded batch input, or of a batch's output or error
    file (JSONL), for its owner. Routed by ``api.routes.files``, whose path route takes every ``/v1/files/…``."""
    principal = await provide_principal(request, services)
    file = await get_file(services.db, principal.account_id, file_id)
    return Response(await file_content(services.storage, file), media_type="application/octet-stream")


async def file_object_response(request: Request[Any, Any, Any], services: Services, file_id: str) -> Response[bytes]:
    """``GET /v1/files/{file_id}``: OpenAI's file object, for its owner (routed like ``file_content_response``)."""
    principal = await provide_principal(request, services)
    file = _file(await get_file(services.db, principal.account_id, file_id), services)
    return Response(msgspec.json.encode(file), media_type="application/json")


class BatchController(Controller):
    path = "/v1/batches"
    tags = ["openai"]
    dependencies = {"principal": Provide(provide_principal)}
    opt = requires("tasks.read")

    @post("/", operation_id="createBatch", status_code=200, opt=requires("tasks.run"))
    @raises((NotFound, "file_not_found"))
    async def create(
        self, data: JSONBody[CreateBatchBody], principal: PrincipalDep, services: ServicesDep
    ) -> BatchObject:
        """Run every request of an uploaded JSONL file as batch work, at the models' batch discount."""
        batch = await create_batch(
            services.db, services.queue, services.storage, services.settings.batches, principal,
            input_file_id=data.input_file_id, endpoint=data.endpoint, completion_window=data.completion_window,
            metadata=data.metadata,
        )  # fmt: skip
        return _batch(public_batch(batch))

    @get("/", operation_id="listBatches")
    async def list(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
    ) -> BatchList:
        """Your batches, newest first (``after``: the last id of the previous page)."""
        batches, more = await list_batches(services.db, principal.account_id, limit=limit, after=after)
        shown = [_batch(public_batch(batch)) for batch in batches]
        first, last = (shown[0].id, shown[-1].id) if shown else (None, None)
        return BatchList("list", shown, first, last, more)

    @get("/{batch_id:str}", operation_id="getBatch")
    @raises((NotFound, "batch_not_found"))
    async def retrieve(self, principal: PrincipalDep, services: ServicesDep, batch_id: FromPath[str]) -> BatchObject:
        return _batch(public_batch(await get_batch(services.db, principal.account_id, batch_id)))

    @post("/{batch_id:str}/cancel", operation_id="cancelBatch", status_code=200, opt=requires("tasks.run"))
    @raises((NotFound, "batch_not_found"), (Conflict, "batch_not_cancelable"))
    async def cancel(self, principal: PrincipalDep, services: ServicesDep, batch_id: FromPath[str]) -> BatchObject:
        """Stop the lines that have not started; the batch ends ``cancelled`` with what did run."""
        batch = await cancel_batch(services.db, services.queue, principal.account_id, batch_id)
        return _batch(public_batch(batch))


def batch_router(file_max_bytes: int) -> Router:
    """The Batch API's routes, with a body limit that fits an input file (above ``MAX_BODY_BYTES``)."""
    return Router(
        path="/", route_handlers=[OpenAIFileController, BatchController], request_max_body_size=file_max_bytes
    )
