"""The stack's floor for a chat completion: what Litestar under uvicorn plus one upstream call cost, with nothing of
Conduit's own work (no key, no rate limit, no hold, no settlement, no usage record).

One route, ``POST /v1/chat/completions``, decodes the body, forwards it to the upstream through the same
``UpstreamClient`` (httpx on aiohttp) Conduit uses, and answers the upstream's JSON; served by uvicorn with the
options of ``conduit web`` (uvloop, httptools, no access log). ``bench.openai_compat`` measures it beside Conduit
and the direct upstream in the same run, so the gap to the direct upstream splits into the stack's share and
Conduit's. ``python -m bench.stack_floor --port N --upstream http://127.0.0.1:M/v1``.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, Response, post

from shared.providers.upstream_client import UpstreamClient, UpstreamTransport


def create_app(upstream: str, api_key: str) -> Litestar:
    client = UpstreamClient(transport=UpstreamTransport(trust_env=False), user_agent="conduit/0.1",
                            timeout=httpx.Timeout(30.0), trust_env=False)  # fmt: skip
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "Accept": "application/json"}
    url = f"{upstream}/chat/completions"

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(data: dict[str, Any]) -> Response[Any]:
        answer = await client.call("POST", url, headers=headers, body=data)
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    return Litestar([chat_completions], on_shutdown=[client.aclose], openapi_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, e.g. http://127.0.0.1:9000/v1")
    parser.add_argument("--api-key", default="sk-bench-instant")
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream, args.api_key), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", access_log=False, log_level="warning", server_header=False)  # fmt: skip


if __name__ == "__main__":
    main()
