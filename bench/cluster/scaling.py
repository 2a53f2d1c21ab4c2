"""Throughput with 1, 2 and 3 worker hosts, in one run: a backlog of tasks (an upstream with a fixed job time)
is queued with no worker running, then drained by k workers; the rate is taken between 10% and 90% of the
backlog done (worker start-up left out), with the CPU each host used meanwhile.

Every host shares this machine's cores, so the figure to read is the per-host CPU and the in-flight capacity
(``WORKER_MAX_JOBS`` per worker; a task waiting on its upstream job holds no slot), not a speed-up.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.cluster.checks import Monitor, invariants, violations
from bench.cluster.hosts import WORKERS, Cluster
from bench.cluster.scenarios import create_keys, run_client


def _time_at(monitor: Monitor, done: int) -> float | None:
    return next((s.t for s in monitor.samples if s.terminal >= done), None)


def drain(cluster: Cluster, monitor: Monitor, keys: list[str], *, workers: int, tasks: int) -> dict[str, Any]:
    already = monitor.samples[-1].terminal if monitor.samples else 0
    job = {"base_url": cluster.base_url, "keys": keys, "tasks": tasks, "rate": 100, "run": f"k{workers}"}
    client = run_client(cluster, job)
    out, _ = client.communicate(json.dumps(job).encode(), timeout=600)
    accepted = len(json.loads(out)["accepted"])
    cpu0, t0 = cluster.cpu_by_host(), time.monotonic()
    for worker in WORKERS[:workers]:
        cluster.conduit(worker, worker, "worker")
    drained = monitor.wait_terminal(already + accepted, 600)
    cpu1, wall = cluster.cpu_by_host(), time.monotonic() - t0
    t10, t90 = _time_at(monitor, already + accepted // 10), _time_at(monitor, already + accepted * 9 // 10)
    peak = max((s.running for s in monitor.samples if t10 is not None and s.t >= t10), default=0)
    for worker in WORKERS[:workers]:
        cluster.signal(worker)
    return {
        "workers": workers,
        "tasks": accepted,
        "drained": drained,
        "tasks_per_s": round(accepted * 0.8 / (t90 - t10), 1) if t10 is not None and t90 and t90 > t10 else None,
        "drain_s": round(wall, 1),
        "peak_running": peak,
        "in_flight_capacity": workers * 1000,
        "cpu_pct_by_host": {host: round(100 * (cpu1[host] - cpu0.get(host, 0.0)) / wall) for host in sorted(cpu1)},
    }


def run_scaling(tasks: int = 600, job_s: float = 2.0) -> dict[str, Any]:
    cluster = Cluster(job_s=job_s)
    try:
        cluster.start(workers=0)
        keys = create_keys(cluster, 4)
        with Monitor(cluster, every_s=0.5) as monitor:
            runs = [drain(cluster, monitor, keys, workers=k, tasks=tasks) for k in (1, 2, 3)]
        found = invariants(cluster, {str(n): "" for n in range(sum(r["tasks"] for r in runs))})
        return {"upstream_job_s": job_s, "runs": runs, "end_state": found, "violations": violations(found)}
    finally:
        cluster.stop()
