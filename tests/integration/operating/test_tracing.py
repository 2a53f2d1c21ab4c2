"""Tracing: one task's trace, collected in memory, is connected from the client's ``traceparent`` through the API,
the queue, the worker's job, the upstream call and the settlement to the webhook delivery; the upstream and the
webhook receiver get the trace in their own ``traceparent``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.infra import tracing
from shared.services import Services
from shared.settings import Settings
from tests.conftest import AccountFactory
from tests.harness import ApiServer, InProcessWorker, free_port, wait_for
from tests.integration.helpers import wait_terminal
from tests.integration.webhooks.receiver import Receiver
from tests.simulators import Simulators


@pytest.fixture
async def spans() -> AsyncIterator[InMemorySpanExporter]:
    """Tracing on in this process (as with OTEL_EXPORTER_OTLP_ENDPOINT), into memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def _trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def test_a_tasks_trace_is_connected_from_the_request_to_the_webhook(
    spans: InMemorySpanExporter,
    env: dict[str, str],
    services: Services,
    sims: Simulators,
    make_account: AccountFactory,
) -> None:
    port = free_port()
    settings = Settings.from_env(
        {**env, "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "URL_GUARD_ALLOW_LOOPBACK": "true"}
    )
    await services.redis.flushdb()
    account = await make_account(credits="10")
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {**account.headers, "traceparent": f"00-{trace_id}-{client_span}-01"}
    body = {"model": "test-up-image-b64", "input": {"prompt": "traced", "width": 256, "height": 256}}
    async with (
        Receiver() as receiver,
        ApiServer(settings) as api,
        InProcessWorker(settings),
        httpx.AsyncClient(base_url=api.base_url, timeout=30) as client,
    ):
        submitted = await client.post("/v1/tasks", json={**body, "webhook_url": receiver.url()}, headers=headers)
        assert submitted.status_code == 202, submitted.text
        done = await wait_terminal(client, account, submitted.json()["id"])
        assert done["status"] == "succeeded", done

        async def delivered() -> bool:
            return bool(receiver.requests)

        await wait_for(delivered, timeout=20, what="the webhook")

    # The upstream and the webhook receiver were told the trace.
    [upstream_call] = sims.openai.calls_to("images")
    assert _trace_id(upstream_call.headers["traceparent"]) == trace_id
    assert _trace_id(receiver.requests[0].headers["traceparent"]) == trace_id

    trace = [span for span in spans.get_finished_spans() if format(span.context.trace_id, "032x") == trace_id]
    by_id = {span.context.span_id: span for span in trace}
    names = [span.name for span in trace]
    for expected in (
        "POST /v1/tasks",
        "hold",
        "enqueue run_task",
        "job run_task",
        "provider.start",
        "settle",
        "enqueue deliver_webhook",
        "job deliver_webhook",
    ):
        assert expected in names, (expected, sorted(names))
    called = {str((span.attributes or {}).get("http.url")) for span in trace if span.kind == SpanKind.CLIENT}
    assert f"{sims.openai.origin}/v1/images/generations" in called and receiver.url() in called, called
    # Connected: the request's span continues the client's, and every other span's parent is in the trace.
    [request] = [span for span in trace if span.name == "POST /v1/tasks"]
    assert request.parent is not None and format(request.parent.span_id, "016x") == client_span
    for span in trace:
        if span is not request:
            assert span.parent is not None and span.parent.span_id in by_id, (span.name, _chain(span, by_id))
    # ... in the order the work happened.
    assert _chain(_named(trace, "job deliver_webhook"), by_id) == [
        "job deliver_webhook",
        "enqueue deliver_webhook",
        "settle",
        "job run_task",
        "enqueue run_task",
        "POST /v1/tasks",
    ]


def _named(trace: list[ReadableSpan], name: str) -> ReadableSpan:
    return next(span for span in trace if span.name == name)


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The span's name and its ancestors' in the trace, nearest first."""
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names
