"""``/metrics``: the totals every process flushed to Redis, and gauges read at scrape time (tasks in flight,
the queue, credits held, circuit states), in the Prometheus text format."""

from __future__ import annotations

import asyncio
import hmac
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from shared.infra.db import Database
from shared.infra.jobs import QUEUE
from shared.infra.metrics import DEFINITIONS
from shared.infra.metrics.store import flush, read_totals
from shared.ledger.money import MICRO
from shared.providers import ProviderRegistry
from shared.tasks import ACTIVE, QUEUED

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def _families(totals: dict[str, float]) -> list[Metric]:
    grouped: dict[str, dict[tuple[str, ...], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for field, value in totals.items():
        name, _, rest = field.partition("\x1e")
        labels, _, suffix = rest.partition("\x1e")
        if name not in DEFINITIONS:
            continue  # written by another version of Conduit
        label_values = tuple(labels.split("\x1f")) if DEFINITIONS[name][2] else ()
        grouped[name][label_values][suffix] = value
    families: list[Metric] = []
    for name, (kind, help_text, label_names, buckets) in DEFINITIONS.items():
        series = grouped.get(name, {})
        if kind == "counter":
            counter = CounterMetricFamily(name, help_text, labels=label_names)
            for values, parts in sorted(series.items()):
                counter.add_metric(list(values), parts.get("", 0.0))
            families.append(counter)
            continue
        histogram = HistogramMetricFamily(name, help_text, labels=label_names)
        for values, parts in sorted(series.items()):
            cumulative, rows = 0.0, []
            for bound in (*(repr(b) for b in buckets), "+Inf"):
                cumulative += parts.get(f"b{bound}", 0.0)
                rows.append((bound, cumulative))
            histogram.add_metric(list(values), rows, parts.get("sum", 0.0))
        families.append(histogram)
    return families


async def _gauges(db: Database, redis: Redis, providers: ProviderRegistry) -> list[Metric]:
    active = await db.fetch(
        """
        SELECT status, count(*) AS n, EXTRACT(EPOCH FROM now() - min(created_at)) AS oldest_s
        FROM tasks WHERE status IN ('queued', 'running') GROUP BY status
        """
    )
    by_status = {row["status"]: row for row in active}
    held = await db.fetchval("SELECT COALESCE(sum(credits_held), 0) FROM accounts")
    jobs = await redis.zcard(QUEUE)

    tasks = GaugeMetricFamily("conduit_tasks", "Tasks queued or running now", labels=["status"])
    for status in ACTIVE:
        row = by_status.get(status)
        tasks.add_metric([status], row["n"] if row else 0)
    oldest = by_status.get(QUEUED)
    families: list[Metric] = [
        tasks,
        GaugeMetricFamily("conduit_queue_depth", "Jobs waiting in the arq queue (including deferred polls)", jobs),
        GaugeMetricFamily(
            "conduit_queue_oldest_task_age_seconds",
            "Age of the oldest task still queued (0: none)",
            float(oldest["oldest_s"]) if oldest else 0.0,
        ),
        GaugeMetricFamily("conduit_credits_held", "Credits held by pending tasks now", held / MICRO),
    ]
    circuit = GaugeMetricFamily(
        "conduit_provider_circuit_state",
        "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
        labels=["provider"],
    )
    if providers.breaker is not None:
        states = await asyncio.gather(*(providers.breaker.state(name) for name in providers.names()))
        for name, state in zip(providers.names(), states, strict=True):
            circuit.add_metric([name], CIRCUIT_VALUES[str(state["state"])])
    families.append(circuit)
    return families


class _Snapshot(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


async def render(db: Database, redis: Redis, providers: ProviderRegistry) -> bytes:
    await flush(redis)  # this process's latest increments too
    totals, gauges = await asyncio.gather(read_totals(redis), _gauges(db, redis, providers))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([*_families(totals), *gauges]))
    return generate_latest(registry)


def metrics_allowed(token: str | None, authorization: str | None, client_host: str | None) -> bool:
    """With ``METRICS_TOKEN``: the bearer token; without: only clients on this machine (loopback)."""
    if token:
        return hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())
    return client_host in ("127.0.0.1", "::1", "localhost")
