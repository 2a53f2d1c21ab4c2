"""schemathesis over every operation of the OpenAPI document, in positive mode (requests the document allows) and
negative mode (requests it forbids), a few examples each so that it fits in CI: no answer is a server error, and
every answer matches the schema the document declares for its status (the error shape for every 4xx and 5xx).

The requests come from a new admin's session, so that every route is reached past its access checks; they are
sent from a thread, as the API runs on the test's event loop. Examples are derandomized: a run is repeatable."""

from __future__ import annotations

import asyncio

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from shared.services import Services
from shared.settings import Settings
from tests.harness import ApiServer, InProcessWorker
from tests.integration.hostile.conftest import callers

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi_schema.to_schema())


def _operations() -> dict[str, schemathesis.APIOperation]:
    found = {}
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document describes an operation schemathesis cannot read
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()
# Hypothesis warns when the `random` module's state changes while a strategy draws; here the API, on the event
# loop's thread, uses `random` while the examples are drawn in another thread: not the strategies' doing.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
EXAMPLES_PER_OPERATION = 5
CHECKS = [not_a_server_error, response_schema_conformance]


def run_examples(
    operation: schemathesis.APIOperation, mode: GenerationMode, base_url: str, headers: dict[str, str]
) -> None:
    with requests.Session() as session:

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def examples(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS)

        try:
            examples()
        except hypothesis.errors.Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # nothing of this operation can be made invalid (e.g. its only parameter is any string)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda mode: mode.value)
@pytest.mark.parametrize("label", sorted(OPERATIONS))
async def test_no_server_error_and_answers_as_documented(
    label: str,
    mode: GenerationMode,
    hostile_api: ApiServer,
    hostile_worker: InProcessWorker,
    services: Services,
) -> None:
    session = (await callers(services, hostile_api.settings))[-1]
    headers = {name.decode(): value.decode() for name, value in session.headers}
    await asyncio.to_thread(run_examples, OPERATIONS[label], mode, hostile_api.base_url, headers)
