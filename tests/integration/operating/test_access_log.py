"""The access log of an API process: a line per request that names the caller without a secret, and none at all
with ``ACCESS_LOG=false``."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shared.infra.logs import ContextFilter, JsonFormatter
from shared.settings import Settings
from tests.harness import ApiServer, free_port, wait_for

UNKNOWN_KEY = "cdt_" + "Q" * 40
NOT_OURS = "sk-proj-0123456789abcdefghijklmnop"  # another service's secret, sent here by mistake


AccessLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def access_lines() -> Iterator[AccessLines]:
    """The ``conduit.access`` lines written so far in the test, as the processes' JSON handler writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("web"))
    handler.addFilter(ContextFilter())
    access = logging.getLogger("conduit.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        access.removeHandler(handler)
        access.setLevel(level)


async def test_refused_keys_are_named_by_their_prefix_only(
    client: httpx.AsyncClient, access_lines: AccessLines
) -> None:
    unknown = await client.get("/v1/account", headers={"Authorization": f"Bearer {UNKNOWN_KEY}"})
    foreign = await client.get("/v1/account", headers={"Authorization": f"Bearer {NOT_OURS}"})
    assert (unknown.status_code, foreign.status_code) == (401, 401)
    anonymous = await client.get("/v1/models/no-such-model")
    assert anonymous.status_code == 404

    async def all_written() -> dict[str, dict[str, Any]] | None:  # each line follows its response
        by_request = {line["request_id"]: line for line in access_lines()}
        return by_request if len(by_request) >= 3 else None

    by_request = await wait_for(all_written, timeout=5, what="the access lines")
    written = json.dumps(access_lines())
    assert UNKNOWN_KEY not in written and NOT_OURS[:8] not in written
    first, second, third = (by_request[r.headers["x-request-id"]] for r in (unknown, foreign, anonymous))
    assert (first["route"], first["status"], first["key_prefix"]) == ("/v1/account", 401, UNKNOWN_KEY[:12])
    assert "account_id" not in first  # not authenticated
    assert "key_prefix" not in second  # not a Conduit key: nothing of it is written
    assert (third["route"], third["status"], third["bytes"]) == ("/v1/models/{model_id}", 404, len(anonymous.content))


async def test_access_log_off(settings: Settings, access_lines: AccessLines) -> None:
    port = free_port()
    quiet = dataclasses.replace(
        settings,
        port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        operating=dataclasses.replace(settings.operating, access_log=False),
    )
    async with ApiServer(quiet) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/v1/models")).status_code == 200
    assert Settings.from_env({"ACCESS_LOG": "false"}).operating.access_log is False
    assert access_lines() == []
