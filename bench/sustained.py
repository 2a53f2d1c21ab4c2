"""Sustained load on one busy account, with the worker running, as the platform runs. ``make bench`` runs the
short form; ``make bench-soak`` the 10-minute soak. Run: ``.venv/bin/python -m bench.sustained``.

1. End-to-end tasks/s (submit -> succeeded) on ``bench-instant-text`` (the ``local`` provider, instant): the
   load generator submits at concurrency 16 while one worker runs; the rate is the tasks that *succeeded*
   within the load window, on one account and spread over 64 accounts, with the CPU each process spent per
   succeeded task (API, worker, PostgreSQL, Redis). Then the worker alone: tasks queued first, one worker
   drains them, its CPU per task.
2. Chat completions (``bench-instant-chat`` on the instant upstream ``bench/lean_upstream.py``) at concurrency
   16 on one account, in rounds: min / median / max of the rounds and max/min, CPU per request of each process
   (API, worker, PostgreSQL, Redis, upstream).
3. Chat added latency at concurrency 1 over the direct upstream call, in rounds taking turns with the direct
   call: the p50 of each round.
4. With ``--soak-minutes``: tasks and chat mixed on one account, throughput per minute and the table sizes.

``--baseline REF`` runs the same scenarios against REF, taking turns with this tree ``--pairs`` times (a
temporary ``git worktree`` under .conduit/, this file and ``openai_compat.py`` copied into it, this virtualenv
with PYTHONPATH at that tree) so that the results compare two commits measured in the same run on the same
machine load; each number is also given as the median over the runs. Results: bench/out/sustained.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.common import BENCH_DIR, ROOT, BenchEnv, run_loadgen, submit_requests, write_result
from bench.openai_compat import chat_requests, cpu_seconds, direct_requests, start_upstream
from shared.infra.db import Database
from shared.ledger.invariants import check_ledger

TASK_MODEL = "bench-instant-text"
MEASURING = ("sustained.py", "openai_compat.py")  # copied into a baseline tree, so both trees are measured alike
HOT_TABLES = ("accounts", "holds", "hold_allocations", "ledger_entries", "usage_records", "tasks", "credit_lots")


def roles(env: BenchEnv, upstream_pid: int) -> dict[str, list[psutil.Process]]:
    """This benchmark's processes by role (the machine runs other PostgreSQL and Redis servers too)."""
    found: dict[str, list[psutil.Process]] = {"api": [], "worker": [], "postgres": [], "redis": []}
    for proc in env.procs:
        cmd = " ".join(psutil.Process(proc.pid).cmdline())
        found["worker" if "cli.main worker" in cmd else "api"].append(psutil.Process(proc.pid))
    found["upstream"] = [psutil.Process(upstream_pid)]
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(BENCH_DIR) in cmd and "redis-server" in cmd:
            found["redis"].append(proc)
        elif str(BENCH_DIR) in cmd and (proc.info["name"] == "postgres" or "postgres" in cmd.split(" ")[0]):
            found["postgres"].append(proc)
    return found


def fresh_platform(env: BenchEnv, *, accounts: int) -> list[str]:
    """An emptied database with ``accounts`` new accounts, an API process and a worker, ready: the accounts' keys."""
    env.reset()
    keys = asyncio.run(env.accounts(accounts))
    env.spawn("web")
    env.spawn("worker")
    env.wait_healthy()
    return keys


def per_request_us(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    return {role: round((after[role] - before.get(role, 0.0)) / max(count, 1) * 1e6) for role in after}


async def _succeeded_between(env: BenchEnv, since: float, until: float) -> int:
    conn = await asyncpg.connect(env.embedded.urls.database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE status = 'succeeded'"
                " AND completed_at >= to_timestamp($1) AND completed_at < to_timestamp($2)",
                since,
                until,
            )
        )
    finally:
        await conn.close()


async def _drain_and_check(env: BenchEnv, timeout_s: float = 120) -> dict[str, Any]:
    """Wait for the backlog to finish, then the ledger invariants (``conduit ledger check``)."""
    db = await Database.connect(env.settings(), min_size=1, max_size=2)
    try:
        deadline = time.monotonic() + timeout_s
        left = -1
        while time.monotonic() < deadline:
            left = await db.fetchval("SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')")
            if left == 0:
                break
            await asyncio.sleep(0.5)
        pending = await db.fetchval("SELECT count(*) FROM holds WHERE status = 'pending'")
        problems = await check_ledger(db)
        return {"unfinished_tasks": left, "pending_holds": pending, "invariant_problems": len(problems)}
    finally:
        await db.close()


def tasks_end_to_end(env: BenchEnv, upstream_pid: int, *, accounts: int, seconds: float) -> dict[str, Any]:
    keys = fresh_platform(env, accounts=accounts)
    job = {"base_url": env.base_url, "requests": submit_requests(env.base_url, keys, TASK_MODEL, 4000),
           "concurrency": 16}  # fmt: skip
    run_loadgen({**job, "duration_s": 2})  # warm-up
    asyncio.run(_drain_and_check(env, timeout_s=30))
    by_role = roles(env, upstream_pid)
    cpu0, since = cpu_seconds(by_role), time.time()
    submitted = run_loadgen({**job, "duration_s": seconds})
    until = time.time()
    cpu1 = cpu_seconds(by_role)
    done = asyncio.run(_succeeded_between(env, since, until))
    checks = asyncio.run(_drain_and_check(env))
    env.stop_procs()
    return {
        "accounts": accounts,
        "seconds": round(until - since, 2),
        "succeeded_per_s": round(done / (until - since), 1),
        "submitted_per_s": submitted["rate_per_s"],
        "submit_statuses": submitted["statuses"],
        "cpu_us_per_succeeded_task": per_request_us(cpu0, cpu1, done),
        **checks,
    }


async def _heartbeat_written(env: BenchEnv, timeout_s: float = 30) -> None:
    """Wait until a worker wrote its first heartbeat: its imports and services are up, its polling loop runs."""
    from redis.asyncio import Redis

    redis = Redis.from_url(env.embedded.urls.redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while not await redis.keys("conduit:worker:*"):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


def worker_startup_cpu_s(env: BenchEnv) -> float:
    """The CPU a worker spends starting (imports, services, first poll) with nothing queued: counted in the
    drain's CPU, it is a fixed cost, not a per-task one (about half of it for a drain of 2000 tasks)."""
    worker = env.spawn("worker")
    asyncio.run(_heartbeat_written(env))
    times = psutil.Process(worker.pid).cpu_times()
    env.stop_procs(worker)
    return float(times.user + times.system)


def worker_drain(env: BenchEnv, upstream_pid: int, *, tasks: int) -> dict[str, Any]:
    """The worker alone: ``tasks`` tasks of one account queued first, then one worker drains them; its CPU
    per task (and PostgreSQL's and Redis's) with no API load competing for the cores. ``worker_us_per_task_
    after_startup`` leaves out what a worker spends starting with an empty queue (measured first)."""
    env.reset()
    startup_s = worker_startup_cpu_s(env)
    keys = asyncio.run(env.accounts(1))
    env.spawn("web")
    env.wait_healthy()
    queued = run_loadgen({"base_url": env.base_url, "requests": submit_requests(env.base_url, keys, TASK_MODEL, tasks),
                          "concurrency": 16})  # fmt: skip
    assert queued["statuses"] == {"202": tasks}, queued["statuses"]
    web = list(env.procs)
    worker = env.spawn("worker")
    by_role = roles(env, upstream_pid)
    by_role["api"] = []  # idle meanwhile
    cpu0, began = cpu_seconds(by_role), time.monotonic()
    checks = asyncio.run(_drain_and_check(env))
    seconds = time.monotonic() - began
    cpu1 = cpu_seconds(by_role)
    env.stop_procs(worker, *web)
    after_startup = (cpu1["worker"] - cpu0.get("worker", 0.0) - startup_s) / tasks * 1e6
    return {"tasks": tasks, "drain_seconds": round(seconds, 2), "tasks_per_s": round(tasks / seconds, 1),
            "cpu_us_per_task": per_request_us(cpu0, cpu1, tasks), "worker_startup_cpu_ms": round(startup_s * 1000),
            "worker_us_per_task_after_startup": round(after_startup), **checks}  # fmt: skip


def chat(env: BenchEnv, upstream_pid: int, port: int, *, rounds: int, seconds: float, per_round: int) -> dict[str, Any]:
    keys = fresh_platform(env, accounts=1)
    url = f"{env.base_url}/v1/chat/completions"
    job = {"base_url": env.base_url, "requests": chat_requests(url, keys, 2000), "concurrency": 16}
    run_loadgen({**job, "duration_s": 2})  # warm-up
    by_role = roles(env, upstream_pid)
    rates: list[float] = []
    p50s: list[float] = []
    served = 0
    cpu0 = cpu_seconds(by_role)
    for _ in range(rounds):
        result = run_loadgen({**job, "duration_s": seconds})
        assert set(result["statuses"]) == {"200"}, result["statuses"]
        rates.append(result["rate_per_s"])
        p50s.append(result["latency_ms"]["p50"])
        served += result["requests"]
    cpu1 = cpu_seconds(by_role)
    # Added latency at concurrency 1: rounds taking turns with the direct upstream call.
    direct = {"base_url": f"http://127.0.0.1:{port}", "concurrency": 1, "requests": direct_requests(port, per_round)}
    conduit = {"base_url": env.base_url, "concurrency": 1, "requests": chat_requests(url, keys, per_round)}
    added: list[float] = []
    for _ in range(rounds):
        d, c = run_loadgen(direct)["latency_ms"]["p50"], run_loadgen(conduit)["latency_ms"]["p50"]
        added.append(round(c - d, 3))
    checks = asyncio.run(_drain_and_check(env))
    env.stop_procs()
    return {
        "c16_rounds_per_s": rates,
        "c16_min": min(rates),
        "c16_median": statistics.median(rates),
        "c16_max": max(rates),
        "c16_max_over_min": round(max(rates) / min(rates), 3),
        "c16_p50_ms": p50s,
        "cpu_us_per_request": per_request_us(cpu0, cpu1, served),
        "c1_added_p50_ms_rounds": added,
        "c1_added_p50_ms_median": statistics.median(added),
        **checks,
    }


async def _table_sizes(env: BenchEnv) -> dict[str, int]:
    conn = await asyncpg.connect(env.embedded.urls.database_url)
    try:
        rows = await conn.fetch(
            "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class WHERE relname = ANY($1::text[])",
            list(HOT_TABLES),
        )
        return {row["relname"]: round(row["bytes"] / 2**20, 1) for row in rows}  # MiB
    finally:
        await conn.close()


def soak(env: BenchEnv, upstream_pid: int, *, minutes: int, minute_s: float) -> dict[str, Any]:
    """Tasks (concurrency 8) and chat (concurrency 8) on one account at once, minute by minute."""
    keys = fresh_platform(env, accounts=1)
    url = f"{env.base_url}/v1/chat/completions"
    jobs = {
        "chat": {"base_url": env.base_url, "requests": chat_requests(url, keys, 2000), "concurrency": 8},
        "tasks": {"base_url": env.base_url, "requests": submit_requests(env.base_url, keys, TASK_MODEL, 2000),
                  "concurrency": 8},
    }  # fmt: skip
    per_minute: list[dict[str, Any]] = []
    for _ in range(minutes):
        since = time.time()
        with ThreadPoolExecutor(len(jobs)) as pool:
            running = {name: pool.submit(run_loadgen, {**job, "duration_s": minute_s}) for name, job in jobs.items()}
            results = {name: future.result() for name, future in running.items()}
        until = time.time()
        done = asyncio.run(_succeeded_between(env, since, until))
        per_minute.append({
            "chat_per_s": results["chat"]["rate_per_s"],
            "tasks_submitted_per_s": results["tasks"]["rate_per_s"],
            "tasks_succeeded_per_s": round(done / (until - since), 1),
            "table_mib": asyncio.run(_table_sizes(env)),
        })  # fmt: skip
    checks = asyncio.run(_drain_and_check(env))
    env.stop_procs()

    def total(minute: dict[str, Any]) -> float:
        return float(minute["chat_per_s"] + minute["tasks_succeeded_per_s"])

    return {"minute_s": minute_s, "per_minute": per_minute,
            "last_over_first": round(total(per_minute[-1]) / total(per_minute[0]), 3), **checks}  # fmt: skip


def run_here(args: argparse.Namespace) -> dict[str, Any]:
    """Every chosen scenario against the code of this tree."""
    env = BenchEnv()
    env.start()
    upstream, port = start_upstream()
    results: dict[str, Any] = {"load_average_before": os.getloadavg()}
    chosen = args.only.split(",")
    try:
        if "tasks" in chosen:
            for accounts in (1, 64):
                results[f"tasks_{accounts}_accounts"] = tasks_end_to_end(
                    env, upstream.pid, accounts=accounts, seconds=args.seconds
                )
        if "worker" in chosen:
            results["worker_drain"] = worker_drain(env, upstream.pid, tasks=args.drain_tasks)
        if "chat" in chosen:
            results["chat_one_account"] = chat(
                env, upstream.pid, port, rounds=args.rounds, seconds=args.round_seconds, per_round=args.per_round
            )
        if "soak" in chosen:
            results["soak"] = soak(env, upstream.pid, minutes=args.soak_minutes, minute_s=args.minute_seconds)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
        env.stop()
    results["load_average_after"] = os.getloadavg()
    return results


def run_tree(tree: Path, argv: list[str]) -> dict[str, Any]:
    """This benchmark against the code of another tree, in its own process."""
    if tree.resolve() != ROOT:  # the measuring code is this tree's, the measured code the other tree's
        for name in MEASURING:
            shutil.copy(ROOT / "bench" / name, tree / "bench" / name)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-m", "bench.sustained", *argv, "--here", out.name], cwd=tree, env=env,
                       check=True)  # fmt: skip
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def _median(runs: list[Any]) -> Any:
    """The median over runs of every number in their results (dicts of the same shape); anything else: the
    last run's."""
    if all(isinstance(run, dict) for run in runs):
        return {key: _median([run[key] for run in runs if key in run]) for key in runs[-1]}
    if all(isinstance(run, int | float) and not isinstance(run, bool) for run in runs):
        return round(statistics.median(runs), 3)
    return runs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="tasks,worker,chat", help="comma-separated: tasks, worker, chat, soak")
    parser.add_argument("--drain-tasks", type=int, default=3000, help="tasks the worker drains alone")
    parser.add_argument("--seconds", type=float, default=8, help="the load window of each tasks scenario")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=4)
    parser.add_argument("--per-round", type=int, default=300, help="chat requests per round at concurrency 1")
    parser.add_argument("--soak-minutes", type=int, default=10)
    parser.add_argument("--minute-seconds", type=float, default=60, help="shorter 'minutes' for a quick soak")
    parser.add_argument("--baseline", help="a git ref measured in the same run, taking turns with this tree")
    parser.add_argument("--pairs", type=int, default=1, help="runs of each tree, taking turns")
    parser.add_argument("--here", help=argparse.SUPPRESS)  # write this tree's results to this file
    args, _ = parser.parse_known_args()
    argv = [a for a in sys.argv[1:] if not a.startswith("--baseline") and a != args.baseline]
    if "--pairs" in argv:
        del argv[argv.index("--pairs") : argv.index("--pairs") + 2]
    if args.here:
        Path(args.here).write_text(json.dumps(run_here(args), default=str))
        return
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "pairs": args.pairs}
    trees = {"this_tree": ROOT}
    if args.baseline:
        commit = subprocess.run(["git", "rev-parse", args.baseline], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        tree = ROOT / ".conduit" / f"baseline-{commit[:12]}"
        if not tree.exists():
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True)
        trees = {"baseline": tree, **trees}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    try:
        for _ in range(args.pairs):  # taking turns, so that the machine's load changes hit both alike
            for name, tree in trees.items():
                runs[name].append(run_tree(tree, argv))
    finally:
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(trees["baseline"])], cwd=ROOT, check=False)
    for name, tree in trees.items():
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree if tree.exists() else ROOT,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        results[name] = {"commit": args.baseline if name == "baseline" else commit, "median": _median(runs[name]),
                         "runs": runs[name]}  # fmt: skip
    path = write_result("sustained", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
