"""The client host's load: tasks submitted at a steady rate through the load balancer, each with a prompt
unique to it and an ``Idempotency-Key`` (a submit that failed on the network is retried, as a client would,
without creating a second task), and a stream of chat requests (streamed answers) alongside.

Reads its job as JSON on stdin, prints what happened as JSON. Runs on the client host:
``ip netns exec cx-client python -m bench.cluster.client``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

TASK_MODEL = "cluster-job"
CHAT_MODEL = "cluster-chat"


async def submit(client: httpx.AsyncClient, job: dict[str, Any], n: int, out: dict[str, Any]) -> None:
    marker = f"{job['run']}-{n}"
    key = job["keys"][n % len(job["keys"])]
    body = {"model": TASK_MODEL, "input": {"prompt": marker, "width": 256, "height": 256}}
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": marker}
    deadline = time.monotonic() + job.get("submit_deadline_s", 300)
    while True:
        try:
            answer = await client.post("/v1/tasks", json=body, headers=headers)
            if answer.status_code in (200, 201, 202):
                out["accepted"][marker] = answer.json()["id"]
                return
            out["statuses"][str(answer.status_code)] = out["statuses"].get(str(answer.status_code), 0) + 1
            if answer.status_code < 500 and answer.status_code != 429:
                return  # refused for good: counted, not retried
        except httpx.HTTPError as exc:
            out["errors"][type(exc).__name__] = out["errors"].get(type(exc).__name__, 0) + 1
        if time.monotonic() > deadline:
            out["gave_up"] += 1
            return
        out["retries"] += 1
        await asyncio.sleep(0.5)


async def submit_all(client: httpx.AsyncClient, job: dict[str, Any], out: dict[str, Any]) -> None:
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    # At most this many submits at once, below the client's connections: with thousands waiting for a connection
    # httpx's pool spends its time re-scanning them, and the client, not the cluster, becomes the bottleneck.
    in_flight = asyncio.Semaphore(job.get("max_in_flight", 150))

    async def limited(n: int) -> None:
        async with in_flight:
            await submit(client, job, n, out)

    for n in range(job["tasks"]):
        await asyncio.sleep(max(0.0, start + n / job["rate"] - time.monotonic()))
        pending.add(asyncio.create_task(limited(n)))
    await asyncio.gather(*pending)
    out["submit_s"] = round(time.monotonic() - start, 2)


async def chat_once(client: httpx.AsyncClient, key: str) -> bool:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "stream": True}
    try:
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as answer:
            text = (await answer.aread()).decode(errors="replace")
            return answer.status_code == 200 and "data: [DONE]" in text
    except httpx.HTTPError:
        return False


async def chat_stream(client: httpx.AsyncClient, job: dict[str, Any], out: dict[str, Any], done: asyncio.Event) -> None:
    """One chat request every 1/chat_rate s (each in its own task, so a hung one does not stop the stream)."""
    start = time.monotonic()
    results: list[tuple[float, bool]] = out["chat"]

    async def one(at: float) -> None:
        results.append((round(at, 2), await chat_once(client, job["keys"][0])))

    running: set[asyncio.Task[None]] = set()
    n = 0
    while not done.is_set():
        at = n / job["chat_rate"]
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        task = asyncio.create_task(one(time.monotonic() - start))
        running.add(task)
        task.add_done_callback(running.discard)
        n += 1
    await asyncio.gather(*running)


async def run(job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"accepted": {}, "statuses": {}, "errors": {}, "retries": 0, "gave_up": 0, "chat": []}
    timeout = httpx.Timeout(10.0, connect=3.0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=job["base_url"], timeout=timeout, limits=limits) as client:
        done = asyncio.Event()
        chat = asyncio.create_task(chat_stream(client, job, out, done)) if job.get("chat_rate") else None
        await submit_all(client, job, out)
        await asyncio.sleep(job.get("chat_tail_s", 0))
        done.set()
        if chat is not None:
            await chat
    chats = out.pop("chat")
    failed = sorted(t for t, ok in chats if not ok)
    out["chat"] = {"requests": len(chats), "ok": len(chats) - len(failed), "failed_at_s": failed}
    return out


def main() -> None:
    job = json.load(sys.stdin)
    json.dump(asyncio.run(run(job)), sys.stdout)


if __name__ == "__main__":
    main()
