"""The Procfile processes and the operator CLI, as separate processes, end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.harness import ROOT, Subprocess, free_port, wait_for


def conduit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env={**os.environ, **env, "PYTHONWARNINGS": "ignore"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_web_and_worker_processes_serve_a_task_for_a_cli_created_account(
    env: dict[str, str], tmp_path: Path, services: object
) -> None:
    port = free_port()
    proc_env = {**env, "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    migrated = await asyncio.to_thread(conduit, ["migrate"], proc_env)  # the Procfile's release step
    assert migrated.returncode == 0, migrated.stderr
    created = await asyncio.to_thread(
        conduit, ["accounts", "create", "--email", f"cli-{port}@example.com", "--credits", "2.5"], proc_env
    )
    assert created.returncode == 0, created.stderr
    account = json.loads(created.stdout)
    assert account["api_key"].startswith("cdt_")
    assert account["account_id"]

    duplicate = await asyncio.to_thread(conduit, ["accounts", "create", "--email", f"cli-{port}@example.com"], proc_env)
    assert duplicate.returncode == 1
    assert "email_taken" in duplicate.stderr

    web = Subprocess(["web"], {**proc_env, "LOG_LEVEL": "INFO", "LOG_FORMAT": "json"}, tmp_path / "web.log")
    worker = Subprocess(["worker"], proc_env, tmp_path / "worker.log")
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {account['api_key']}"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, timeout=30, what="conduit web to answer")
            models = (await client.get("/v1/models")).json()
            assert {"flux-schnell", "flux-dev", "sdxl", "dreamshaper", "ltx-video"} <= {m["id"] for m in models["data"]}
            response = await client.post(
                "/v1/tasks",
                json={"model": "dreamshaper", "input": {"prompt": "a castle", "width": 320, "height": 320}},
                headers=headers,
            )
            assert response.status_code == 202, response.text
            task_id = response.json()["id"]

            async def finished() -> dict[str, object] | None:
                body = (await client.get(f"/v1/tasks/{task_id}", headers=headers)).json()
                return body if body["status"] not in ("queued", "running") else None

            done = await wait_for(finished, timeout=30, what="the worker process to finish the task")
            assert done["status"] == "succeeded", (done, worker.output())
            image = await client.get(done["outputs"][0]["url"])
            assert image.status_code == 200
            assert image.content.startswith(b"\x89PNG")
            account_view = (await client.get("/v1/account", headers=headers)).json()
            assert account_view["balance"] == {"available": 2.1, "held": 0}
    finally:
        assert web.stop() in (0, -15), web.output()
        worker.stop()
    # The web process's JSON lines: one access line per request, naming the caller but never the secret, and no
    # ANSI-coloured copy of uvicorn's messages.
    lines = [json.loads(line) for line in web.output().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "conduit.access"]
    submitted = next(line for line in access if (line["method"], line["route"]) == ("POST", "/v1/tasks"))
    assert submitted["status"] == 202 and submitted["bytes"] == len(response.content)
    assert submitted["account_id"] == account["account_id"]
    assert submitted["key_prefix"] == account["api_key"][:12]
    assert submitted["request_id"] == response.headers["x-request-id"] and submitted["duration_ms"] > 0
    assert any(line["route"] == "/v1/tasks/{task_id}" for line in access)
    assert account["api_key"] not in web.output()
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert "color_message" not in web.output() and "\x1b" not in web.output()


async def test_conduit_run_serves_the_website_and_api_and_stops_everything_on_sigterm(
    env: dict[str, str], tmp_path: Path, services: object
) -> None:
    """What `make run` runs (here against the test servers, as with DATABASE_URL / REDIS_URL set)."""
    port = free_port()
    proc_env = {key: value for key, value in env.items() if key not in ("PORT", "PUBLIC_BASE_URL")}
    run = Subprocess(["run", "--port", str(port)], proc_env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:

        async def banner() -> bool:
            return "Conduit is running." in run.output()

        await wait_for(banner, timeout=60, what="conduit run to print how to call it")
        assert f"Website        {base}/" in run.output()
        assert f'base_url="{base}/v1"' in run.output()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/readyz")).status_code == 200
            home = await client.get("/")
            assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
            assert (await client.get("/v1/models")).json()["object"] == "list"
        assert run.stop() == 0, run.output()
        async with httpx.AsyncClient(base_url=base, timeout=2) as client:
            try:
                await client.get("/healthz")
                raise AssertionError("the web process still answers after conduit run stopped")
            except httpx.TransportError:
                pass  # nothing listens any more: the web and worker children stopped with it
    finally:
        run.stop()
