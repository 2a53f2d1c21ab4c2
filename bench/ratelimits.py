"""What the API rate limits cost on the submit hot path. Run: ``.venv/bin/python -m bench.ratelimits``.

POST /v1/tasks throughput from one API process, 64 accounts, 32 connections (as ``bench.core``), twice:
with every limit disabled (``0``: no Redis call) and with every limit enforced (one Redis script call per
request: the key's and the account's requests per minute and in-flight slots) but set too high to refuse.
Results are printed and written to bench/out/ratelimits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bench.common import BenchEnv, write_result
from bench.core import submit_throughput

DISABLED = {
    "RATE_LIMIT_RPM_PER_KEY": "0",
    "RATE_LIMIT_RPM_PER_ACCOUNT": "0",
    "MAX_INFLIGHT_TASKS_PER_KEY": "0",
    "MAX_INFLIGHT_TASKS_PER_ACCOUNT": "0",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each variant")
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    results: dict[str, Any] = {"disabled": [], "enforced": []}
    try:
        for _ in range(args.rounds):
            for variant, extra in (("disabled", DISABLED), ("enforced", {})):
                env.reset()
                keys = asyncio.run(env.accounts(64))
                env.spawn("web", **extra)
                env.wait_healthy()
                run = submit_throughput(env, keys, accounts=64, seconds=args.seconds)
                results[variant].append(
                    {
                        "req_per_s": run["rate_per_s"],
                        "latency_ms": run["latency_ms"],
                        "statuses": run["statuses"],
                        "cpu_us_per_request": run["cpu_us_per_request"],
                    }
                )
    finally:
        env.stop()
    path = write_result("ratelimits", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
