"""Benchmark of the OpenAI-compatible chat completion path. Run: ``.venv/bin/python -m bench.openai_compat``.

Setup: embedded PostgreSQL (durable) and Redis, one ``conduit web`` process, and an instant OpenAI-compatible
upstream (``bench/lean_upstream.py``: a raw asyncio server answering a pre-encoded completion). The load
generator (``bench/loadgen.py``) runs in its own process and sends non-streaming
``POST /v1/chat/completions`` for ``bench-instant-chat`` (priced per token), spread over 64 accounts.

1. Added latency at concurrency 1: rounds alternating the direct upstream call (the same request, straight to
   the upstream), the stack's floor (``bench/stack_floor.py``: Litestar under uvicorn forwarding the request
   through the same upstream client, nothing else) and the call through Conduit (key auth, rate-limit check,
   hold, upstream call through the adapter, settlement + usage record, response); the p50 of each, the
   differences and the ratio.
2. Throughput of one API process at concurrency 16 (and, for reference, of the stack's floor and the direct
   upstream), with the CPU each process of this benchmark spent per request.
3. Server-side steps of one completion, each timed alone in this process (``bench/openai_parts.py``): where the
   added latency goes.
4. Checks: every answer 200, one usage record per completion, the ledger invariants hold.

Results are printed and written to bench/out/openai_compat.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import asyncpg
import psutil

from bench import openai_parts
from bench.common import BENCH_DIR, PY_SPY, ROOT, BenchEnv, free_port, run_loadgen, write_result
from shared.infra.db import Database
from shared.ledger.invariants import check_ledger

MODEL = "bench-instant-chat"
UPSTREAM_KEY = "sk-bench-instant"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def start_server(module: str, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m <module> --port N <args>``, once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{module} did not start")


def start_upstream() -> tuple[subprocess.Popen[bytes], int]:
    """The instant upstream (``bench.lean_upstream``), and the environment that points the catalog's
    ``bench-instant`` provider at it (inherited by the ``conduit web`` processes started after)."""
    upstream, port = start_server("bench.lean_upstream")
    os.environ["BENCH_INSTANT_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    os.environ["BENCH_INSTANT_API_KEY"] = UPSTREAM_KEY
    return upstream, port


def start_floor(upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    return start_server("bench.stack_floor", "--upstream", f"http://127.0.0.1:{upstream_port}/v1")


def chat_requests(url: str, keys: list[str], count: int, key_header: str = "Authorization") -> list[dict[str, Any]]:
    body = json.dumps({**BODY, "model": MODEL})
    return [
        {
            "method": "POST",
            "url": url,
            "body": body,
            "headers": {key_header: f"Bearer {keys[n % len(keys)]}", "Content-Type": "application/json"},
        }
        for n in range(count)
    ]


def direct_requests(port: int, count: int) -> list[dict[str, Any]]:
    body = json.dumps({**BODY, "model": "bench-llama", "stream": False})
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return [{"method": "POST", "url": url, "body": body, "headers": headers} for _ in range(count)]


def bench_processes(api_pid: int, upstream_pid: int, floor_pid: int) -> dict[str, list[psutil.Process]]:
    """This benchmark's own processes by role (the machine may run other PostgreSQL and Redis servers)."""
    roles: dict[str, list[psutil.Process]] = {
        "api": [psutil.Process(api_pid)],
        "upstream": [psutil.Process(upstream_pid)],
        "floor": [psutil.Process(floor_pid)],
        "postgres": [],
        "redis": [],
    }
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(BENCH_DIR) not in cmd:
            continue
        if proc.info["name"] == "postgres" or "postgres" in cmd.split(" ")[0]:
            roles["postgres"].append(proc)
        elif "redis-server" in cmd:
            roles["redis"].append(proc)
    return roles


def cpu_seconds(roles: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """CPU seconds so far of each role's processes and their children (PostgreSQL's backends)."""
    totals: dict[str, float] = {}
    for role, procs in roles.items():
        total = 0.0
        for root in procs:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in family:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        totals[role] = total
    return totals


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor_requests(floor_port: int, count: int) -> list[dict[str, Any]]:
    body = json.dumps({**BODY, "model": "bench-llama", "stream": False})
    url = f"http://127.0.0.1:{floor_port}/v1/chat/completions"
    return [{"method": "POST", "url": url, "body": body, "headers": {"Content-Type": "application/json"}}] * count


def added_latency(
    env: BenchEnv, keys: list[str], port: int, floor_port: int, *, rounds: int, per_round: int
) -> dict[str, Any]:
    """Rounds of the direct upstream call, the stack's floor and Conduit, taking turns (machine noise hits all
    three alike); the median of each one's p50 over the rounds."""
    jobs: dict[str, dict[str, Any]] = {
        "direct": {"base_url": f"http://127.0.0.1:{port}", "concurrency": 1,
                   "requests": direct_requests(port, per_round)},
        "floor": {"base_url": f"http://127.0.0.1:{floor_port}", "concurrency": 1,
                  "requests": floor_requests(floor_port, per_round)},
        "conduit": {"base_url": env.base_url, "concurrency": 1,
                    "requests": chat_requests(f"{env.base_url}/v1/chat/completions", keys, per_round)},
    }  # fmt: skip
    for job in jobs.values():
        run_loadgen({**job, "requests": job["requests"][:300]})  # warm-up
    p50s: dict[str, list[float]] = {name: [] for name in jobs}
    p99s: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            result = run_loadgen(job)
            assert set(result["statuses"]) == {"200"}, (name, result["statuses"])
            p50s[name].append(result["latency_ms"]["p50"])
            p99s[name].append(result["latency_ms"]["p99"])
    p50 = {name: statistics.median(values) for name, values in p50s.items()}
    return {
        "rounds": rounds,
        "requests_per_round": per_round,
        "direct_p50_ms": round(p50["direct"], 3),
        "floor_p50_ms": round(p50["floor"], 3),
        "conduit_p50_ms": round(p50["conduit"], 3),
        "added_p50_ms": round(p50["conduit"] - p50["direct"], 3),
        "ratio_p50": round(p50["conduit"] / p50["direct"], 2),
        "floor_added_p50_ms": round(p50["floor"] - p50["direct"], 3),
        "conduit_over_floor_p50_ms": round(p50["conduit"] - p50["floor"], 3),
        "direct_p99_ms": round(statistics.median(p99s["direct"]), 3),
        "floor_p99_ms": round(statistics.median(p99s["floor"]), 3),
        "conduit_p99_ms": round(statistics.median(p99s["conduit"]), 3),
        "round_p50s_ms": p50s,
    }


def _profile(pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy (``pip install py-spy``) on the API process during the measured run: bench/out/api-profile.txt."""
    out = ROOT / "bench" / "out" / "api-profile.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
            "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def throughput(
    env: BenchEnv,
    keys: list[str],
    port: int,
    floor_port: int,
    roles: dict[str, list[psutil.Process]],
    *,
    seconds: float,
    profile: bool = False,
) -> dict[str, Any]:
    conduit = {"base_url": env.base_url, "concurrency": 16,
               "requests": chat_requests(f"{env.base_url}/v1/chat/completions", keys, 4096)}  # fmt: skip
    run_loadgen({**conduit, "duration_s": 3})  # warm-up
    profiler = _profile(roles["api"][0].pid, seconds) if profile else None
    result, cpu = _measured(conduit, roles, seconds)
    if profiler is not None:
        profiler.wait(timeout=60)
    floor = {"base_url": f"http://127.0.0.1:{floor_port}", "concurrency": 16,
             "requests": floor_requests(floor_port, 1024)}  # fmt: skip
    run_loadgen({**floor, "duration_s": 2})  # warm-up
    floor_result, floor_cpu = _measured(floor, roles, min(seconds, 6))
    direct = {"base_url": f"http://127.0.0.1:{port}", "concurrency": 16, "requests": direct_requests(port, 1024)}
    direct_result = run_loadgen({**direct, "duration_s": min(seconds, 5)})
    return {
        "concurrency": 16,
        "conduit": result,
        "cpu_us_per_request": cpu,
        "stack_floor": {"rate_per_s": floor_result["rate_per_s"], "latency_ms": floor_result["latency_ms"],
                        "cpu_us_per_request": {k: v for k, v in floor_cpu.items() if k in ("floor", "upstream")}},
        "direct_upstream": {"rate_per_s": direct_result["rate_per_s"], "latency_ms": direct_result["latency_ms"]},
        "load_average": os.getloadavg(),
    }  # fmt: skip


def _measured(
    job: dict[str, Any], roles: dict[str, list[psutil.Process]], seconds: float
) -> tuple[dict[str, Any], dict[str, int]]:
    """Run ``job`` for ``seconds``; its result and each process role's CPU per request (µs)."""
    cpu0, gen0 = cpu_seconds(roles), children_cpu()
    result = run_loadgen({**job, "duration_s": seconds})
    cpu1, gen1 = cpu_seconds(roles), children_cpu()
    assert set(result["statuses"]) == {"200"}, result["statuses"]
    n = result["requests"]
    cpu = {role: round((cpu1[role] - cpu0[role]) / n * 1e6) for role in cpu1}
    cpu["load_generator"] = round((gen1 - gen0) / n * 1e6)
    return result, cpu


async def checks(env: BenchEnv, expected_min: int) -> dict[str, Any]:
    conn = await asyncpg.connect(env.embedded.urls.database_url)
    try:
        records = await conn.fetchval("SELECT count(*) FROM usage_records WHERE source = 'chat.completion'")
        pending = await conn.fetchval("SELECT count(*) FROM holds WHERE status = 'pending'")
        charges = await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'charge'")
    finally:
        await conn.close()
    db = await Database.connect(env.settings(), min_size=1, max_size=2)
    try:
        problems = await check_ledger(db)
    finally:
        await db.close()
    assert records >= expected_min, (records, expected_min)
    assert pending == 0 and records == charges and problems == [], (pending, records, charges, problems)
    return {"usage_records": records, "charge_entries": charges, "pending_holds": pending, "invariant_problems": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="py-spy the API process during the throughput run")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    upstream, port = start_upstream()
    floor, floor_port = start_floor(port)
    results: dict[str, Any] = {}
    try:
        keys = asyncio.run(env.accounts(64))
        api = env.spawn("web")
        env.wait_healthy()
        roles = bench_processes(api.pid, upstream.pid, floor.pid)
        if not args.skip_latency:
            results["added_latency_c1"] = added_latency(
                env, keys, port, floor_port, rounds=args.rounds, per_round=args.per_round
            )
        results["throughput_c16"] = throughput(
            env, keys, port, floor_port, roles, seconds=args.seconds, profile=args.profile
        )
        served = results["throughput_c16"]["conduit"]["requests"]
        results["checks"] = asyncio.run(checks(env, served))
        env.stop_procs()
        results["steps_c1"] = openai_parts.run(env.settings(), keys[0], MODEL)
    finally:
        for proc in (floor, upstream):
            proc.terminate()
            proc.wait(timeout=10)
        env.stop()
    path = write_result("openai_compat", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
