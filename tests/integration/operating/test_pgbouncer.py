"""PgBouncer in transaction mode (DATABASE_POOL_MODE=transaction): the API and a worker reach PostgreSQL only
through a PgBouncer with fewer server connections than their pools ask for, and the core flows work: sign-up
with its reward, tasks run and charged, a chat completion. The worker's outbox listener (LISTEN holds a session)
uses DATABASE_DIRECT_URL."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from cli.embedded import postgres_bin_dir
from shared.ledger.invariants import check_ledger
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, free_port
from tests.harness import TestServers as Servers
from tests.integration.accounts.mailbox import Mailbox
from tests.integration.helpers import balance, charge_count, submit, wait_terminal
from tests.integration.operating.external import ServerProcess, pgbouncer


def _server_address(database_url: str) -> str:
    """PgBouncer's ``host=... port=...`` for the test database's server (a Unix socket folder or a TCP host)."""
    parts = urlsplit(database_url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir:
        return socket_dir
    return f"{parts.hostname or '127.0.0.1'} port={parts.port or 5432}"


def _bouncer(tmp_path: Path, servers: Servers) -> tuple[ServerProcess, str]:
    database = urlsplit(servers.database_url).path.lstrip("/")
    bouncer = pgbouncer(tmp_path / "pgbouncer", socket_dir=_server_address(servers.database_url), database=database)
    return bouncer, f"postgresql://postgres@127.0.0.1:{bouncer.port}/{database}"


def _transactions_served(bouncer: ServerProcess, database: str) -> int:
    """PgBouncer's own count of the transactions it passed to the database (its admin console's SHOW STATS)."""
    result = subprocess.run(
        [str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres", "-At",
         "-F", "|", "-c", "SHOW STATS", "pgbouncer"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        fields = line.split("|")
        if fields[0] == database:
            return int(fields[1])  # total_xact_count
    return 0


async def test_the_core_flows_work_through_pgbouncer_in_transaction_mode(
    make_account: AccountFactory, services: Services, servers: Servers, env: dict[str, str], tmp_path: Path
) -> None:
    bouncer, url = _bouncer(tmp_path, servers)
    database = urlsplit(url).path.lstrip("/")
    mailbox = Mailbox()
    mailbox.start()
    port = free_port()
    settings = Settings.from_env({
        **env, **mailbox.env(), "DATABASE_URL": url, "DATABASE_POOL_MODE": "transaction",
        "DATABASE_DIRECT_URL": servers.database_url, "DB_POOL_MAX": "10", "AUTH_IP_RATE_PER_MIN": "100000",
        "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    })  # fmt: skip
    try:
        before = _transactions_served(bouncer, database)
        async with (
            ApiServer(settings) as api,
            InProcessWorker(settings) as worker,
            httpx.AsyncClient(base_url=api.base_url, timeout=30) as client,
        ):
            running = worker.process.running
            assert running is not None and running.webhooks.listener.database_url == servers.database_url
            email = f"bouncer-{uuid.uuid4().hex[:8]}@example.com"
            signup = await client.post(
                "/v1/auth/signup", json={"email": email, "password": "correct horse 42", "age_confirmed": True}
            )
            assert signup.status_code == 202, signup.text
            mail = await mailbox.wait(email, "Confirm your email")
            verified = await client.get("/v1/auth/verify-email", params={"token": mail.token()})
            assert verified.status_code == 200, verified.text

            account = await make_account(credits="50")
            # more requests at once than PgBouncer has server connections (4)
            created = await asyncio.gather(*(
                submit(client, account, "sdxl", prompt=f"bounced {i}", width=256, height=256) for i in range(12)
            ))  # fmt: skip
            assert all(response.status_code == 202 for response in created), [r.text for r in created]
            for response in created:
                done = await wait_terminal(client, account, response.json()["id"], timeout=60)
                assert done["status"] == "succeeded", done
                assert await charge_count(services.db, done["id"]) == 1

            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "test-chat-local", "messages": [{"role": "user", "content": "hello"}]},
                headers=account.headers,
            )
            assert chat.status_code == 200, chat.text
            assert chat.json()["choices"][0]["message"]["content"]
            available, held = await balance(client, account)  # twelve images at 0.4, and the chat's tokens
            assert held == 0 and available < Decimal(50) - Decimal(12) * Decimal("0.4")
        assert _transactions_served(bouncer, database) > before + 50  # it all went through PgBouncer
    finally:
        mailbox.stop()
        bouncer.stop()
    email_reward = await services.db.fetchval(
        "SELECT sum(l.amount) FROM credit_lots l JOIN accounts a ON a.id = l.account_id WHERE a.email = $1", email
    )
    assert email_reward == 25_000_000  # the signup reward, granted through PgBouncer
    assert await check_ledger(services.db) == []
