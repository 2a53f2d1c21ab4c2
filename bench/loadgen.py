"""A small HTTP/1.1 load generator on raw asyncio streams.

General-purpose clients (httpx, aiohttp) spend ~0.5-1 ms of CPU per request, which on a 2-core machine
would measure the client rather than the server. This one sends pre-encoded requests over keep-alive
connections and only parses the status line and Content-Length: ~20-40 us per request.

Run it in its own process (``python -m bench.loadgen``) so it does not share a core's event loop with
the server under test; ``run_load`` returns latencies and status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate_per_s": round(self.rate, 1),
            "statuses": dict(self.statuses),
            "latency_ms": {
                "p50": round(self.percentile(50), 2),
                "p90": round(self.percentile(90), 2),
                "p99": round(self.percentile(99), 2),
                "mean": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
            },
        }


def build_request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(length) if length else b""


async def run_load(
    base_url: str,
    requests: list[bytes],
    *,
    concurrency: int,
    duration_s: float | None = None,
    rate_per_s: float | None = None,
    keep_bodies: bool = False,
) -> LoadResult:
    """Send ``requests`` (cycled when ``duration_s`` is set) over ``concurrency`` connections.

    With ``rate_per_s``, requests start on a fixed schedule (open loop) instead of back to back."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = LoadResult()
    index = 0
    total = len(requests)
    start = time.perf_counter()
    deadline = start + duration_s if duration_s else None
    interval = 1.0 / rate_per_s if rate_per_s else 0.0

    def next_request() -> tuple[int, bytes] | None:
        nonlocal index
        if deadline is None and index >= total:
            return None
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        n = index
        index += 1
        return n, requests[n % total]

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                item = next_request()
                if item is None:
                    return
                n, request = item
                if interval:
                    delay = start + n * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                t0 = time.perf_counter()
                writer.write(request)
                status, body = await _read_response(reader)
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.statuses[status] += 1
                result.requests += 1
                if keep_bodies:
                    result.bodies.append(body)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def main() -> None:
    """CLI: read a JSON job from stdin ({base_url, requests:[{method,url,body,headers}], ...}), print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep-bodies", action="store_true")
    args = parser.parse_args()
    job = json.load(sys.stdin)
    encoded = [
        build_request(r["method"], r["url"], r.get("body", "").encode(), r.get("headers")) for r in job["requests"]
    ]
    import uvloop

    result = uvloop.run(
        run_load(
            job["base_url"],
            encoded,
            concurrency=job["concurrency"],
            duration_s=job.get("duration_s"),
            rate_per_s=job.get("rate_per_s"),
            keep_bodies=args.keep_bodies,
        )
    )
    out = result.summary()
    if args.keep_bodies:
        out["bodies"] = [b.decode(errors="replace") for b in result.bodies]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
