"""An instant OpenAI-compatible upstream on a raw asyncio protocol, for the OpenAI-compatible API benchmark.

The test simulator (Litestar under uvicorn) spends ~0.5 ms of CPU per call, on the same two cores as the API
under test. This server answers with pre-encoded responses in the real wire format, keep-alive, in ~20 µs, so
what remains is Conduit's own cost: ``POST …/chat/completions`` the same completion (usage included), or with
``"stream":true`` a stream of ``STREAM_CHUNKS`` text chunks, or of one tool call whose arguments come in
``STREAM_CHUNKS - 1`` pieces when the request has ``tools``; ``POST …/embeddings`` one ``EMBEDDING_SIZE``-float
vector. ``python -m bench.lean_upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "bench-llama",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the instant upstream.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
}
STREAM_CHUNKS = 100
EMBEDDING_SIZE = 1536


def _response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: keep-alive\r\n\r\n" + body)  # fmt: skip


def _events(deltas: list[Any], finish: str) -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741570283, "model": "bench-llama"}
    chunks = [{**head, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]} for d in deltas]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]})
    chunks.append({**head, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": STREAM_CHUNKS,
                                                    "total_tokens": 9 + STREAM_CHUNKS}})  # fmt: skip
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


_TEXT = [{"role": "assistant", "content": ""}] + [{"content": f" word{n}"} for n in range(STREAM_CHUNKS)]
_CALL = {"index": 0, "id": "call_bench", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
_TOOL = [{"role": "assistant", "content": None, "tool_calls": [_CALL]}] + [
    {"tool_calls": [{"index": 0, "function": {"arguments": f'"k{n}": {n}, '}}]} for n in range(STREAM_CHUNKS - 1)
]
_EMBEDDING = {"object": "list", "model": "bench-embed", "usage": {"prompt_tokens": 1, "total_tokens": 1},
              "data": [{"object": "embedding", "index": 0,
                        "embedding": [round((n % 97) / 97 - 0.5, 6) for n in range(EMBEDDING_SIZE)]}]}  # fmt: skip
RESPONSE = _response(json.dumps(COMPLETION).encode())
TEXT_STREAM = _response(_events(_TEXT, "stop"), b"text/event-stream")
TOOL_STREAM = _response(_events(_TOOL, "tool_calls"), b"text/event-stream")
EMBEDDING = _response(json.dumps(_EMBEDDING).encode())


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not asyncio's class

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            request, self.buffer = self.buffer[:total], self.buffer[total:]
            assert self.transport is not None
            self.transport.write(_answer(request))


def _answer(request: bytes) -> bytes:
    if b"/embeddings" in request[: request.find(b"\r\n")]:
        return EMBEDDING
    if b'"stream": true' in request or b'"stream":true' in request:
        return TOOL_STREAM if b'"tools"' in request else TEXT_STREAM
    return RESPONSE


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
