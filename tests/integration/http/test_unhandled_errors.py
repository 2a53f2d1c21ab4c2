"""An exception nothing expected: answered with the generic 500 (no detail), counted in a metric by route and
exception class, and logged with the request id the response carries."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import httpx
from litestar import get
from litestar.params import FromPath

from api.app import create_app
from shared.infra.logs import ContextFilter, JsonFormatter
from shared.settings import Settings
from tests.harness import AsgiServer, free_port
from tests.integration.operating.test_operating import metric_sample

CRASH_ROUTE = "/v1/test-crash/{thing:str}"


@get(CRASH_ROUTE, include_in_schema=False)
async def crash(thing: FromPath[str]) -> None:
    raise RuntimeError(f"secret detail about {thing}")


class Lines(logging.Handler):
    """The JSON lines a ``web`` process would write."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter("web"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_an_unexpected_exception_is_a_generic_500_counted_and_logged_with_its_request_id(
    settings: Settings,
) -> None:
    port = free_port()
    app = create_app(replace(settings, port=port))
    app.register(crash)
    lines = Lines()
    logger = logging.getLogger("conduit.api")
    logger.addHandler(lines)
    try:
        async with (
            AsgiServer(app, port, name="an API with a crashing route", lifespan="on") as server,
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
        ):
            labels = {"method": "GET", "route": "/v1/test-crash/{thing}", "exception": "RuntimeError"}
            before = metric_sample((await http.get("/metrics")).text, "conduit_http_unhandled_errors_total", **labels)
            response = await http.get("/v1/test-crash/x", headers={"X-Request-ID": "crash-probe-1"})
            after = metric_sample((await http.get("/metrics")).text, "conduit_http_unhandled_errors_total", **labels)
    finally:
        logger.removeHandler(lines)

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "type": "api_error",
            "code": "internal_error",
            "message": "internal server error; it has been logged",
            "param": None,
        }
    }
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "crash-probe-1"
    assert after == before + 1
    logged = [line for line in lines.lines if line["level"] == "ERROR"]
    assert len(logged) == 1
    assert logged[0]["request_id"] == "crash-probe-1"
    assert "RuntimeError: secret detail about x" in str(logged[0]["exception"])
