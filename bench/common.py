"""What every benchmark needs: its own embedded PostgreSQL and Redis (durable, like production), a fresh
database, Conduit processes started the way the Procfile starts them, and a load generator process."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from cli.embedded import EmbeddedServices
from shared.accounts.service import create_account
from shared.infra.db import Database
from shared.infra.db.migrate import apply_migrations
from shared.settings import DEFAULT_CATALOG, Settings

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = str(Path(sys.executable).with_name("py-spy"))  # the virtualenv's, not whatever PATH holds
BENCH_DIR = ROOT / ".conduit" / "bench"
OUT_DIR = ROOT / "bench" / "out"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class BenchEnv:
    def __init__(self) -> None:
        self.embedded = EmbeddedServices(BENCH_DIR, durable=True, database="conduit_bench")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.embedded.start()
        asyncio.run(self._reset())

    def reset(self) -> None:
        """Stop Conduit's processes and start the next scenario from an empty database and queue."""
        self.stop_procs()
        asyncio.run(self._reset())

    async def _reset(self) -> None:
        urls = self.embedded.urls
        admin = await asyncpg.connect(urls.database_url.replace("/conduit_bench?", "/postgres?"))
        try:
            await admin.execute('DROP DATABASE IF EXISTS "conduit_bench" WITH (FORCE)')
            await admin.execute('CREATE DATABASE "conduit_bench"')
            # Write back what the previous scenario left in shared buffers now, so that its checkpoint does
            # not land (with its fsync stalls) in the middle of the next scenario's measurement.
            await admin.execute("CHECKPOINT")
        finally:
            await admin.close()
        await apply_migrations(urls.database_url)
        from redis.asyncio import Redis

        redis = Redis.from_url(urls.redis_url)
        await redis.flushall()
        await redis.aclose()

    def env(self, **extra: str) -> dict[str, str]:
        urls = self.embedded.urls
        return {
            **os.environ,
            "DATABASE_URL": urls.database_url,
            "REDIS_URL": urls.redis_url,
            "CONDUIT_DATA_DIR": str(BENCH_DIR),
            "PORT": str(self.port),
            "PUBLIC_BASE_URL": self.base_url,
            "CATALOG_PATH": os.pathsep.join([str(DEFAULT_CATALOG), str(ROOT / "bench" / "catalog.toml")]),
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "WARNING",
            # rate limits: checked on every request, but never binding in the benchmarks
            "RATE_LIMIT_RPM_PER_KEY": "10000000",
            "RATE_LIMIT_RPM_PER_ACCOUNT": "10000000",
            "MAX_INFLIGHT_TASKS_PER_KEY": "1000000",
            "MAX_INFLIGHT_TASKS_PER_ACCOUNT": "1000000",
            **extra,
        }

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def spawn(self, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "cli.main", *args]
        if args[0] in os.environ.get("BENCH_PROFILE", "").split(","):
            # BENCH_PROFILE=worker,web samples those processes with py-spy (pip install py-spy).
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            out = OUT_DIR / f"{args[0]}-{len(self.procs)}.speedscope.json"
            command = [PY_SPY, "record", "-r", "200", "-f", "speedscope", "-o", str(out), "--", *command]
        proc = subprocess.Popen(
            command,
            env=self.env(**extra_env),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(BENCH_DIR / "logs" / f"{args[0]}-{len(self.procs)}.log", "wb"),  # noqa: SIM115
        )
        self.procs.append(proc)
        return proc

    def wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("API did not start")

    async def accounts(self, count: int, credits: int = 10**6 * 10**6) -> list[str]:
        db = await Database.connect(self.settings(), min_size=1, max_size=2)
        try:
            keys = []
            for n in range(count):
                created = await create_account(db, email=f"bench-{n}-{time.time_ns()}@example.com", credits=credits)
                keys.append(created.api_key.secret)
            return keys
        finally:
            await db.close()

    def stop_procs(self, *procs: subprocess.Popen[bytes]) -> None:
        """Stop the given processes (default: every spawned one) and wait for them."""
        targets = list(procs or self.procs)
        for proc in targets:
            if proc.poll() is None:
                # py-spy writes its profile on SIGINT; the Conduit processes stop cleanly on either.
                proc.send_signal(signal.SIGINT if os.environ.get("BENCH_PROFILE") else signal.SIGTERM)
        for proc in targets:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = [proc for proc in self.procs if proc not in targets]

    def stop(self) -> None:
        self.stop_procs()
        self.embedded.stop()


def run_loadgen(job: dict[str, Any], *, keep_bodies: bool = False) -> dict[str, Any]:
    """Run the load generator in its own process (so it does not share the server's event loop)."""
    args = [sys.executable, "-m", "bench.loadgen"] + (["--keep-bodies"] if keep_bodies else [])
    done = subprocess.run(args, input=json.dumps(job).encode(), capture_output=True, cwd=ROOT, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def submit_requests(base_url: str, keys: list[str], model: str, count: int) -> list[dict[str, Any]]:
    body = json.dumps({"model": model, "input": {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}})
    return [
        {
            "method": "POST",
            "url": f"{base_url}/v1/tasks",
            "body": body,
            "headers": {"Authorization": f"Bearer {keys[n % len(keys)]}", "Content-Type": "application/json"},
        }
        for n in range(count)
    ]


def write_result(name: str, data: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=str))
    return path
