"""Many Server-Sent Event streams from one process (``bench/events.py`` runs it on its own): a JSON job on stdin
(``base_url``, ``key``, ``task_ids``, ``seconds``), one ``GET /v1/tasks/{id}/events`` stream per task id over raw
asyncio HTTP/1.1. Prints ``connected <n>`` once every stream is open, reads for ``seconds``, then prints JSON:
events received, streams still open, and each event's delay from its publish time (its ``created_at``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import resource
import sys
import time
from urllib.parse import urlsplit

CONNECT_WAVE = 250  # streams opened at once


async def main() -> None:
    job = json.load(sys.stdin)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parts = urlsplit(job["base_url"])
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    delays_ms: list[float] = []
    received = 0
    heartbeats = 0
    open_streams = 0
    stop = asyncio.Event()

    async def stream(task_id: str, ready: asyncio.Event) -> None:
        nonlocal received, heartbeats, open_streams
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"GET /v1/tasks/{task_id}/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {job['key']}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        status = await reader.readline()
        assert b" 200 " in status, status
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        open_streams += 1
        ready.set()
        try:
            while not stop.is_set():
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: {") and b'"task.progress"' in line:
                    received += 1
                    created = json.loads(line[6:])["created_at"]
                    delay = time.time() - dt.datetime.fromisoformat(created).timestamp()
                    delays_ms.append(delay * 1000)
                elif line.startswith(b": "):
                    heartbeats += 1
        finally:
            open_streams -= 1
            writer.close()

    tasks = []
    for start in range(0, len(job["task_ids"]), CONNECT_WAVE):
        wave = []
        for task_id in job["task_ids"][start : start + CONNECT_WAVE]:
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(stream(task_id, ready)))
            wave.append(ready.wait())
        await asyncio.wait_for(asyncio.gather(*wave), 120)
    print(f"connected {open_streams}", flush=True)
    await asyncio.sleep(job["seconds"])
    still_open = open_streams
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays_ms.sort()
    pct = lambda p: round(delays_ms[min(len(delays_ms) - 1, int(len(delays_ms) * p / 100))], 1) if delays_ms else None  # noqa: E731
    print(json.dumps({"events": received, "heartbeats": heartbeats, "streams_open_at_end": still_open,
                      "delivery_ms": {"p50": pct(50), "p99": pct(99), "max": pct(100)}}))  # fmt: skip


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
