"""An instant OpenAI-compatible upstream on a raw asyncio protocol, for the OpenAI-compatible API benchmark.

The test simulator (Litestar under uvicorn) spends ~0.5 ms of CPU per call, on the same two cores as the API
under test. This server answers every ``POST …/chat/completions`` with the same pre-encoded completion (real
wire format, usage included), keep-alive, in ~20 µs: what remains is Conduit's own cost.
``python -m bench.lean_upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json

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
_BODY = json.dumps(COMPLETION).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + _BODY
)


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
            self.buffer = self.buffer[total:]
            assert self.transport is not None
            self.transport.write(RESPONSE)


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
