"""OpenTelemetry traces: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, then exported over OTLP (HTTP).

One trace follows a task from the HTTP request that submits it to its webhook deliveries:

    POST /v1/tasks (server span, joining the client's W3C ``traceparent`` when it sent one)
      └ hold ─ enqueue run_task
                 └ job run_task (worker) ─ provider.start ─ POST <upstream> (traceparent sent upstream)
                                         └ settle ─ enqueue deliver_webhook
                                                      └ job deliver_webhook ─ POST <webhook URL> (traceparent sent)

arq jobs carry ids only; the trace context travels beside them as the job's ``trace`` keyword argument
(``shared.infra.jobs.Job.trace``, written by ``JobQueue.enqueue``), and a webhook event's in the outbox's
notification (``shared.webhooks.outbox``). Upstream and webhook HTTP calls are traced by OpenTelemetry's httpx
instrumentation, which also sends ``traceparent``; HTTP requests by its ASGI middleware (``api.app``).

Off, nothing is configured: ``span`` hands back one shared do-nothing context manager and the other helpers
return at once, so the hot paths pay a function call (bench/RESULTS.md). The process's provider is kept here,
not installed as OpenTelemetry's global one, so that tests can install and remove an in-memory exporter.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.trace import SpanKind, Tracer, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.trace import TracerProvider

    from shared.settings import OperatingSettings

T = TypeVar("T")
Carrier = Mapping[str, str]  # W3C trace context headers: traceparent (and tracestate)

_PROPAGATOR = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[Any] = contextlib.nullcontext()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def start(settings: OperatingSettings, process: str) -> None:
    """Trace this ``web`` or ``worker`` process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set."""
    configure(settings.otlp_endpoint, settings.otel_service_name or f"conduit-{process}")


def configure(endpoint: str | None, service: str) -> None:
    """Export this process's spans to the OTLP collector at ``endpoint`` (the base URL, as in
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; spans go to ``<endpoint>/v1/traces``). Nothing when ``endpoint`` is unset
    or tracing is already set up in this process."""
    if not endpoint or _provider is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    use(provider)


def use(provider: TracerProvider | None) -> None:
    """Trace with ``provider`` from now on (None: stop tracing). What ``configure`` does; tests pass one that
    keeps spans in memory."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("conduit") if provider is not None else None


def provider() -> TracerProvider | None:
    """The process's tracer provider; None while tracing is off."""
    return _provider


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> AbstractContextManager[Any]:
    """A span around a block, child of the current one. Attribute values may be ids (written as text)."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, kind=kind, attributes=_attributes(attributes))


def resumed(carrier: Carrier | None, name: str, *, kind: SpanKind, **attributes: Any) -> AbstractContextManager[Any]:
    """A span whose parent is the one ``carrier`` names (``current_carrier`` of another process), or the current
    span when there is no carrier."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    parent = _PROPAGATOR.extract(carrier) if carrier else None
    return tracer.start_as_current_span(name, context=parent, kind=kind, attributes=_attributes(attributes))


def current_carrier() -> dict[str, str] | None:
    """The current span as W3C trace context headers, to hand to another process; None when tracing is off."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier or None


def current_traceparent() -> str:
    """The current span's ``traceparent`` header value; empty when tracing is off or outside a span."""
    carrier = current_carrier()
    return carrier.get("traceparent", "") if carrier else ""


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), for log lines; None when tracing is off or outside a span."""
    if _tracer is None:
        return None
    context = get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def instrument_http(client: httpx.AsyncClient) -> None:
    """Trace the client's requests (a client span each) and send ``traceparent`` with them, while tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)


def traced_job(name: str, run: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """An arq job function that runs inside a consumer span continuing the trace the job carries (its ``trace``
    keyword argument, set by ``JobQueue.enqueue``; a job from a process that does not trace has none)."""

    async def job(ctx: Mapping[str, Any], *args: Any, trace: Carrier | None = None, **kwargs: Any) -> T:
        if _tracer is None:
            return await run(ctx, *args, **kwargs)
        with resumed(
            trace, f"job {name}", kind=SpanKind.CONSUMER, job_id=ctx.get("job_id"), job_try=ctx.get("job_try")
        ):
            return await run(ctx, *args, **kwargs)

    job.__qualname__ = job.__name__ = getattr(run, "__name__", name)
    return job


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    return {
        key: str(value) if isinstance(value, uuid.UUID) else value for key, value in values.items() if value is not None
    }
