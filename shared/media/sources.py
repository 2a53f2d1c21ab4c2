"""Where an input file comes from: an upload id (``upl_…``), an http(s) URL, or a ``data:`` URI; each turned
into checked bytes (``shared.media.files``) or a refusal naming the parameter.

URLs are fetched through the URL guard (``shared.infra.urlguard``): public addresses only (a private, loopback,
link-local or metadata address is refused before any connection is made), allowed ports, no credentials, no
redirects, at most ``UPLOAD_MAX_BYTES`` and ``INPUT_URL_TIMEOUT_S``. One client (one connection pool) serves the
process; ``aclose`` closes it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httpx

from shared.infra.db import Database
from shared.infra.errors import InvalidInput, NotFound
from shared.infra.storage import LocalStorage
from shared.infra.urlguard import UrlGuard, UrlNotAllowed, read_capped
from shared.media.files import KINDS, MediaInfo, check_media
from shared.media.settings import MediaSettings
from shared.media.uploads import ID_PREFIX, UploadRecord, get_upload

log = logging.getLogger(__name__)

INLINE_CHECK_BYTES = 4 * 1024 * 1024  # checked on the event loop up to this size (~1.5 ms), in a thread above


@dataclass(frozen=True, slots=True)
class LoadedMedia:
    """A checked file: its bytes (None for an upload, whose stored file is used as it is) and what it is."""

    info: MediaInfo
    source: str  # upload | url | data
    data: bytes | None = None
    upload: UploadRecord | None = None


def describe_forms() -> str:
    return "an upload id (upl_…), an https URL or a data: URI"


class MediaSources:
    def __init__(self, db: Database, storage: LocalStorage, guard: UrlGuard, settings: MediaSettings) -> None:
        self.db = db
        self.storage = storage
        self.guard = guard
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def load(self, account_id: uuid.UUID, value: object, *, param: str, kind: str) -> LoadedMedia:
        """The file ``value`` names, of ``kind`` ("image" or "video"), checked."""
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{param} must be {describe_forms()}", param=param)
        if value.startswith(ID_PREFIX):
            return await self._upload(account_id, value, param=param, kind=kind)
        if value.startswith("data:"):
            data = self._data_uri(value, param=param)
            source = "data"
        elif value.startswith(("https://", "http://")):
            data = await self._fetch(value, param=param)
            source = "url"
        else:
            raise InvalidInput(f"{param} must be {describe_forms()}", param=param)
        check = functools.partial(
            check_media, data, max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels,
            param=param, kind=kind,
        )  # fmt: skip
        # A file's structure is verified, not decoded: a small one takes less than a hop to a thread would.
        info = check() if len(data) <= INLINE_CHECK_BYTES else await asyncio.to_thread(check)
        return LoadedMedia(info=info, source=source, data=data)

    async def read(self, loaded: LoadedMedia) -> bytes:
        """The bytes of a loaded file (read from storage for an upload)."""
        if loaded.data is not None:
            return loaded.data
        assert loaded.upload is not None
        return await self.storage.read(loaded.upload.storage_key)

    async def _upload(self, account_id: uuid.UUID, value: str, *, param: str, kind: str) -> LoadedMedia:
        try:
            upload = await get_upload(self.db, account_id, value, param=param)
        except NotFound:
            # Unknown, expired and another account's uploads are alike: the caller has no such upload.
            raise InvalidInput(
                f"{param}: upload {value!r} does not exist (or has expired)", code="upload_not_found", param=param
            ) from None
        if upload.content_type not in KINDS[kind]:
            raise InvalidInput(
                f"{param}: upload {value!r} is {upload.content_type}, not an {kind}",
                code="media_type_not_allowed",
                param=param,
            )
        info = MediaInfo(upload.content_type, upload.size_bytes, upload.width, upload.height, upload.duration_s)
        return LoadedMedia(info=info, source="upload", upload=upload)

    def _data_uri(self, value: str, *, param: str) -> bytes:
        header, comma, payload = value.partition(",")
        if not comma:
            raise InvalidInput(f"{param}: a data: URI is data:<type>;base64,<data>", param=param)
        # base64 is 4 characters per 3 bytes: refuse an oversized one before decoding it
        if len(payload) * 3 // 4 > self.settings.max_bytes + 3:
            raise InvalidInput(
                f"{param}: the file is larger than {self.settings.max_bytes} bytes", code="media_too_large", param=param
            )
        try:
            if header.endswith(";base64"):
                return base64.b64decode(payload, validate=True)
            return unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{param}: the data: URI is not valid base64", param=param) from None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self.guard.client(
                timeout_s=self.settings.fetch_timeout_s, user_agent="Conduit (input media)"
            )
        return self._client

    async def _fetch(self, url: str, *, param: str) -> bytes:
        await self.guard.check(url, param=param)  # the address refused here is never connected to
        limit = self.settings.max_bytes
        try:
            async with asyncio.timeout(self.settings.fetch_timeout_s):
                async with self._http().stream("GET", url, headers={"Accept": "image/*, video/*"}) as response:
                    if response.status_code != 200:
                        raise _unreachable(param, f"it answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise _too_large(param, limit)
                    body, truncated = await read_capped(response, limit + 1)
        except UrlNotAllowed as exc:  # the address changed between the check and the connection
            raise UrlNotAllowed(exc.message.replace("url:", f"{param}:", 1), param=param) from None
        except TimeoutError:
            raise _unreachable(param, f"it did not answer within {self.settings.fetch_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            log.info("input URL for %s failed: %r", param, exc)
            raise _unreachable(param, "it could not be reached") from None
        if truncated:
            raise _too_large(param, limit)
        return body


def _unreachable(param: str, why: str) -> InvalidInput:
    return InvalidInput(f"{param}: the URL could not be fetched: {why}", code="input_url_unreachable", param=param)


def _too_large(param: str, limit: int) -> InvalidInput:
    return InvalidInput(f"{param}: the file is larger than {limit} bytes", code="media_too_large", param=param)
