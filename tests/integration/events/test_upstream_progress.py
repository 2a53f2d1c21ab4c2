"""Upstream progress reaches the task's event stream: Replicate's percentage and log lines, fal's queue position
and logs, each log line once."""

from __future__ import annotations

import httpx

from tests.conftest import AccountFactory
from tests.harness import InProcessWorker
from tests.integration.events.sse import read_stream
from tests.integration.helpers import submit
from tests.simulators import Simulators


async def test_replicate_percent_and_log_lines_are_streamed_once_each(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.replicate.finish_after_s = 2.0  # polls every 0.2-0.5 s in tests: several of them see the job running
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-replicate", prompt="a tower", seed=7)
    assert response.status_code == 202, response.text
    received = await read_stream(client, account, f"/v1/tasks/{response.json()['id']}/events")
    assert received.types[-1] == "task.succeeded", received.types
    progress = [data["progress"] for kind, _, data in received.events if kind == "task.progress"]
    assert progress and {report["upstream_status"] for report in progress} <= {"starting", "processing"}
    percents = [report["percent"] for report in progress if "percent" in report]
    assert percents and percents == sorted(percents) and percents[-1] >= 25
    lines = [line for report in progress for line in report.get("logs", [])]
    assert lines[0] == "Using seed: 1529"
    assert len(lines) == len(set(lines))  # each line told once, in order
    assert [line.split("|")[-1].strip() for line in lines[1:]] == [f"{n}/4" for n in range(1, len(lines))]


async def test_fal_queue_position_and_logs_are_streamed(
    client: httpx.AsyncClient, make_account: AccountFactory, worker: InProcessWorker, sims: Simulators
) -> None:
    sims.fal.finish_after_s = 1.5
    account = await make_account(credits="10")
    response = await submit(client, account, "test-up-fal-image", prompt="a moth", width=768, height=512)
    received = await read_stream(client, account, f"/v1/tasks/{response.json()['id']}/events")
    assert received.types[-1] == "task.succeeded", received.types
    progress = [data["progress"] for kind, _, data in received.events if kind == "task.progress"]
    assert progress[0]["upstream_status"] == "IN_QUEUE" and progress[0]["queue_position"] == 3  # the submit's
    assert any(report["upstream_status"] == "IN_PROGRESS" for report in progress)
    lines = [line for report in progress for line in report.get("logs", [])]
    assert lines[0] == "Loading model" and len(lines) >= 3
    assert lines[1:] == [f"Step {n}" for n in range(1, len(lines))]
    assert all(call.query.get("logs") == "1" for call in sims.fal.calls_to("status"))
