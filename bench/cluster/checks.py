"""What the harness observes, through the control link: task progress over time (for throughput and the time
to recover it) and, after a scenario, the invariants a user and the operator rely on: every task terminal, no
hold pending, ``conduit ledger check`` clean, no task charged twice, no upstream job created twice for a task.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.cluster.hosts import ROOT, Cluster

PROGRESS_SQL = """
SELECT count(*) AS created, count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled')) AS terminal,
       count(*) FILTER (WHERE status = 'running') AS running
FROM tasks WHERE model = 'cluster-job'
"""


@dataclass
class Sample:
    t: float
    created: int
    terminal: int
    running: int


@dataclass
class Monitor:
    """Samples task progress every ``every_s`` seconds in a thread (its own connection, direct to PostgreSQL)."""

    cluster: Cluster
    every_s: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="cluster-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def now(self) -> float:
        return time.monotonic() - self.start

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._loop())

    async def _loop(self) -> None:
        conn: asyncpg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(self.cluster.direct_db_url, timeout=3)
                row = await conn.fetchrow(PROGRESS_SQL, timeout=3)
                assert row is not None
                self.samples.append(Sample(round(self.now(), 2), row["created"], row["terminal"], row["running"]))
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn = None
            self._stop.wait(self.every_s)
        if conn is not None:
            await conn.close()

    def wait_terminal(self, expected: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples and self.samples[-1].terminal >= expected and self.samples[-1].created >= expected:
                return True
            time.sleep(0.5)
        return False


def rate(samples: list[Sample], t0: float, t1: float) -> float:
    """Tasks finished per second between t0 and t1."""
    inside = [s for s in samples if t0 <= s.t <= t1]
    if len(inside) < 2 or inside[-1].t == inside[0].t:
        return 0.0
    return (inside[-1].terminal - inside[0].terminal) / (inside[-1].t - inside[0].t)


def recovery(samples: list[Sample], *, fault_at: float, fault_end: float, submit_rate: float) -> dict[str, Any]:
    """How the cluster came back after the fault: the completion rate before it and at its worst; the seconds
    from the fault's end (a kill or restart: the event) until, after the worst moment, a 3-s window finished
    tasks at >= 90% of the submission rate again (``throughput_back_s``), and until, after the backlog's peak,
    the backlog (created - finished) was back to its level before the fault (``caught_up_s``)."""
    before = [s for s in samples if fault_at - 8 <= s.t <= fault_at]
    baseline_backlog = max((s.created - s.terminal for s in before), default=0)
    disturbed = [s for s in samples if fault_at <= s.t <= max(fault_end, fault_at + 10)]
    worst = min(disturbed, key=lambda s: rate(samples, s.t, s.t + 3), default=None)
    after = [s for s in samples if fault_at <= s.t <= fault_end + 30]
    peak = max(after, key=lambda s: s.created - s.terminal, default=None)
    throughput_back = caught_up = None
    for s in samples:
        if s.t < fault_end:
            continue
        back = worst is not None and s.t >= worst.t and rate(samples, s.t, s.t + 3) >= 0.9 * submit_rate
        if throughput_back is None and back:
            throughput_back = round(s.t - fault_end, 1)
        low = peak is not None and s.t >= peak.t and s.created - s.terminal <= baseline_backlog + submit_rate
        if caught_up is None and low:
            caught_up = round(s.t - fault_end, 1)
    return {
        "rate_before_per_s": round(rate(samples, fault_at - 8, fault_at), 1),
        "lowest_rate_during_per_s": None if worst is None else round(rate(samples, worst.t, worst.t + 3), 1),
        "backlog_before": baseline_backlog,
        "peak_backlog": max((s.created - s.terminal for s in samples), default=0),
        "throughput_back_s": throughput_back,
        "caught_up_s": caught_up,
    }


def upstream_counts(cluster: Cluster) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(f"http://{cluster.ip('upstream')}/_counts", timeout=10) as answer:
        counts: dict[str, dict[str, int]] = json.load(answer)
        return counts


async def _database_checks(cluster: Cluster, accepted: dict[str, str]) -> dict[str, Any]:
    conn = await asyncpg.connect(cluster.direct_db_url)
    try:
        rows = await conn.fetch(
            "SELECT status, input->>'prompt' AS prompt FROM tasks WHERE model = 'cluster-job'",
        )
        pending = await conn.fetchval("SELECT count(*) FROM holds WHERE status = 'pending'")
        charged_twice = await conn.fetchval(
            """
            SELECT count(*) FROM (SELECT task_id FROM ledger_entries WHERE kind = 'charge' AND task_id IS NOT NULL
                                  GROUP BY task_id HAVING count(*) > 1) twice
            """
        )
    finally:
        await conn.close()
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    prompts = [row["prompt"] for row in rows]
    return {
        "tasks": len(rows),
        "accepted_by_client": len(accepted),
        "duplicate_tasks": len(prompts) - len(set(prompts)),
        "statuses": statuses,
        "not_terminal": sum(n for s, n in statuses.items() if s not in ("succeeded", "failed", "canceled")),
        "holds_pending": pending,
        "charged_twice": charged_twice,
    }


def ledger_check(cluster: Cluster) -> dict[str, Any]:
    env = {**cluster.conduit_env(), "DATABASE_URL": cluster.direct_db_url, "DATABASE_POOL_MODE": "session"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "ledger", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    try:
        problems = json.loads(done.stdout).get("problems", [])
    except ValueError:
        problems = [done.stderr[-500:]]
    return {"ledger_check_ok": done.returncode == 0, "ledger_problems": problems}


def invariants(cluster: Cluster, accepted: dict[str, str]) -> dict[str, Any]:
    import asyncio

    found = asyncio.run(_database_checks(cluster, accepted))
    counts = upstream_counts(cluster)
    found["upstream_jobs"] = sum(counts["by_prompt"].values())
    found["upstream_created_twice"] = sum(1 for n in counts["by_prompt"].values() if n > 1)
    # of those, the tasks whose extra job was never canceled: it ran to its end upstream (and is paid there)
    found["upstream_ran_twice"] = sum(1 for n in counts["not_canceled_by_prompt"].values() if n > 1)
    found["upstream_twice_examples"] = counts.get("twice", {})  # when each job was created (canceled: negative)
    found.update(ledger_check(cluster))
    return found


def violations(found: dict[str, Any]) -> list[str]:
    """What a scenario's end state must not show (empty: all held)."""
    wrong = []
    if found["not_terminal"]:
        wrong.append(f"{found['not_terminal']} tasks not terminal")
    if found["tasks"] < found["accepted_by_client"]:
        wrong.append(f"{found['accepted_by_client'] - found['tasks']} accepted tasks missing")
    for name in ("holds_pending", "charged_twice", "upstream_created_twice", "duplicate_tasks"):
        if found[name]:
            wrong.append(f"{name} = {found[name]}")
    if not found["ledger_check_ok"]:
        wrong.append(f"ledger check: {found['ledger_problems']}")
    return wrong
