"""Benchmarks of live task events and batch work. Run: ``.venv/bin/python -m bench.events`` (``--only`` picks
scenarios).

1. ``sse_streams``: 5,000 ``GET /v1/tasks/{id}/events`` streams open on one API process while events are
   published at 500/s in all (as workers publish them); the API process's CPU and memory, and each event's delay
   from its publish to its arrival at a client (``bench/sse_clients.py``, in its own process);
2. ``batch_submit``: 1,000 tasks in one ``POST /v1/tasks/batch`` against 1,000 single ``POST /v1/tasks``
   (sequential, and over 32 connections), alternated over several rounds;
3. ``interactive_latency``: submit -> succeeded latency of interactive tasks at a steady rate, with the workers
   idle, with 5,000 two-second batch tasks queued (batch submit: the batch queue), and, for comparison, with the
   same 5,000 tasks submitted one by one (the interactive queue), each round on a fresh database.

Results are printed and written to bench/out/events.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import psutil

from bench.common import ROOT, BenchEnv, run_loadgen, submit_requests, write_result
from bench.core import _task_latencies
from shared.events import TASK_PROGRESS
from shared.events.publish import TaskEvents
from shared.infra.queue import connect_redis

TEXT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def _batch_body(model: str, count: int) -> dict[str, Any]:
    return {"tasks": [{"model": model, "input": TEXT} for _ in range(count)]}


async def _batch_submit(env: BenchEnv, key: str, model: str, count: int) -> list[str]:
    """``count`` tasks through batch submits of 1,000; their ids."""
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=env.base_url, timeout=120) as http:
        for start in range(0, count, 1000):
            response = await http.post("/v1/tasks/batch", json=_batch_body(model, min(1000, count - start)),
                                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert response.status_code == 202, response.text[:300]
            ids += [item["task"]["id"] for item in response.json()["data"]]
    return ids


def _rss_mb(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 2**20, 1)


def sse_streams(env: BenchEnv, keys: list[str], *, streams: int, rate: float, seconds: float) -> dict[str, Any]:
    [web] = env.procs  # fresh(): the API process only
    api = psutil.Process(web.pid)
    task_ids = asyncio.run(_batch_submit(env, keys[0], "bench-instant-text", streams))  # no worker: they wait
    rss_before = _rss_mb(api)
    client = subprocess.Popen([sys.executable, "-m", "bench.sse_clients"], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)  # fmt: skip
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(json.dumps({"base_url": env.base_url, "key": keys[0], "task_ids": task_ids,
                                   "seconds": seconds + 3}).encode())  # fmt: skip
    client.stdin.close()
    connected_at = time.monotonic()
    line = client.stdout.readline().decode()
    assert line.startswith("connected"), line
    connect_s = time.monotonic() - connected_at
    rss_open = _rss_mb(api)
    account_id = asyncio.run(_account_of(env, task_ids[0]))
    cpu0 = api.cpu_times()
    published = asyncio.run(_publish(env, account_id, task_ids, rate=rate, seconds=seconds))
    cpu1 = api.cpu_times()
    rss_end = _rss_mb(api)
    result = json.loads(client.stdout.read().decode())
    client.wait(timeout=60)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "streams": int(line.split()[1]),
        "connect_seconds": round(connect_s, 1),
        "events_published": published,
        "publish_rate_per_s": round(published / seconds, 1),
        "api_cpu_percent_of_one_core": round(100 * cpu_s / seconds, 1),
        "api_rss_mb": {"before_streams": rss_before, "streams_open": rss_open, "end": rss_end},
        "api_rss_kb_per_stream": round((rss_open - rss_before) * 1024 / max(1, streams), 1),
        **result,
    }


async def _account_of(env: BenchEnv, task_id: str) -> uuid.UUID:
    conn = await asyncpg.connect(env.embedded.urls.database_url)
    try:
        account_id: uuid.UUID = await conn.fetchval("SELECT account_id FROM tasks WHERE id = $1", uuid.UUID(task_id))
        return account_id
    finally:
        await conn.close()


async def _publish(env: BenchEnv, account_id: uuid.UUID, task_ids: list[str], *, rate: float, seconds: float) -> int:
    """Publish task.progress events at ``rate`` per second, round-robin over the tasks, as workers would."""
    redis = await connect_redis(env.embedded.urls.redis_url)
    events = TaskEvents(redis, env.settings().events)
    ids = [uuid.UUID(task_id) for task_id in task_ids]
    start, sent = time.monotonic(), 0
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) - sent
            if due > 0:
                await asyncio.gather(*(
                    events.publish(TASK_PROGRESS, task_id=ids[(sent + n) % len(ids)], account_id=account_id,
                                   progress={"step": sent + n, "total_steps": 10**9})
                    for n in range(due)
                ))  # fmt: skip
                sent += due
            await asyncio.sleep(0.01)
    finally:
        await redis.aclose()
    return sent


def batch_submit(env: BenchEnv, keys: list[str], *, rounds: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {keys[0]}", "Content-Type": "application/json"}
    body = json.dumps(_batch_body("bench-instant-text", 1000))
    batch_job = {"base_url": env.base_url, "concurrency": 1,
                 "requests": [{"method": "POST", "url": f"{env.base_url}/v1/tasks/batch", "body": body,
                               "headers": headers}]}  # fmt: skip
    singles = submit_requests(env.base_url, keys[:1], "bench-instant-text", 1000)
    run_loadgen({"base_url": env.base_url, "requests": singles[:200], "concurrency": 8})  # warm-up
    run_loadgen(batch_job)
    times: dict[str, list[float]] = {"batch": [], "single_sequential": [], "single_32_connections": []}
    for _ in range(rounds):
        batch = run_loadgen(batch_job)
        assert batch["statuses"] == {"202": 1}, batch["statuses"]
        times["batch"].append(batch["seconds"])
        sequential = run_loadgen({"base_url": env.base_url, "requests": singles, "concurrency": 1})
        times["single_sequential"].append(sequential["seconds"])
        parallel = run_loadgen({"base_url": env.base_url, "requests": singles, "concurrency": 32})
        assert parallel["statuses"] == {"202": 1000}, parallel["statuses"]
        times["single_32_connections"].append(parallel["seconds"])
    summary = {name: _spread(values) for name, values in times.items()}
    ratios = {
        name: _spread([single / batch for single, batch in zip(times[name], times["batch"], strict=True)])
        for name in ("single_sequential", "single_32_connections")
    }
    return {"rounds": rounds, "tasks": 1000, "seconds": summary, "speedup_of_batch_over": ratios}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def interactive_latency(
    env: BenchEnv, keys: list[str], *, background: str, rate: float, seconds: float, batch_jobs: int
) -> dict[str, Any]:
    """Interactive tasks at ``rate``/s while ``background`` work waits: ``none``, ``batch`` (5,000 2-second tasks
    by batch submit) or ``same_queue`` (the same tasks submitted one by one). The worker runs ``batch_jobs``
    batch jobs at once."""
    worker = env.spawn("worker", BATCH_WORKER_MAX_JOBS=str(batch_jobs))
    time.sleep(2)
    if background == "batch":
        asyncio.run(_batch_submit(env, keys[1], "bench-2s-text", 5000))
    elif background == "same_queue":
        queued = run_loadgen({"base_url": env.base_url, "concurrency": 32,
                              "requests": submit_requests(env.base_url, keys[1:2], "bench-2s-text", 5000)})  # fmt: skip
        assert queued["statuses"] == {"202": 5000}, queued["statuses"]
    requests = submit_requests(env.base_url, keys[:1], "bench-instant-text", int(rate * seconds))
    since = time.time()
    run_loadgen({"base_url": env.base_url, "requests": requests, "concurrency": 8, "rate_per_s": rate})
    time.sleep(3)
    latencies = asyncio.run(_task_latencies(env, since))
    env.stop_procs(worker)
    return {"background": background, "batch_worker_max_jobs": batch_jobs, "rate_per_s": rate, **latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backgrounds", default="none,batch,same_queue", help="interactive_latency's scenarios")
    parser.add_argument("--batch-worker-max-jobs", type=int, default=5)
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg()}

    def fresh() -> list[str]:
        env.reset()
        keys = asyncio.run(env.accounts(2))
        env.spawn("web")
        env.wait_healthy()
        return keys

    def latency_rounds() -> dict[str, Any]:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in args.backgrounds.split(",")}
        for _ in range(args.rounds):
            for background in rounds:
                rounds[background].append(interactive_latency(
                    env, fresh(), background=background, rate=20, seconds=20, batch_jobs=args.batch_worker_max_jobs
                ))  # fmt: skip
        p99 = {name: [r["server_latency_ms"]["p99"] for r in runs] for name, runs in rounds.items()}
        return {
            "p99_ms": {name: _spread(values) for name, values in p99.items()},
            "p50_ms": {name: _spread([r["server_latency_ms"]["p50"] for r in runs]) for name, runs in rounds.items()},
            "p99_ratio_to_idle": {
                name: _spread([v / i for v, i in zip(values, p99["none"], strict=True)]) for name, values in p99.items()
            },
            "rounds": rounds,
        }

    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "sse_streams": lambda: sse_streams(env, fresh(), streams=args.streams, rate=500, seconds=30),
        "batch_submit": lambda: batch_submit(env, fresh(), rounds=args.rounds),
        "interactive_latency": latency_rounds,
    }
    chosen = args.only.split(",") if args.only else list(scenarios)
    try:
        for name in chosen:
            results[name] = scenarios[name]()
            results[f"load_average_after_{name}"] = os.getloadavg()
    finally:
        env.stop()
    path = write_result("events", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
