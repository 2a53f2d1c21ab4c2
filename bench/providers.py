"""Benchmark of the upstream provider path. Run: ``.venv/bin/python -m bench.providers``.

1. One worker process draining 4000 queued tasks of a model served by an OpenAI-compatible upstream
   (simulated in its own process, bench/upstream.py) that answers every call after 2 s: completions per
   second and tasks in flight, through the real adapter over HTTP (retry wrapper, circuit breaker, the
   shared httpx client, settlement from the reported usage).
2. Adapter overhead per call, against the same upstream with no latency: the whole adapter path
   (``ProviderRegistry`` -> circuit breaker -> ``with_retries`` -> ``OpenAICompatProvider.start``) compared
   with a bare ``httpx`` POST of the same request on the same client; plus the pure request building and
   response parsing.

Results are printed and written to bench/out/providers.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, BenchEnv, free_port, write_result
from bench.core import worker_in_flight
from bench.upstream import KEY
from shared.catalog import load_catalog_paths
from shared.infra.ids import uuid7
from shared.infra.queue import connect_redis
from shared.providers import ProviderRegistry
from shared.providers.base import GenerationRequest
from shared.providers.openai_protocol import build_chat_request, parse_chat_response
from shared.providers.retry import with_retries
from shared.services import upstream_http_client
from shared.settings import DEFAULT_CATALOG, Settings

MODEL = "bench-upstream-2s-text"
PARAMS = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def start_upstream(latency_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", str(port), "--latency", str(latency_s)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the simulated upstream did not start")


async def adapter_overhead(redis_url: str, base_url: str, calls: int) -> dict[str, Any]:
    settings = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "CATALOG_PATH": os.pathsep.join([str(DEFAULT_CATALOG), str(ROOT / "bench" / "catalog.toml")]),
            "BENCH_UPSTREAM_BASE_URL": base_url,
            "BENCH_UPSTREAM_API_KEY": KEY,
        }
    )
    catalog = load_catalog_paths(settings.catalog_paths)
    model = catalog.get(MODEL)
    assert model is not None
    route = model.routes[0]
    redis = await connect_redis(redis_url)
    http = upstream_http_client(settings)
    try:
        registry = ProviderRegistry.build(catalog.providers, settings, http=http, redis=redis)
        provider = registry.get(route.provider)
        assert provider is not None and registry.breaker is not None
        breaker = registry.breaker
        request = GenerationRequest(task_id=uuid7(), model=model, route=route, params=PARAMS)
        body = build_chat_request(route, PARAMS)
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

        async def bare() -> None:
            response = await http.post(f"{base_url}/chat/completions", json=body, headers=headers)
            response.raise_for_status()
            response.json()

        async def adapter() -> None:
            gate = await breaker.allow(route.provider)
            await with_retries(functools.partial(provider.start, request), registry.policy)
            await breaker.record_success(route.provider, gate)

        async def no_breaker() -> None:
            await with_retries(functools.partial(provider.start, request), registry.policy)

        # Interleaved, so that machine noise hits every variant alike; medians of per-call wall and CPU time.
        variants = {"bare_httpx": bare, "adapter_without_breaker": no_breaker, "adapter_with_breaker": adapter}
        samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
        for round_ in range(calls + 200):
            for name, fn in variants.items():
                wall0, cpu0 = time.perf_counter(), time.process_time()
                await fn()
                if round_ >= 200:  # the first rounds warm up connections and caches
                    samples[name]["wall"].append(time.perf_counter() - wall0)
                    samples[name]["cpu"].append(time.process_time() - cpu0)
        results = {
            name: {
                "wall_us_p50": round(statistics.median(values["wall"]) * 1e6),
                "cpu_us_p50": round(statistics.median(values["cpu"]) * 1e6),
                "cpu_us_mean": round(statistics.fmean(values["cpu"]) * 1e6),
            }
            for name, values in samples.items()
        }
    finally:
        await http.aclose()
        await redis.aclose()

    sample = {"choices": [{"message": {"content": "hi there"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 9, "completion_tokens": 3}}  # fmt: skip
    started = time.process_time()
    for _ in range(20000):
        parse_chat_response("bench", json.loads(json.dumps(sample)), PARAMS)
        build_chat_request(route, PARAMS)
    pure = (time.process_time() - started) / 20000
    plain, full = results["bare_httpx"], results["adapter_with_breaker"]
    return {
        "calls": calls,
        **results,
        "pure_build_and_parse_cpu_us": round(pure * 1e6, 1),
        "overhead_per_call": {
            "cpu_us_mean": full["cpu_us_mean"] - plain["cpu_us_mean"],
            "wall_us_p50": full["wall_us_p50"] - plain["wall_us_p50"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--overhead-calls", type=int, default=2000)
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    slow, slow_url = start_upstream(2.0)
    fast, fast_url = start_upstream(0.0)
    # The Conduit processes that BenchEnv spawns inherit these.
    os.environ["BENCH_UPSTREAM_BASE_URL"] = slow_url
    os.environ["BENCH_UPSTREAM_API_KEY"] = KEY
    results: dict[str, Any] = {}
    try:
        keys = asyncio.run(env.accounts(64))
        env.spawn("web")
        env.wait_healthy()
        results["worker_in_flight_upstream"] = worker_in_flight(env, keys, tasks=args.tasks, model=MODEL)
        env.stop_procs()
        results["adapter_overhead"] = asyncio.run(
            adapter_overhead(env.embedded.urls.redis_url, fast_url, args.overhead_calls)
        )
    finally:
        for proc in (slow, fast):
            proc.terminate()
            proc.wait(timeout=10)
        env.stop()
    path = write_result("providers", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
