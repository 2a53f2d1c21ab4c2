"""GET /v1/files/{key}: stored outputs, behind an expiring HMAC-signed URL (no API key needed)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath, FromQuery
from litestar.response import File

from api.contract import raises
from api.deps import ServicesDep
from shared.infra.errors import NotFound
from shared.infra.storage import content_type_for, valid_key


class FileController(Controller):
    path = "/v1/files"
    tags = ["files"]

    @get("/{key:path}", operation_id="getFile", media_type="application/octet-stream")
    @raises((NotFound, "file_not_found"))
    async def download(
        self, services: ServicesDep, key: FromPath[str], expires: FromQuery[int] = 0, signature: FromQuery[str] = ""
    ) -> File:
        key = key.lstrip("/")
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
