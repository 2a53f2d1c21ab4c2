"""A tiny HTTP/1.1 client that sends exactly the bytes it is given (httpx refuses NUL, CR and LF in headers and
normalises URLs); one connection per request, closed by the server after the answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return bytes(out)


def parse_response(raw: bytes) -> RawResponse:
    if not raw:
        return RawResponse(0)  # the server closed the connection without an answer
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(status, headers, body)


async def send(
    port: int,
    method: str,
    target: bytes,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    timeout: float = 30,
) -> RawResponse:
    """Send one request as raw bytes and read the whole answer (``Connection: close``)."""
    request = bytearray(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
    for name, value in headers:
        request += name + b": " + value + b"\r\n"
    if (body or method not in ("GET", "HEAD", "DELETE")) and b"content-length" not in {n.lower() for n, _ in headers}:
        request += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    request += b"\r\n"
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    answer = asyncio.create_task(_read_all(reader, timeout))
    try:
        # The server may answer (413) and close before reading a large body: read while writing, and keep the
        # answer when the rest of the body cannot be sent.
        data = bytes(request) + body
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(data), 65536):
                if answer.done():
                    break
                writer.write(data[start : start + 65536])
                await writer.drain()
        return parse_response(await answer)
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            chunks.append(chunk)
    return b"".join(chunks)
