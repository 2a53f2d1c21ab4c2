"""A simulated OpenAI-compatible upstream in its own process, for the provider benchmark.

It is the test suite's simulator (tests/simulators/openai.py: the real wire format, recorded payloads)
with a fixed latency per call. ``python -m bench.upstream --port N --latency 2``.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from tests.simulators.openai import OpenAISimulator

KEY = "sk-bench-upstream"


def serve(port: int, latency_s: float) -> None:
    sim = OpenAISimulator(KEY)
    sim.port = port
    sim.latency_s = latency_s
    sim.calls = _Discard()  # no call log: the benchmark sends tens of thousands of requests
    sim.usages = _Discard()
    config = uvicorn.Config(sim.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="off", backlog=4096, loop="uvloop", http="httptools",
                            timeout_keep_alive=75)  # fmt: skip
    uvicorn.Server(config).run()


class _Discard(list[Any]):
    def append(self, item: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    serve(args.port, args.latency)


if __name__ == "__main__":
    main()
