"""Benchmarks for the core pipeline. Run: ``make bench`` or ``.venv/bin/python -m bench.core``.

1. submit throughput: POST /v1/tasks (auth + validation + hold + enqueue) against one API process;
2. submit -> succeeded latency (server timestamps) at a steady 100 tasks/s through one worker;
3. one worker process with >= 500 tasks in flight on a model whose provider takes 2 s per call.

Everything runs on this machine: embedded PostgreSQL (durable settings) and Redis, Conduit processes
started as the Procfile starts them, and the load generator in its own process. Results are printed and
written to bench/out/core.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
import psutil

from bench.common import BenchEnv, run_loadgen, submit_requests, write_result


def process_cpu() -> dict[str, float]:
    """CPU seconds so far, grouped by role (API, worker, PostgreSQL, Redis)."""
    totals: dict[str, float] = defaultdict(float)
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            times = proc.cpu_times()
            cmd = " ".join(proc.info["cmdline"] or [])
            name = proc.info["name"]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "cli.main web" in cmd:
            role = "api"
        elif "cli.main worker" in cmd:
            role = "worker"
        elif name == "postgres":
            role = "postgres"
        elif "redis-server" in cmd:
            role = "redis"
        else:
            continue
        totals[role] += times.user + times.system
    return totals


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def submit_throughput(env: BenchEnv, keys: list[str], *, accounts: int, seconds: float) -> dict[str, Any]:
    requests = submit_requests(env.base_url, keys[:accounts], "bench-instant-text", 4000)
    job = {"base_url": env.base_url, "requests": requests, "concurrency": 32}
    run_loadgen({**job, "duration_s": 3})  # warm-up: connections, statement caches, JIT-free steady state
    cpu0, gen0 = process_cpu(), children_cpu()
    result = run_loadgen({**job, "duration_s": seconds})
    cpu1, gen1 = process_cpu(), children_cpu()
    n = result["requests"]
    cpu = {role: round((cpu1[role] - cpu0.get(role, 0)) / n * 1e6) for role in cpu1}
    cpu["load_generator"] = round((gen1 - gen0) / n * 1e6)
    return {"accounts": accounts, "concurrency": 32, **result, "cpu_us_per_request": cpu}


async def _task_latencies(env: BenchEnv, since: float) -> dict[str, Any]:
    conn = await asyncpg.connect(env.embedded.urls.database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT status, EXTRACT(EPOCH FROM (completed_at - created_at)) * 1000 AS ms
            FROM tasks WHERE created_at >= to_timestamp($1) AND model = 'bench-instant-text'
            """,
            since,
        )
    finally:
        await conn.close()
    done = sorted(float(r["ms"]) for r in rows if r["status"] == "succeeded")
    pct = lambda p: round(done[min(len(done) - 1, int(len(done) * p / 100))], 2) if done else None  # noqa: E731
    return {
        "tasks": len(rows),
        "succeeded": len(done),
        "server_latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(done[-1], 2) if done else None,
        },
    }


def submit_to_success(env: BenchEnv, keys: list[str], *, rate: float, seconds: float) -> dict[str, Any]:
    worker = env.spawn("worker")
    time.sleep(2)
    requests = submit_requests(env.base_url, keys, "bench-instant-text", int(rate * seconds))
    run_loadgen({"base_url": env.base_url, "requests": requests[:200], "concurrency": 8, "rate_per_s": rate})
    since = time.time()
    client = run_loadgen({"base_url": env.base_url, "requests": requests, "concurrency": 16, "rate_per_s": rate})
    time.sleep(2)  # let the last tasks finish
    latencies = asyncio.run(_task_latencies(env, since))
    env.stop_procs(worker)
    return {"rate_per_s": rate, "seconds": seconds, **latencies, "submit_http": client["latency_ms"]}


def worker_in_flight(env: BenchEnv, keys: list[str], *, tasks: int, model: str = "bench-2s-text") -> dict[str, Any]:
    """Queue ``tasks`` 2-second tasks first, then start one worker and watch it drain the queue."""
    requests = submit_requests(env.base_url, keys, model, tasks)
    submitted = run_loadgen({"base_url": env.base_url, "requests": requests, "concurrency": 32})
    assert submitted["statuses"].get("202") == tasks, submitted["statuses"]
    worker = env.spawn("worker")
    proc = psutil.Process(worker.pid)
    samples: list[dict[str, float]] = []

    async def watch() -> None:
        conn = await asyncpg.connect(env.embedded.urls.database_url)
        try:
            start = time.monotonic()
            while True:
                row = await conn.fetchrow(
                    """
                    SELECT count(*) FILTER (WHERE status = 'succeeded') AS done,
                           count(*) FILTER (WHERE status = 'running') AS running
                    FROM tasks WHERE model = $1
                    """,
                    model,
                )
                assert row is not None
                samples.append(
                    {
                        "t": time.monotonic() - start,
                        "done": row["done"],
                        "running": row["running"],
                        "rss_mb": proc.memory_info().rss / 2**20,
                    }
                )
                if row["done"] >= tasks or time.monotonic() - start > 120:
                    return
                await asyncio.sleep(0.25)
        finally:
            await conn.close()

    cpu0 = process_cpu()
    asyncio.run(watch())
    cpu1 = process_cpu()
    env.stop_procs(worker)
    # Steady state: from the first completion until 90% of the tasks are done.
    first = next(s for s in samples if s["done"] > 0)
    last = next(s for s in samples if s["done"] >= 0.9 * tasks)
    rate = (last["done"] - first["done"]) / max(last["t"] - first["t"], 1e-9)
    running = [s["running"] for s in samples if first["t"] <= s["t"] <= last["t"]]
    return {
        "tasks": tasks,
        "provider_latency_s": 2.0,
        "completions_per_s": round(rate, 1),
        "in_flight": {"max": max(s["running"] for s in samples), "median": statistics.median(running)},
        "worker_rss_mb": {"max": round(max(s["rss_mb"] for s in samples), 1)},
        "drain_seconds": round(samples[-1]["t"], 1),
        "cpu_seconds": {role: round(cpu1[role] - cpu0.get(role, 0), 2) for role in cpu1},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--in-flight-tasks", type=int, default=4000)
    parser.add_argument("--only", help="comma-separated scenarios (default: all), e.g. submit_to_success")
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    results: dict[str, Any] = {}

    def fresh() -> list[str]:
        env.reset()
        keys = asyncio.run(env.accounts(64))
        env.spawn("web")
        env.wait_healthy()
        return keys

    scenarios: dict[str, Callable[[list[str]], dict[str, Any]]] = {
        "submit_throughput_many_accounts": lambda keys: submit_throughput(env, keys, accounts=64, seconds=args.seconds),
        "submit_throughput_one_account": lambda keys: submit_throughput(env, keys, accounts=1, seconds=args.seconds),
        "submit_to_success": lambda keys: submit_to_success(env, keys, rate=100, seconds=20),
        "worker_in_flight": lambda keys: worker_in_flight(env, keys, tasks=args.in_flight_tasks),
    }
    chosen = args.only.split(",") if args.only else list(scenarios)
    try:
        for name in chosen:
            results[name] = scenarios[name](fresh())
    finally:
        env.stop()
    path = write_result("core", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
