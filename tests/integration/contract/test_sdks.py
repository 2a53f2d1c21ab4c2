"""Clients generated from the live OpenAPI document work, as a user of each would use it: a Python client
(openapi-python-client, pinned in constraints.txt) and a TypeScript one (openapi-typescript types with
openapi-fetch, pinned in tests/sdk/typescript/package-lock.json). Each is generated without a warning, then
creates a task, polls it to its end, reads the balance and gets a 402 as a typed error object.

The generated code is not committed: the Python client is written to the test's temporary directory, the npm
packages are installed into .conduit/sdk/typescript (ignored by git, reinstalled when the lock file changes)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AccountFactory
from tests.harness import ROOT, ApiServer, InProcessWorker, wait_for

VENV_BIN = Path(sys.executable).parent
TYPESCRIPT_SOURCES = ROOT / "tests" / "sdk" / "typescript"
PYTHON_CONFIG = ROOT / "tests" / "sdk" / "python" / "config.yaml"
NODE_WORKDIR = ROOT / ".conduit" / "sdk" / "typescript"
TASK_INPUT = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256}
TERMINAL = ("succeeded", "failed", "canceled")


async def run(*command: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command; its stdout and stderr together. Fails the test with both when it does not exit 0."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = out.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(command)} exited {process.returncode}:\n{text}"
    return text


async def live_document(client: httpx.AsyncClient, directory: Path) -> Path:
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    path = directory / "openapi.json"
    path.write_bytes(response.content)
    return path


async def test_python_client_creates_polls_reads_balance_and_parses_402(
    api: ApiServer,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
    tmp_path: Path,
) -> None:
    document = await live_document(client, tmp_path)
    output = await run(
        str(VENV_BIN / "openapi-python-client"), "generate", "--path", str(document),
        "--output-path", str(tmp_path / "conduit_sdk"), "--meta", "none", "--config", str(PYTHON_CONFIG),
        cwd=tmp_path,
    )  # fmt: skip
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(tmp_path))
    try:
        sdk: Any = importlib.import_module("conduit_sdk")
        create_task: Any = importlib.import_module("conduit_sdk.api.tasks.create_task")
        get_task: Any = importlib.import_module("conduit_sdk.api.tasks.get_task")
        get_account: Any = importlib.import_module("conduit_sdk.api.account.get_account")
        models: Any = importlib.import_module("conduit_sdk.models")
    finally:
        sys.path.remove(str(tmp_path))

    account, broke_account = await make_account(credits="10"), await make_account(credits="0")
    body = models.SubmitTaskBody.from_dict({"model": "flux-schnell", "input": TASK_INPUT})
    async with sdk.AuthenticatedClient(base_url=api.base_url, token=account.key) as funded:
        created = await create_task.asyncio_detailed(client=funded, body=body)
        assert created.status_code == 202
        assert isinstance(created.parsed, models.Task) and created.parsed.status == "queued"

        async def finished() -> Any:
            task = await get_task.asyncio(client=funded, task_id=created.parsed.id)
            return task if isinstance(task, models.Task) and task.status in TERMINAL else None

        done = await wait_for(finished, timeout=120, what="the task to end")
        assert done.status == "succeeded" and done.credits_.charged == 0.3  # the generator renames a builtin
        assert [output.content_type for output in done.outputs] == ["image/png"]

        account_view = await get_account.asyncio(client=funded)
        assert isinstance(account_view, models.Account)
        assert Decimal(str(account_view.balance.available)) == Decimal("9.7")

    async with sdk.AuthenticatedClient(base_url=api.base_url, token=broke_account.key) as broke:
        refused = await create_task.asyncio_detailed(client=broke, body=body)
    assert refused.status_code == 402
    assert isinstance(refused.parsed, models.Error) and isinstance(refused.parsed.error, models.ErrorDetail)
    error = refused.parsed.error
    assert (error.type_, error.code) == ("insufficient_credits_error", "insufficient_credits")


async def installed_typescript_tools() -> Path:
    """The pinned npm packages, installed with ``npm ci`` into the ignored work folder (again when the lock
    file changed), with the smoke test's sources next to them."""
    lock = (TYPESCRIPT_SOURCES / "package-lock.json").read_bytes()
    stamp = NODE_WORKDIR / "node_modules" / ".conduit-lock-sha256"
    NODE_WORKDIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "tsconfig.json", "smoke.ts"):
        shutil.copyfile(TYPESCRIPT_SOURCES / name, NODE_WORKDIR / name)
    if not stamp.exists() or stamp.read_text() != hashlib.sha256(lock).hexdigest():
        await run("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", cwd=NODE_WORKDIR)
        stamp.write_text(hashlib.sha256(lock).hexdigest())
    return NODE_WORKDIR


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to generate and run the TypeScript client",
)
async def test_typescript_client_creates_polls_reads_balance_and_parses_402(
    api: ApiServer,
    client: httpx.AsyncClient,
    make_account: AccountFactory,
    worker: InProcessWorker,
) -> None:
    workdir = await installed_typescript_tools()
    document = await live_document(client, workdir)
    output = await run("npx", "--no-install", "openapi-typescript", str(document), "-o", "schema.d.ts", cwd=workdir)
    assert "warn" not in output.lower() and "error" not in output.lower(), output
    await run("npx", "--no-install", "tsc", "-p", "tsconfig.json", "--outDir", "out", cwd=workdir)  # strict types

    funded, broke = await make_account(credits="10"), await make_account(credits="0")
    env = {"CONDUIT_URL": api.base_url, "CONDUIT_KEY": funded.key, "CONDUIT_BROKE_KEY": broke.key}
    seen = json.loads((await run("node", "out/smoke.js", cwd=workdir, env=env, timeout=180)).strip().splitlines()[-1])

    assert seen["created"] == {"status": 202, "task_status": "queued"}
    assert seen["done"] == {"status": "succeeded", "charged": 0.3, "outputs": ["image/png"]}
    assert seen["balance"] == {"available": 9.7, "held": 0}
    assert seen["refused"] == {"status": 402, "type": "insufficient_credits_error", "code": "insufficient_credits"}
