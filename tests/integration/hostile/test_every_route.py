"""Every operation of the OpenAPI document, probed with the hostile corpus by nobody, an API key and a session:
never a 5xx; what is hostile beyond doubt gets a 4xx; every refusal from the app is in the one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.app import create_app
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, InProcessWorker
from tests.integration.hostile.conftest import callers
from tests.integration.hostile.corpus import Operation, Probe, operations, probes
from tests.integration.hostile.rawhttp import RawResponse, send

DOCUMENT: dict[str, Any] = create_app(Settings()).openapi_schema.to_schema()
OPERATIONS = operations(DOCUMENT)
SERVER_REFUSAL = b"Invalid HTTP request received."  # uvicorn's own answer to a request it cannot parse


def problem(probe: Probe, response: RawResponse) -> str | None:
    """What is wrong with this answer to this probe, or None."""
    if response.status == 0:
        return "closed the connection without an answer"
    if response.status >= 500:
        return f"answered {response.status}: {response.body[:300]!r}"
    if probe.must_refuse and not 400 <= response.status < 500:
        return f"answered {response.status}, not a 4xx: {response.body[:200]!r}"
    if response.status < 400:
        return None
    if probe.protocol_level and response.body.strip() == SERVER_REFUSAL:
        return None
    try:
        error = json.loads(response.body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"answered {response.status} without the error shape: {response.body[:200]!r}"
    if set(error) != {"type", "code", "message", "param"} or not error["message"]:
        return f"answered {response.status} in another shape: {error}"
    return None


async def test_the_served_document_lists_the_operations_probed(hostile_api: ApiServer) -> None:
    response = await send(hostile_api.settings.port, "GET", b"/docs/openapi.json")
    assert response.status == 200
    assert {op.label for op in operations(response.json())} == {op.label for op in OPERATIONS}


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.label)
async def test_hostile_input_never_gets_a_server_error(
    op: Operation, hostile_api: ApiServer, hostile_worker: InProcessWorker, services: Services
) -> None:
    failures = []
    for caller in await callers(services, hostile_api.settings):
        for probe in probes(op):
            response = await send(
                hostile_api.settings.port,
                probe.method,
                probe.target,
                headers=[*caller.headers, *probe.headers],
                body=probe.body,
            )
            found = problem(probe, response)
            if found:
                failures.append(f"{caller.name}, {probe.what}: {found}")
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:60])
