"""GET /v1/files/{key}: stored outputs, behind an expiring HMAC-signed URL (no API key needed); and
GET /v1/files/{file_id} and /v1/files/{file_id}/content, the OpenAI Batch API's file objects and their bytes
(``api.routes.batches``, with the API key). One path route takes every ``GET /v1/files/…``: Litestar cannot tell a
path parameter from a parameter route beside it."""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import File

from api.contract import raises
from api.deps import ServicesDep
from api.routes.batches import file_content_response, file_object_response
from shared.infra.errors import NotFound
from shared.infra.storage import content_type_for, valid_key

BATCH_FILE = re.compile(r"file-[^/]+")
BATCH_FILE_CONTENT = re.compile(r"(file-[^/]+)/content")


class FileController(Controller):
    path = "/v1/files"
    tags = ["files"]

    @get("/{key:path}", operation_id="getFile", media_type="application/octet-stream")
    @raises((NotFound, "file_not_found"))
    async def download(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        key: FromPath[str],
        expires: FromQuery[int] = 0,
        signature: FromQuery[str] = "",
    ) -> File | Response[bytes]:
        key = key.lstrip("/")
        if match := BATCH_FILE_CONTENT.fullmatch(key):
            return await file_content_response(request, services, match.group(1))
        if BATCH_FILE.fullmatch(key):
            return await file_object_response(request, services, key)
        if not valid_key(key) or not services.signer.verify(key, expires, signature):
            raise NotFound("file not found or link expired", code="file_not_found")
        path = services.storage.path(key)
        if not path.is_file():
            raise NotFound("file not found or link expired", code="file_not_found")
        return File(
            path=path,
            media_type=content_type_for(key),
            content_disposition_type="inline",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
