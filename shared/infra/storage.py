"""Output and attachment files, and the signed URLs that serve them.

Files live under ``STORAGE_DIR`` (default: ``<data dir>/storage``). Keys are relative paths we generate
ourselves (``outputs/<task id>/<n>.<ext>``); the public URL carries an expiry and an HMAC signature, so it
can be handed to a browser or another service without an API key, and cannot be guessed or extended.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote, urlencode

KEY_PATTERN = re.compile(r"^[a-z]+/[0-9a-f-]{36}/[A-Za-z0-9_-]{1,64}\.[a-z0-9]{1,8}$")
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "text/plain": "txt",
    "application/pdf": "pdf",
}
CONTENT_TYPES = {ext: ctype for ctype, ext in EXTENSIONS.items()}


def valid_key(key: str) -> bool:
    return bool(KEY_PATTERN.match(key)) and ".." not in key


def content_type_for(key: str) -> str:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if not valid_key(key):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: readers never see half a file

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def copy(self, source: str, target: str) -> None:
        """Give ``target`` the bytes of ``source``: a hard link (no copy; either may be deleted alone), or a copy
        where the file system cannot link."""
        await asyncio.to_thread(self._link, self.path(source), self.path(target))

    @staticmethod
    def _link(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        try:
            os.link(source, target)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            shutil.copyfile(source, target)

    def exists(self, key: str) -> bool:
        return valid_key(key) and self.path(key).is_file()

    async def delete_prefix(self, prefix: str) -> None:
        target = (self.root / prefix).resolve()
        if self.root.resolve() not in target.parents:
            raise ValueError(f"refusing to delete outside storage: {prefix!r}")
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(shutil.rmtree, target)


class UrlSigner:
    """HMAC-signed, expiring URLs for stored files."""

    def __init__(self, key: bytes, base_url: str, ttl_s: int) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def url(self, key: str, *, now: float | None = None) -> str:
        # Round the expiry up to the hour so that repeated reads of a task give a stable URL.
        issued = int(now if now is not None else time.time())
        expires = ((issued + self.ttl_s) // 3600 + 1) * 3600
        query = urlencode({"expires": expires, "signature": self._signature(key, expires)})
        return f"{self.base_url}/v1/files/{quote(key)}?{query}"

    def verify(self, key: str, expires: int, signature: str, *, now: float | None = None) -> bool:
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(key, expires), signature)
