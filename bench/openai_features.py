"""Benchmark of the OpenAI-compatible features beyond plain chat: embeddings, and streamed tool calls against
streamed text. Run: ``.venv/bin/python -m bench.openai_features``.

Setup as ``bench.openai_compat``: embedded PostgreSQL (durable) and Redis, one ``conduit web`` process, the instant
upstream (``bench/lean_upstream.py``), the load generator (``bench/loadgen.py``) in its own process, 64 accounts.

1. Embeddings against chat at concurrency 1: rounds alternating a plain chat completion (``bench-instant-chat``),
   an embeddings request (``bench-instant-embed``: one input, a 1536-float vector from the upstream, answered as
   base64, which the official clients ask for by default) and the same embeddings request straight to the
   upstream; per round the p50 of each; the median, min and max over the rounds.
2. Streaming at concurrency 1: rounds alternating a streamed text answer (100 content chunks) and a streamed
   tool call (its head and 99 argument pieces) from the same upstream, through Conduit (``bench-instant-tools``,
   the request carrying one tool); the p50 of each per round, and what it is per chunk.
3. The API process's CPU per streamed chunk, text against tool call, at concurrency 4 (psutil); this includes the
   request's own work spread over its chunks (the tool request also checks and holds its tool schema).
4. The per-chunk path alone, in this process: parsing the upstream's SSE line (``parse_chunk``) and rendering the
   client's event (``ChatChunks.delta``), for the same text and tool-call chunks, in alternating rounds.

Results are printed and written to bench/out/openai_features.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import psutil

from bench.common import BenchEnv, run_loadgen, write_result
from bench.lean_upstream import STREAM_CHUNKS, TEXT_STREAM, TOOL_STREAM
from bench.openai_compat import UPSTREAM_KEY, start_upstream
from shared.openai_api.chat_events import ChatChunks
from shared.providers.chat_stream import parse_chunk

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}
HI = [{"role": "user", "content": "hello"}]
BODIES: dict[str, dict[str, Any]] = {
    "chat": {"model": "bench-instant-chat", "messages": HI, "max_tokens": 16},
    "embeddings": {"model": "bench-instant-embed", "input": "hello", "encoding_format": "base64"},
    "stream_text": {"model": "bench-instant-tools", "messages": HI, "max_tokens": 200, "stream": True},
    "stream_tool": {"model": "bench-instant-tools", "messages": HI, "max_tokens": 200, "stream": True,
                    "tools": [TOOL]},
}  # fmt: skip
PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}


def _job(env: BenchEnv, keys: list[str], name: str, count: int, concurrency: int = 1) -> dict[str, Any]:
    body = json.dumps(BODIES[name])
    url = f"{env.base_url}{PATHS.get(name, '/v1/chat/completions')}"
    requests = [{"method": "POST", "url": url, "body": body,
                 "headers": {"Authorization": f"Bearer {keys[n % len(keys)]}", "Content-Type": "application/json"}}
                for n in range(count)]  # fmt: skip
    return {"base_url": env.base_url, "concurrency": concurrency, "requests": requests}


def _direct_embeddings(port: int, count: int) -> dict[str, Any]:
    body = json.dumps({"model": "bench-embed", "input": ["hello"]})
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    return {"base_url": f"http://127.0.0.1:{port}", "concurrency": 1,
            "requests": [{"method": "POST", "url": url, "body": body, "headers": headers}] * count}  # fmt: skip


def _rounds(jobs: dict[str, dict[str, Any]], rounds: int) -> dict[str, dict[str, float]]:
    """The jobs taking turns for ``rounds`` rounds (machine noise hits them alike): the median, min and max of
    each one's per-round p50 (ms)."""
    for job in jobs.values():
        run_loadgen({**job, "requests": job["requests"][:200]})  # warm-up
    p50s: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            result = run_loadgen(job)
            assert set(result["statuses"]) == {"200"}, (name, result["statuses"])
            p50s[name].append(result["latency_ms"]["p50"])
    return {name: {"median_p50_ms": round(statistics.median(v), 3), "min_p50_ms": round(min(v), 3),
                   "max_p50_ms": round(max(v), 3)} for name, v in p50s.items()}  # fmt: skip


def _cpu_per_chunk(env: BenchEnv, keys: list[str], api: psutil.Process, name: str, seconds: float) -> dict[str, Any]:
    job = _job(env, keys, name, 100_000, concurrency=4)
    before = api.cpu_times()
    result = run_loadgen({**job, "duration_s": seconds})
    after = api.cpu_times()
    assert set(result["statuses"]) == {"200"}, result["statuses"]
    cpu = (after.user + after.system - before.user - before.system) / result["requests"]
    us = cpu * 1e6
    return {"requests": result["requests"], "rate_per_s": result["rate_per_s"], "api_cpu_us_per_request": round(us),
            "api_cpu_us_per_chunk": round(us / STREAM_CHUNKS, 2)}  # fmt: skip


def chunk_path_us(rounds: int, repeat: int = 200) -> dict[str, dict[str, float]]:
    """CPU µs per chunk of the per-chunk path (parse the upstream line, render the client event), text against
    tool-call chunks; the median, min and max over ``rounds`` alternating rounds."""
    lines = {
        name: [
            line[6:].decode() for line in stream.split(b"\n\n") if line.startswith(b"data: {") and b'"delta"' in line
        ]
        for name, stream in (("text", TEXT_STREAM), ("tool_call", TOOL_STREAM))
    }
    samples: dict[str, list[float]] = {name: [] for name in lines}
    for _ in range(rounds):
        for name, chunks in lines.items():
            started = time.process_time()
            for _ in range(repeat):
                writer = ChatChunks("chatcmpl-bench", "bench-instant-tools", "bench-instant")
                for data in chunks:
                    for delta in parse_chunk("bench-instant", data):
                        writer.delta(delta)
            samples[name].append((time.process_time() - started) / (repeat * len(chunks)) * 1e6)
    return {name: {"median_us": round(statistics.median(v), 2), "min_us": round(min(v), 2),
                   "max_us": round(max(v), 2)} for name, v in samples.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=300)
    parser.add_argument("--cpu-rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    upstream, port = start_upstream()
    results: dict[str, Any] = {"load_average_before": os.getloadavg()}
    try:
        keys = asyncio.run(env.accounts(64))
        api = env.spawn("web")
        env.wait_healthy()
        n = args.per_round
        results["embeddings_vs_chat_c1"] = _rounds(
            {"chat": _job(env, keys, "chat", n), "embeddings": _job(env, keys, "embeddings", n),
             "embeddings_direct": _direct_embeddings(port, n)}, args.rounds)  # fmt: skip
        streams = _rounds({"text": _job(env, keys, "stream_text", n // 2),
                           "tool_call": _job(env, keys, "stream_tool", n // 2)}, args.rounds)  # fmt: skip
        for figures in streams.values():
            figures["median_p50_us_per_chunk"] = round(figures["median_p50_ms"] * 1000 / STREAM_CHUNKS, 1)
        results["streams_c1"] = {"chunks_per_answer": STREAM_CHUNKS, **streams}
        process = psutil.Process(api.pid)
        cpu: dict[str, list[float]] = {"text": [], "tool_call": []}
        for _ in range(args.cpu_rounds):
            for name, body in (("text", "stream_text"), ("tool_call", "stream_tool")):
                cpu[name].append(_cpu_per_chunk(env, keys, process, body, args.seconds)["api_cpu_us_per_chunk"])
        results["api_cpu_per_chunk_c4"] = {name: {"median_us": round(statistics.median(v), 2), "min_us": min(v),
                                                  "max_us": max(v)} for name, v in cpu.items()}  # fmt: skip
        results["chunk_path_in_process"] = chunk_path_us(args.rounds * 2)
        results["load_average_after"] = os.getloadavg()
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
        env.stop()
    path = write_result("openai_features", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
