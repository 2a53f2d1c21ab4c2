"""``conduit run``: the whole platform on one machine for development.

Starts the embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set), applies migrations,
runs one ``web`` and one ``worker`` child process, prints how to call the API, and on Ctrl-C stops the
children and the servers it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from cli.connections import Connections
from shared.infra.db.migrate import apply_migrations
from shared.settings import Settings


def _wait_healthy(url: str, procs: dict[str, subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the {name} process exited during start-up (code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become healthy at {url}")


def _banner(settings: Settings, base: str, embedded: bool) -> str:
    conduit = os.path.relpath(os.path.join(os.path.dirname(sys.executable), "conduit"))
    storage = settings.database_url if not embedded else f"embedded, data in {os.path.relpath(settings.data_dir)}"
    outbox = os.path.relpath(settings.mail.outbox_dir) if not settings.mail.smtp_host else "your SMTP server"
    return f"""
Conduit is running.
  Website        {base}/            (sign up, dashboard, playground; mail lands in {outbox})
  API            {base}/v1          (OpenAPI docs: {base}/docs)
  PostgreSQL     {storage}
  Redis          {"embedded" if embedded else settings.redis_url}
  Outputs        {os.path.relpath(settings.resolved_storage_dir)}

Create an account with credits and an API key (in another terminal):
  {conduit} accounts create --email you@example.com --credits 100

Then call it:
  export CONDUIT_KEY=cdt_...          # the api_key printed above
  curl -s {base}/v1/models
  curl -s {base}/v1/tasks -H "Authorization: Bearer $CONDUIT_KEY" -H 'Content-Type: application/json' \\
       -d '{{"model": "flux-schnell", "input": {{"prompt": "a lighthouse at dusk, oil painting"}}}}'
  curl -s {base}/v1/tasks/<task id> -H "Authorization: Bearer $CONDUIT_KEY"
  curl -s {base}/v1/account -H "Authorization: Bearer $CONDUIT_KEY"
  curl -s {base}/v1/chat/completions -H "Authorization: Bearer $CONDUIT_KEY" -H 'Content-Type: application/json' \\
       -d '{{"model": "llama-3.1-8b-instruct", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

OpenAI clients work too: base_url="{base}/v1", api_key=$CONDUIT_KEY.

Press Ctrl-C to stop.
"""


def run_platform(settings: Settings, *, port: int | None) -> int:
    port = port if port is not None else settings.port
    connections = Connections(settings)
    resolved = connections.__enter__()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _terminate(*_: object) -> None:
        nonlocal stopping
        stopping = True

    # Handle both explicitly: a shell that starts us in the background may have set SIGINT to "ignore".
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        database_url, redis_url = resolved.require_connections()
        asyncio.run(apply_migrations(resolved.direct_database_url))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PORT": str(port),
            "CONDUIT_DATA_DIR": str(resolved.data_dir),
            "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}",
            "LOG_FORMAT": os.environ.get("LOG_FORMAT") or "text",  # a person reads this terminal
        }
        for name in ("web", "worker"):
            procs[name] = subprocess.Popen([sys.executable, "-m", "cli.main", name], env=env)
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(f"{base}/healthz", procs)
        print(_banner(resolved, base, embedded=connections.embedded is not None), flush=True)
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(
                        f"conduit: the {name} process exited (code {proc.returncode}); stopping",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"conduit: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nStopping Conduit...", file=sys.stderr)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:  # the worker hands its running jobs back after its grace period
                proc.wait(timeout=settings.operating.worker_shutdown_grace_s + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
        with contextlib.suppress(Exception):
            connections.__exit__(None, None, None)
