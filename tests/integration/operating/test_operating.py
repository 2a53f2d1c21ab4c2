"""Health, readiness, metrics and request ids: what an operator's load balancer and Prometheus see."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from shared.infra.db.piccolo_app import APP_CONFIG
from shared.infra.logs import ContextFilter, JsonFormatter, request_id
from shared.services import Services
from shared.settings import OperatingSettings, Settings
from shared.tasks import lifecycle
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, free_port, wait_for
from tests.integration.helpers import submit, wait_terminal
from tests.integration.proxy import UnixProxy
from tests.integration.proxy import proxied_api as proxied_api_server


@pytest.fixture
async def proxied_api(settings: Settings, services: Services) -> AsyncIterator[tuple[ApiServer, UnixProxy, UnixProxy]]:
    """An API process whose PostgreSQL and Redis are reached through proxies the test can take down."""
    async with proxied_api_server(settings) as proxied:
        yield proxied


async def _ready(http: httpx.AsyncClient, status: int) -> dict[str, object] | None:
    response = await http.get("/readyz")
    return response.json() if response.status_code == status else None


async def test_readiness_follows_the_database_and_redis(
    proxied_api: tuple[ApiServer, UnixProxy, UnixProxy],
) -> None:
    server, pg, redis = proxied_api
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        ok = await http.get("/readyz")
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"status": "ok", "checks": {"database": {"ok": True}, "redis": {"ok": True}}}

        await redis.stop()
        down = await wait_for(lambda: _ready(http, 503), timeout=15, what="readyz to fail without Redis")
        assert down["checks"] == {
            "database": {"ok": True},
            "redis": {"ok": False, "error": down["checks"]["redis"]["error"]},
        }
        assert (await http.get("/healthz")).status_code == 200  # still alive: only not ready
        await redis.start()
        await wait_for(lambda: _ready(http, 200), timeout=15, what="readyz to recover with Redis")

        await pg.stop()
        down = await wait_for(lambda: _ready(http, 503), timeout=15, what="readyz to fail without PostgreSQL")
        assert down["checks"]["database"]["ok"] is False
        assert down["checks"]["redis"] == {"ok": True}
        await pg.start()
        await wait_for(lambda: _ready(http, 200), timeout=30, what="readyz to recover with PostgreSQL")


async def test_readiness_fails_while_a_migration_is_not_applied(client: httpx.AsyncClient, services: Services) -> None:
    row = await services.db.fetchrow(
        "SELECT * FROM migration WHERE app_name = $1 ORDER BY name DESC LIMIT 1", APP_CONFIG.app_name
    )
    assert row is not None
    await services.db.execute("DELETE FROM migration WHERE id = $1", row["id"])
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["pending_migrations"] == [row["name"]]
    finally:
        columns = list(row.keys())
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await services.db.execute(
            f"INSERT INTO migration ({', '.join(columns)}) VALUES ({placeholders})", *row.values()
        )
    assert (await client.get("/readyz")).status_code == 200


def metric_sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_add_up_across_processes_and_change_after_tasks(
    client: httpx.AsyncClient, make_account: AccountFactory, services: Services, settings: Settings
) -> None:
    await services.redis.flushdb()
    # Tasks an earlier test left unfinished would be picked up by the workers below and counted with ours.
    for row in await services.db.fetch("SELECT id, account_id FROM tasks WHERE status IN ('queued', 'running')"):
        await lifecycle.cancel(services.db, row["account_id"], row["id"])
    account = await make_account(credits="10")
    before = (await client.get("/metrics")).text
    assert "# TYPE conduit_http_requests_total counter" in before
    finished = metric_sample(before, "conduit_tasks_finished_total", model="sdxl", status="succeeded")
    charged = metric_sample(before, "conduit_credits_charged_total", model="sdxl")
    queued_before = metric_sample(before, "conduit_tasks", status="queued")

    created = [(await submit(client, account, "sdxl", prompt=f"m{i}", width=256, height=256)).json() for i in range(3)]
    waiting = (await client.get("/metrics")).text
    assert metric_sample(waiting, "conduit_tasks", status="queued") >= queued_before + 3
    assert metric_sample(waiting, "conduit_queue_depth") >= 3
    assert metric_sample(waiting, "conduit_queue_oldest_task_age_seconds") > 0

    # Two worker "processes" (separate arq workers with their own services), each flushing its own counts.
    async with InProcessWorker(settings), InProcessWorker(settings):  # each flushes its counts when it stops
        for task in created:
            await wait_terminal(client, account, task["id"])
    after = (await client.get("/metrics")).text
    assert metric_sample(after, "conduit_tasks_finished_total", model="sdxl", status="succeeded") == finished + 3
    assert metric_sample(after, "conduit_credits_charged_total", model="sdxl") == pytest.approx(charged + 1.2)
    assert metric_sample(after, "conduit_job_duration_seconds_count", model="sdxl", provider="local") >= 3
    assert metric_sample(after, "conduit_http_requests_total", method="POST", route="/v1/tasks", status="202") >= 3
    assert metric_sample(after, "conduit_http_request_duration_seconds_count", method="POST", route="/v1/tasks") >= 3
    assert metric_sample(after, "conduit_provider_circuit_state", provider="local") == 0
    assert (
        metric_sample(after, "conduit_http_requests_total", method="GET", route="/v1/tasks/{task_id}", status="200")
        >= 3
    )
    assert not re.search(r"route=\"[^\"]*[0-9a-f]{8}-", after)  # route templates, never ids


async def test_metrics_without_a_token_are_for_this_machine_only(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
    # A request relayed by a proxy on this machine is not local, whatever address it arrives from.
    for header in ("X-Forwarded-For", "Forwarded"):
        relayed = await client.get("/metrics", headers={header: "for=198.51.100.7"})
        assert relayed.status_code == 404, header


async def test_metrics_need_the_token_when_one_is_set(settings: Settings, services: Services) -> None:
    port = free_port()
    guarded = replace(settings, port=port, operating=OperatingSettings(metrics_token="s3cret"))
    async with ApiServer(guarded) as server, httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        assert (await http.get("/metrics")).status_code == 404
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 404
        right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert right.headers["content-type"].startswith("text/plain")


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/v1/models")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    kept = await client.get("/v1/models", headers={"X-Request-ID": "lb-1234"})
    assert kept.headers["x-request-id"] == "lb-1234"
    replaced = await client.get("/v1/models", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    error = await client.get("/v1/tasks/nope", headers={"X-Request-ID": "err-1"})
    assert error.status_code == 401 and error.headers["x-request-id"] == "err-1"


def test_json_log_lines_carry_request_and_task_ids() -> None:
    formatter = JsonFormatter("web")
    record = logging.LogRecord("conduit.api", logging.WARNING, __file__, 1, "enqueue failed for %s", ("t1",), None)
    token = request_id.set("req-42")
    try:
        ContextFilter().filter(record)
    finally:
        request_id.reset(token)
    line = json.loads(formatter.format(record))
    assert line["message"] == "enqueue failed for t1"
    assert line["request_id"] == "req-42" and line["level"] == "WARNING" and line["process"] == "web"
    assert "task_id" not in line  # none in this context


async def test_worker_logs_name_the_task_in_json(
    env: dict[str, str], client: httpx.AsyncClient, make_account: AccountFactory, services: Services, tmp_path: Path
) -> None:
    """A real worker process, JSON logs at INFO: the lines about a task carry its id."""
    from tests.harness import Subprocess

    await services.redis.flushdb()
    account = await make_account(credits="5")
    created = (await submit(client, account, "sdxl", prompt="logged", width=256, height=256)).json()
    worker = Subprocess(["worker"], {**env, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}, tmp_path / "worker.log")
    try:
        await wait_terminal(client, account, created["id"], timeout=60)
    finally:
        worker.stop()
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    assert lines, worker.output()
    assert all({"ts", "level", "message", "process", "pid"} <= set(line) for line in lines)
    assert any(line.get("task_id") == created["id"] for line in lines), worker.output()
    assert uuid.UUID(created["id"])
