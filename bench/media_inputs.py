"""What input files add to a task submit, over HTTP against ``conduit web`` (no worker: the submit alone).

Per iteration, one after another (so machine noise hits all alike): a text-only submit (``sdxl``, a prompt), a
submit naming a 2 MB uploaded PNG by its upload id (``sdxl-img2img``: the upload is looked up and linked into the
task's inputs), a plain GET of the same 2 MB file from a local HTTP server (the fetch alone), and a submit naming
that URL (Conduit fetches it through the URL guard, checks it and stores it). Per round the median of each; the
issue's targets: upload-id submit <= 1.5x the text-only submit, and the URL submit <= text-only + fetch + 10 ms.
``python -m bench.media_inputs [--rounds 5] [--iterations 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from PIL import Image

from bench.common import BenchEnv, free_port, write_result


def two_megabyte_png() -> bytes:
    """An incompressible PNG of about 2 MB (random pixels)."""
    side = 820
    image = Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def serve_file(data: bytes) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/photo.png"


async def timed_ms(call: Any) -> float:
    started = time.perf_counter()
    response = await call()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code in (200, 202), response.text[:300]
    return elapsed


async def measure(base_url: str, key: str, file: bytes, url: str, rounds: int, iterations: int) -> dict[str, Any]:
    """Medians per round. Every request goes through one asyncio httpx client, as the server's own fetch does
    (a blocking client reads a 2 MB body with fewer wake-ups, which would flatter the fetch baseline)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as api,
        httpx.AsyncClient(timeout=60) as plain,
    ):
        upload = await api.post("/v1/uploads", files={"file": ("photo.png", file, "image/png")})
        assert upload.status_code == 201, upload.text
        upload_id = upload.json()["id"]
        bodies = {
            "text": {"model": "sdxl", "input": {"prompt": "a lighthouse", "width": 512, "height": 512}},
            "upload_id": {"model": "sdxl-img2img", "input": {"prompt": "a lighthouse", "image": upload_id}},
            "url": {"model": "sdxl-img2img", "input": {"prompt": "a lighthouse", "image": url}},
        }
        encoded = {name: json.dumps(body) for name, body in bodies.items()}
        post_headers = {"Content-Type": "application/json"}

        def submit(name: str) -> Any:
            return lambda: api.post("/v1/tasks", content=encoded[name], headers=post_headers)

        for _ in range(20):  # warm-up: connections, prepared statements, the guard's client
            for name in bodies:
                await submit(name)()
            await plain.get(url)
        per_round = []
        for _ in range(rounds):
            samples: dict[str, list[float]] = {"text": [], "upload_id": [], "fetch": [], "url": []}
            for _ in range(iterations):
                samples["text"].append(await timed_ms(submit("text")))
                samples["upload_id"].append(await timed_ms(submit("upload_id")))
                samples["fetch"].append(await timed_ms(lambda: plain.get(url)))
                samples["url"].append(await timed_ms(submit("url")))
            medians = {name: statistics.median(values) for name, values in samples.items()}
            medians["upload_id_ratio"] = medians["upload_id"] / medians["text"]
            medians["url_overhead_ms"] = medians["url"] - medians["text"] - medians["fetch"]
            per_round.append({name: round(value, 3) for name, value in medians.items()})
    summary = {}
    for name in per_round[0]:
        values = [r[name] for r in per_round]
        summary[name] = {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}
    return {"rounds": per_round, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args()
    file = two_megabyte_png()
    server, url = serve_file(file)
    env = BenchEnv()
    env.start()
    try:
        env.spawn("web", URL_GUARD_ALLOW_LOOPBACK="true", UPLOAD_MAX_BYTES=str(8 * 1024 * 1024))
        env.wait_healthy()
        [key] = asyncio.run(env.accounts(1))
        load_before = os.getloadavg()
        result = asyncio.run(measure(env.base_url, key, file, url, args.rounds, args.iterations))
        result.update(file_bytes=len(file), load_average_before=load_before, load_average_after=os.getloadavg())
    finally:
        env.stop()
        server.shutdown()
    path = write_result("media_inputs", result)
    print(json.dumps(result["summary"], indent=2))
    print(f"load average: {result['load_average_before']} -> {result['load_average_after']}; written to {path}")


if __name__ == "__main__":
    main()
