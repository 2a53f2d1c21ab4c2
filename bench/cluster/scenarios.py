"""The fault scenarios: each runs on a freshly built cluster, with tasks submitted at a steady rate and a
chat stream from the client host, one fault injected while they run, then the end state checked.

(a) a worker host partitioned from Redis, (b) one from PostgreSQL (and PgBouncer), (c) a web host from both,
(d) the Redis primary killed (Sentinel fails over), (e) PgBouncer restarted, (f) 200 ms latency and 5% loss on
every link, (g) two worker hosts SIGKILLed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.cluster.checks import Monitor, invariants, recovery, violations
from bench.cluster.hosts import HOSTS, ROOT, Cluster

Action = Callable[[Cluster], None]


@dataclass(frozen=True)
class Load:
    tasks: int
    rate: float  # tasks submitted per second
    fault_at_s: float
    fault_s: float  # how long a partition or degradation lasts (kills and restarts: 0)
    chat_rate: float = 4.0
    drain_timeout_s: float = 240.0

    @classmethod
    def full(cls, fault_s: float = 30) -> Load:
        return cls(tasks=2000, rate=20, fault_at_s=15, fault_s=fault_s)

    @classmethod
    def short(cls, fault_s: float = 6) -> Load:
        return cls(tasks=160, rate=8, fault_at_s=6, fault_s=fault_s, chat_rate=2, drain_timeout_s=90)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    inject: Action
    heal: Action | None = None  # None: the fault is an event (a kill, a restart), nothing to undo
    minutes: float = 0.5  # the full form's fault length, in minutes


def _kill(*names: str) -> Action:
    def act(cluster: Cluster) -> None:
        for name in names:
            cluster.signal(name, signal.SIGKILL)

    return act


def _degrade_all(cluster: Cluster) -> None:
    for host in HOSTS:
        cluster.applied = cluster.net.degrade(host, delay_ms=200, loss_pct=5)


def _restore_all(cluster: Cluster) -> None:
    for host in HOSTS:
        cluster.net.restore(host)


SCENARIOS = {
    s.key: s
    for s in [
        Scenario("a", "a worker host partitioned from Redis",
                 lambda c: c.net.partition("worker1", "redis", "redis2"), lambda c: c.net.heal("worker1")),
        Scenario("b", "a worker host partitioned from PostgreSQL and PgBouncer",
                 lambda c: c.net.partition("worker1", "pg", "pgbouncer"), lambda c: c.net.heal("worker1")),
        Scenario("c", "a web host partitioned from PostgreSQL, PgBouncer and Redis",
                 lambda c: c.net.partition("web1", "pg", "pgbouncer", "redis", "redis2"),
                 lambda c: c.net.heal("web1")),
        Scenario("d", "the Redis primary killed (Sentinel fails over to the replica)", _kill("redis")),
        Scenario("e", "PgBouncer restarted", lambda c: c.restart_pgbouncer()),
        Scenario("f", "200 ms latency and 5% loss on every link", _degrade_all, _restore_all, minutes=1),
        Scenario("g", "two worker hosts SIGKILLed", _kill("worker1", "worker2")),
    ]
}  # fmt: skip


def run_client(cluster: Cluster, job: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*cluster.net["client"].prefix(), sys.executable, "-m", "bench.cluster.client"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, start_new_session=True,
    )  # fmt: skip


def create_keys(cluster: Cluster, count: int) -> list[str]:
    import asyncio

    from shared.accounts.service import create_account
    from shared.infra.db import Database
    from shared.settings import Settings

    env = {**cluster.conduit_env(), "DATABASE_URL": cluster.direct_db_url, "DATABASE_POOL_MODE": "session"}

    async def go() -> list[str]:
        db = await Database.connect(Settings.from_env(env), min_size=1, max_size=2)
        try:
            return [
                (await create_account(db, email=f"cluster-{n}@example.com", credits=10**12)).api_key.secret
                for n in range(count)
            ]
        finally:
            await db.close()

    return asyncio.run(go())


def run_scenario(scenario: Scenario, load: Load, *, job_s: float = 2.0) -> dict[str, Any]:
    """Build a cluster, run the load with the fault, check the end state, tear down (always)."""
    cluster = Cluster(job_s=job_s)
    started = time.monotonic()
    try:
        cluster.start()
        keys = create_keys(cluster, 4)
        job = {"base_url": cluster.base_url, "keys": keys, "tasks": load.tasks, "rate": load.rate,
               "run": f"s{scenario.key}", "chat_rate": load.chat_rate, "chat_tail_s": 2}  # fmt: skip
        with Monitor(cluster) as monitor:
            client = run_client(cluster, job)
            assert client.stdin is not None
            client.stdin.write(json.dumps(job).encode())
            client.stdin.close()
            time.sleep(max(0.0, load.fault_at_s - monitor.now()))
            fault_at = monitor.now()
            scenario.inject(cluster)
            if scenario.heal is not None:
                time.sleep(max(0.0, fault_at + load.fault_s - monitor.now()))
                scenario.heal(cluster)
            fault_end = monitor.now()
            assert client.stdout is not None
            with client.stdout:
                result = json.loads(client.stdout.read())  # the client gives up on a submit after 300 s
            client.wait()
            accepted = result.pop("accepted")
            drained = monitor.wait_terminal(len(accepted), load.drain_timeout_s)
            samples = list(monitor.samples)
        found = invariants(cluster, accepted)
        wrong = violations(found)
        if not drained:
            wrong.append(f"tasks not all terminal {load.drain_timeout_s:.0f} s after the last submit")
        return {
            "scenario": scenario.key,
            "title": scenario.title,
            "tasks": load.tasks,
            "submit_rate_per_s": load.rate,
            "fault_at_s": round(fault_at, 1),
            "fault_s": round(fault_end - fault_at, 1),
            "fault_applied": cluster.applied,
            "client": result,
            **recovery(samples, fault_at=fault_at, fault_end=fault_end, submit_rate=load.rate),
            "end_state": found,
            "violations": wrong,
            "wall_s": round(time.monotonic() - started, 1),
        }
    finally:
        cluster.stop()
