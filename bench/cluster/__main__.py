"""Run the cluster scenarios and the throughput-by-hosts measurement, and record them in bench/RESULTS.md.

``python -m bench.cluster`` (as root; ``make cluster-test``) runs every scenario with 2,000 tasks, then the
throughput with 1, 2 and 3 worker hosts; ``--short`` runs the short form, ``--only a,g`` some scenarios,
``--no-scaling`` skips the throughput runs, ``--no-scenarios`` runs only them; a partial run keeps the previous
run's other figures. Raw output: bench/out/cluster.json. Exits 1 when a recorded end state broke an invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bench.cluster.hosts import DEATH_DETECT_S, machine_allows
from bench.cluster.report import write_results
from bench.cluster.scaling import run_scaling
from bench.cluster.scenarios import SCENARIOS, Load, run_scenario
from bench.common import OUT_DIR, machine


def _previous(short: bool) -> dict[str, Any]:
    path = OUT_DIR / "cluster.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if data.get("short") == short else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="fewer tasks, shorter faults")
    parser.add_argument("--only", default="", help="scenario letters, comma-separated (default: all)")
    parser.add_argument("--no-scaling", action="store_true", help="skip throughput with 1, 2 and 3 worker hosts")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--no-scenarios", action="store_true", help="only the throughput with 1, 2 and 3 workers")
    parser.add_argument("--scaling-tasks", type=int, default=0, help="backlog per worker count (default 1500)")
    args = parser.parse_args()
    if (why := machine_allows()) is not None:
        print(f"cannot build the cluster: {why}", file=sys.stderr)
        return 2
    keys = [] if args.no_scenarios else [key for key in args.only.split(",") if key] or list(SCENARIOS)
    results: list[dict[str, Any]] = []
    for key in keys:
        scenario = SCENARIOS[key]
        load = Load.short() if args.short else Load.full(scenario.minutes * 60)
        print(f"scenario ({key}) {scenario.title} ...", flush=True)
        try:
            result = run_scenario(scenario, load)
        except Exception as exc:  # recorded: the next scenario still runs on a fresh cluster
            result = {"scenario": key, "title": scenario.title, "violations": [f"run failed: {exc!r}"]}
        print(json.dumps({k: v for k, v in result.items() if k != "client"}, default=str), flush=True)
        results.append(result)
    scaling = None if args.no_scaling else run_scaling(tasks=args.scaling_tasks or (200 if args.short else 1500))
    # a partial run keeps what the previous run of the same form recorded for the rest
    previous = _previous(args.short)
    ran = {r["scenario"] for r in results}
    results = [r for r in previous.get("scenarios", []) if r["scenario"] not in ran] + results
    results.sort(key=lambda r: str(r["scenario"]))
    scaling = scaling or previous.get("scaling")
    data = {"machine": machine(), "load_average": os.getloadavg(), "short": args.short,
            "worker_death_detect_s": DEATH_DETECT_S, "scenarios": results, "scaling": scaling}  # fmt: skip
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "cluster.json").write_text(json.dumps(data, indent=2, default=str))
    if not args.no_record:
        write_results(data)
    broken = [r for r in results if r["violations"]] + ([scaling] if scaling and scaling["violations"] else [])
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
