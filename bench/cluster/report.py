"""The cluster's section of bench/RESULTS.md, written from a run's results (replacing the previous one)."""

from __future__ import annotations

import datetime
from typing import Any

from bench.common import ROOT

HEADING = "## A simulated cluster under faults: recovery, invariants and throughput by worker hosts"


def _scenario_row(r: dict[str, Any]) -> str:
    if "end_state" not in r:
        return f"| ({r['scenario']}) {r['title']} | {'; '.join(r['violations'])} |" + " |" * 10
    end, client = r["end_state"], r["client"]
    chat = client["chat"]
    failures = {**client["statuses"], **client["errors"]}
    submit = ", ".join(f"{n} {what}" for what, n in sorted(failures.items())) or "none"
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(end["statuses"].items()))
    cells = [
        f"({r['scenario']}) {r['title']}",
        f"{r['fault_s']:.0f} s at {r['fault_at_s']:.0f} s" + (f" ({how})" if (how := r.get("fault_applied")) else ""),
        submit,
        f"{end['tasks']:,}: {statuses}",
        f"{chat['ok']}/{chat['requests']}",
        f"{r['rate_before_per_s']} / {r['lowest_rate_during_per_s']}",
        str(r["throughput_back_s"]),
        f"{r['caught_up_s']} (peak backlog {r['peak_backlog']})",
        f"{end['holds_pending']} / {end['charged_twice']} / {end['upstream_created_twice']}"
        f" ({end['upstream_ran_twice']} not canceled)",
        "clean" if end["ledger_check_ok"] else "**problems**",
        "; ".join(r["violations"]) or "none",
    ]
    return "| " + " | ".join(cells) + " |"


def section(data: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in data["load_average"])
    runs = data["scenarios"]
    tasks = next((r["tasks"] for r in runs if "tasks" in r), 0)
    rate = next((r["submit_rate_per_s"] for r in runs if "tasks" in r), 0)
    lines = [
        f"{HEADING} — {datetime.date.today().isoformat()}{' (short form)' if data['short'] else ''}",
        "",
        "`bench/cluster` (`make cluster-test`, as root; raw output in `bench/out/cluster.json`). Twelve hosts, each a",
        "network namespace with one veth link to a bridge: PostgreSQL 15, PgBouncer (transaction mode), Redis",
        "primary + replica with three Sentinels, HAProxy in front of two `conduit web`, three `conduit worker`, a",
        "Replicate-protocol upstream (2 s per job, counting the jobs created per task) and a client. The client",
        f"submits {tasks:,} tasks at {rate}/s (retrying failed submits with an `Idempotency-Key`) and streams chat",
        "requests; each scenario gets a fresh cluster and one fault. Workers detect a dead peer within",
        f"`WORKER_DEATH_DETECT_S={data['worker_death_detect_s']}`. All hosts share this machine's 2 cores (load"
        f" average at the end {load}).",
        "",
        "Rates are tasks finished per second (3-s windows); *throughput back*: seconds after the fault ended (or",
        "happened) until a window finished >= 90% of the submission rate; *caught up*: until the backlog was back to",
        "its level before the fault. End state: holds pending / tasks charged twice / tasks with two upstream jobs.",
        "",
        "| scenario | fault | failed submits (retried) | tasks at the end | chat ok | rate before / lowest during "
        "| throughput back (s) | caught up (s) | end state | ledger check | violations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_scenario_row(r) for r in runs),
    ]
    scaling = data.get("scaling")
    if scaling:
        lines += [
            "",
            f"**Throughput by worker hosts** (a backlog drained by 1, 2, 3 workers; upstream job "
            f"{scaling['upstream_job_s']} s; CPU in % of one core per host during the drain):",
            "",
            "| workers | tasks | tasks/s (10% to 90%) | peak running | in-flight capacity | CPU % by host |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for run in scaling["runs"]:
            cpu = ", ".join(f"{h} {p}" for h, p in run["cpu_pct_by_host"].items() if p)
            lines.append(
                f"| {run['workers']} | {run['tasks']} | {run['tasks_per_s']} | {run['peak_running']} "
                f"| {run['in_flight_capacity']:,} | {cpu} |"
            )
        lines += ["", f"Scaling end state violations: {'; '.join(scaling['violations']) or 'none'}."]
    return "\n".join(lines) + "\n"


def write_results(data: dict[str, Any]) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    new = section(data)
    start = text.find(HEADING)
    if start >= 0:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + new + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        first = text.find("\n## ")
        text = text[: first + 1] + new + "\n" + text[first + 1 :]
    path.write_text(text)
