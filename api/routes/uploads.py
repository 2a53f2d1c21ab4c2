"""/v1/uploads: files an account keeps to use as model inputs (``shared.media.uploads``).

``POST /v1/uploads`` takes ``multipart/form-data`` with one file part, ``file``; the answer (201) gives the
upload's id (``upl_…``, what a task's image or video parameter takes), a signed URL of the stored copy, the type
judged from the bytes, the size in bytes, the dimensions and the expiry. ``GET /v1/uploads`` lists the
account's live uploads (newest first, paginated), ``GET`` and ``DELETE /v1/uploads/{id}`` one of them; another
account's upload is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter

from api.contract import raises, reads
from api.deps import PrincipalDep, ServicesDep, provide_principal
from api.permissions import requires
from shared.infra.errors import InvalidInput, NotFound, UnsupportedMediaType
from shared.infra.pagination import PageEnvelope, page_envelope
from shared.infra.storage import UrlSigner
from shared.media import uploads
from shared.media.uploads import UploadRecord


class UploadView(msgspec.Struct):
    id: str
    object: str
    url: str
    content_type: str
    bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    created_at: dt.datetime
    expires_at: dt.datetime


class UploadForm(msgspec.Struct):
    """``POST /v1/uploads`` takes one file part, ``file``, and no other field."""


class UploadDeleted(msgspec.Struct):
    id: str
    object: str
    deleted: bool


def upload_view(upload: UploadRecord, signer: UrlSigner) -> UploadView:
    return UploadView(
        id=upload.public_id,
        object="upload",
        url=signer.url(upload.storage_key),
        content_type=upload.content_type,
        bytes=upload.size_bytes,
        width=upload.width,
        height=upload.height,
        duration_s=upload.duration_s,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
    )


async def read_one_file(request: Request[Any, Any, Any], name: str = "file") -> bytes:
    """The bytes of the one file part ``name`` of a multipart request (any other part is refused)."""
    if request.content_type[0] != "multipart/form-data":
        raise UnsupportedMediaType(f"send multipart/form-data with the file in a part named {name!r}")
    form = await request.form()
    found: list[bytes] = []
    for field, value in form.multi_items():
        if field != name:
            raise InvalidInput(f"unknown field {field!r}; send the file as {name!r}", param=field)
        if not isinstance(value, UploadFile):
            raise InvalidInput(f"{name} must be a file part", param=name)
        found.append(await value.read())
        await value.close()
    if len(found) != 1:
        raise InvalidInput(f"send exactly one file, in a part named {name!r}", param=name)
    return found[0]


class UploadController(Controller):
    path = "/v1/uploads"
    tags = ["uploads"]
    dependencies = {"principal": Provide(provide_principal)}
    opt = requires("tasks.read")

    @post("/", operation_id="createUpload", status_code=201, opt=requires("tasks.run"))
    @reads(UploadForm, files=("file",), required_files=("file",), multipart_only=True)
    @raises(
        (InvalidInput, "invalid_input", "media_empty", "media_too_large", "media_type_not_allowed", "image_too_large",
         "upload_quota_exceeded"),
    )  # fmt: skip
    async def create(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, services: ServicesDep
    ) -> UploadView:
        """Upload one image or video (multipart ``file``) to use as a model input."""
        data = await read_one_file(request)
        upload = await uploads.create_upload(
            services.db, services.storage, services.settings.media, principal.account_id, data
        )
        return upload_view(upload, services.signer)

    @get("/", operation_id="listUploads")
    async def list_uploads(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
    ) -> PageEnvelope[UploadView]:
        page = await uploads.list_uploads(services.db, principal.account_id, limit=limit, after=after)
        return page_envelope(page.map(lambda upload: upload_view(upload, services.signer)))

    @get("/{upload_id:str}", operation_id="getUpload")
    @raises((NotFound, "upload_not_found"))
    async def get_upload(self, principal: PrincipalDep, services: ServicesDep, upload_id: FromPath[str]) -> UploadView:
        upload = await uploads.get_upload(services.db, principal.account_id, upload_id)
        return upload_view(upload, services.signer)

    @delete("/{upload_id:str}", operation_id="deleteUpload", status_code=200, opt=requires("tasks.run"))
    @raises((NotFound, "upload_not_found"))
    async def delete_upload(
        self, principal: PrincipalDep, services: ServicesDep, upload_id: FromPath[str]
    ) -> UploadDeleted:
        """Delete the upload and its file (tasks that used it keep their own copies)."""
        upload = await uploads.delete_upload(services.db, services.storage, principal.account_id, upload_id)
        return UploadDeleted(id=upload.public_id, object="upload", deleted=True)


def uploads_router(max_request_bytes: int) -> Router:
    """The upload routes, with a body limit that fits one file at ``UPLOAD_MAX_BYTES`` (above ``MAX_BODY_BYTES``)."""
    return Router(path="/", route_handlers=[UploadController], request_max_body_size=max_request_bytes)
