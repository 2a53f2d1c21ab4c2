"""What the access log and tracing cost. Run: ``.venv/bin/python -m bench.observability``.

In process (CPU time per call, several alternating rounds; median, min and max of the rounds):

* the observability middleware around a trivial ASGI app, access log off and on, the log written as the processes
  write it (the JSON handler, to a file);
* with tracing off (no ``OTEL_EXPORTER_OTLP_ENDPOINT``), what the hot paths still run: ``tracing.span`` around a
  block, the worker's job wrapper, ``JobQueue.enqueue``'s check; each against the same code without it;
* with tracing on (spans into a processor that drops them), the same, for scale.

``--e2e`` also measures ``POST /v1/tasks`` throughput and the API's CPU per request from one ``conduit web`` (the
setup of ``bench.core``) at ``LOG_LEVEL=INFO``, with ``ACCESS_LOG`` false and true in alternating rounds.
Results are printed and written to bench/out/observability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.observability import observability_middleware
from shared.infra import tracing
from shared.infra.logs import configure_logging

Rounds = dict[str, list[float]]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"object": "task", "status": "queued"}'})


async def _send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope() -> Any:  # an ASGI HTTP scope, as uvicorn hands it over (routed)
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/tasks",
        "path_template": "/v1/tasks",
        "headers": [(b"authorization", b"Bearer cdt_" + b"x" * 40)],
    }


async def _per_call_us(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await fn()
    return (time.process_time() - start) / n * 1e6


def _summary(rounds: Rounds) -> dict[str, dict[str, float]]:
    return {
        name: {"median_us": round(statistics.median(v), 3), "min_us": round(min(v), 3), "max_us": round(max(v), 3)}
        for name, v in rounds.items()
    }


async def middleware_rounds(rounds: int, n: int, log_file: Path) -> Rounds:
    with log_file.open("a") as out, contextlib.redirect_stderr(out):
        configure_logging("INFO", fmt="json", process="web")  # as `conduit web` logs, into the file
        return await _middleware_rounds(rounds, n)


async def _middleware_rounds(rounds: int, n: int) -> Rounds:
    off = observability_middleware(access_log=False)(_app)
    on = observability_middleware(access_log=True)(_app)
    results: Rounds = {"middleware, access log off": [], "middleware, access log on": []}
    for _ in range(rounds):
        results["middleware, access log off"].append(await _per_call_us(lambda: off(_scope(), _receive, _send), n))
        results["middleware, access log on"].append(await _per_call_us(lambda: on(_scope(), _receive, _send), n))
    logging.getLogger().handlers[:] = []
    return results


async def _block_with_span() -> None:
    with tracing.span("hold", task_id="t", model="m", credits_micro=1):
        pass


async def _bare_block() -> None:
    return None


async def _job(ctx: Any, task_id: str) -> None:
    return None


async def tracing_rounds(rounds: int, n: int, label: str) -> Rounds:
    wrapped = tracing.traced_job("run_task", _job)
    ctx = {"job_id": "j", "job_try": 1}
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    results: Rounds = {
        f"block, no span ({label})": [],
        f"block in tracing.span ({label})": [],
        f"job called directly ({label})": [],
        f"job through traced_job ({label})": [],
    }
    for _ in range(rounds):
        results[f"block, no span ({label})"].append(await _per_call_us(_bare_block, n))
        results[f"block in tracing.span ({label})"].append(await _per_call_us(_block_with_span, n))
        results[f"job called directly ({label})"].append(await _per_call_us(lambda: _job(ctx, "t"), n))
        results[f"job through traced_job ({label})"].append(
            await _per_call_us(lambda: wrapped(ctx, "t", trace=carrier), n)
        )
    return results


def _tracing_on() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    tracing.use(provider)


def e2e(seconds: float, rounds: int) -> dict[str, Any]:
    from bench.common import BenchEnv
    from bench.core import submit_throughput

    env = BenchEnv()
    env.start()
    results: dict[str, Any] = {"access log off": [], "access log on": []}
    try:
        for _ in range(rounds):
            for variant, flag in (("access log off", "false"), ("access log on", "true")):
                env.reset()
                keys = asyncio.run(env.accounts(64))
                env.spawn("web", LOG_LEVEL="INFO", ACCESS_LOG=flag)
                env.wait_healthy()
                run = submit_throughput(env, keys, accounts=64, seconds=seconds)
                results[variant].append(
                    {"req_per_s": run["rate_per_s"], "api_cpu_us_per_request": run["cpu_us_per_request"].get("api")}
                )
    finally:
        env.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--e2e", action="store_true", help="also POST /v1/tasks through conduit web")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = asyncio.run(middleware_rounds(args.rounds, args.calls, Path(folder) / "web.log"))
    tracing.use(None)
    rounds |= asyncio.run(tracing_rounds(args.rounds, args.calls, "tracing off"))
    _tracing_on()
    with contextlib.suppress(Exception):
        rounds |= asyncio.run(tracing_rounds(args.rounds, args.calls // 4, "tracing on"))
    tracing.use(None)
    results: dict[str, Any] = {"in_process": _summary(rounds)}
    if args.e2e:
        results["submit"] = e2e(args.seconds, max(1, args.rounds // 3))
    from bench.common import write_result

    path = write_result("observability", results)
    print(json.dumps(results, indent=2))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
