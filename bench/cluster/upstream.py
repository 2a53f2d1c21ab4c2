"""The upstream of the cluster: the test suite's Replicate simulator (the real predictions wire format) with a
fixed job duration, serving on its own host, and counting the upstream jobs created for each task.

Each task's prompt carries a marker unique to the task, so ``GET /_counts`` (prompt -> predictions created)
shows whether any task ever had two upstream jobs. ``python -m bench.cluster.upstream --host IP --port 80``.
"""

from __future__ import annotations

import argparse
import collections
import time
from typing import Any

import uvicorn
from litestar import Litestar, get

from bench.upstream import _Discard
from tests.simulators.replicate import ReplicateSimulator

TOKEN = "r8-cluster-upstream"


class CountingReplicate(ReplicateSimulator):
    def __init__(self, host: str, port: int, job_s: float) -> None:
        super().__init__(TOKEN)
        self.host, self.port = host, port
        self.finish_after_s = job_s
        self.calls = _Discard()  # no call log: a scenario makes tens of thousands of calls
        self.started = time.monotonic()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def counts(self, *, live_only: bool = False) -> dict[str, int]:
        """Predictions created per prompt (``live_only``: those never canceled, i.e. run to their end)."""
        found: collections.Counter[str] = collections.Counter()
        for prediction in self.predictions.values():
            if not (live_only and prediction.canceled):
                found[str(prediction.input.get("prompt"))] += 1
        return dict(found)

    def twice(self, limit: int = 20) -> dict[str, list[float]]:
        """For up to ``limit`` tasks with more than one upstream job: when each job was created (seconds since
        this upstream started, the canceled ones negative), to tell which phase of a fault made them."""
        by_prompt: dict[str, list[Any]] = collections.defaultdict(list)
        for prediction in self.predictions.values():
            by_prompt[str(prediction.input.get("prompt"))].append(prediction)
        found: dict[str, list[float]] = {}
        for prompt, jobs in by_prompt.items():
            if len(jobs) > 1 and len(found) < limit:
                found[prompt] = [round((p.created - self.started) * (-1 if p.canceled else 1), 2) for p in jobs]
        return found

    def app(self) -> Litestar:
        app = super().app()
        sim = self

        @get("/_counts", sync_to_thread=False)
        def counts() -> dict[str, Any]:
            return {"predictions": len(sim.predictions), "by_prompt": sim.counts(),
                    "not_canceled_by_prompt": sim.counts(live_only=True), "twice": sim.twice()}  # fmt: skip

        app.register(counts)
        return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--job-s", type=float, default=2.0)
    args = parser.parse_args()
    sim = CountingReplicate(args.host, args.port, args.job_s)
    config = uvicorn.Config(sim.app(), host=args.host, port=args.port, log_level="warning", access_log=False,
                            lifespan="off", backlog=4096, loop="uvloop", http="httptools")  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
