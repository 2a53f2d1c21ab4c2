"""Downloading upstream output files (their URLs expire, so every one is copied into our storage).

Bounded on every side: http(s) or ``data:`` URLs only, at most ``max_bytes`` (checked against
``Content-Length`` and while streaming), at most ``timeout_s`` in all, and at most the shared client's
``max_redirects`` redirects (CDNs redirect to other hosts, so those are allowed). No credentials are sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from shared.providers.base import PermanentError, RetryableError

log = logging.getLogger(__name__)


class OutputFetcher:
    def __init__(self, http: httpx.AsyncClient, *, max_bytes: int, timeout_s: float) -> None:
        self._http = http
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    def too_large(self) -> PermanentError:
        return PermanentError(
            f"an output is larger than the {self.max_bytes // (1024 * 1024)} MiB limit", code="output_too_large"
        )

    async def fetch(self, url: str) -> bytes:
        if url.startswith("data:"):
            return self._data_url(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentError("the provider returned an output URL we cannot fetch", code="upstream_bad_output")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._download(url)
        except TimeoutError:
            raise RetryableError("downloading an output took too long", code="output_download_failed") from None
        except httpx.TooManyRedirects:
            raise PermanentError("an output URL redirected too many times", code="output_download_failed") from None
        except httpx.HTTPError as exc:
            log.warning("downloading %s failed: %r", parts.netloc, exc)
            raise RetryableError("downloading an output failed", code="output_download_failed") from None

    async def _download(self, url: str) -> bytes:
        async with self._http.stream("GET", url, follow_redirects=True, headers={"Accept": "*/*"}) as response:
            if response.status_code != 200:
                log.warning("downloading an output from %s: HTTP %d", urlsplit(url).netloc, response.status_code)
                error_class = RetryableError if response.status_code in (429, 500, 502, 503, 504) else PermanentError
                raise error_class(
                    f"the output file could not be downloaded (HTTP {response.status_code})",
                    code="output_download_failed",
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise self.too_large()
            buffer = bytearray()
            async for chunk in response.aiter_bytes():
                buffer += chunk
                if len(buffer) > self.max_bytes:
                    raise self.too_large()
            return bytes(buffer)

    def _data_url(self, url: str) -> bytes:
        header, _, payload = url.partition(",")
        try:
            data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            raise PermanentError("the provider returned a malformed data URL", code="upstream_bad_output") from None
        if len(data) > self.max_bytes:
            raise self.too_large()
        return data
