"""Counters and histograms of one process, added up across processes and machines in Redis.

Each process counts in memory (no I/O on the hot path) and adds its increments to one Redis hash every
``METRICS_FLUSH_S`` (``store.flush_periodically``, a background loop of the ``web`` and ``worker`` processes);
``/metrics`` on any ``web`` process renders the totals of every process, plus gauges read from PostgreSQL and
Redis at scrape time (``shared.infra.metrics.exposition``). The totals survive process restarts; a Redis
restarted empty starts them again from zero, which Prometheus handles as a counter reset.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping

# Histogram buckets (seconds)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# name -> (type, help, label names, buckets)
DEFINITIONS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "conduit_http_requests": ("counter", "HTTP requests by route and status", ("method", "route", "status"), ()),
    "conduit_http_unhandled_errors": (
        "counter", "Requests answered 500 by an exception nothing expected (crash paths)",
        ("method", "route", "exception"), (),
    ),
    "conduit_http_database_unavailable": (
        "counter", "Requests answered 503 database_unavailable: the database connection was lost or refused",
        ("method", "route"), (),
    ),
    "conduit_http_request_duration_seconds": (
        "histogram", "HTTP request latency by route", ("method", "route"), HTTP_BUCKETS,
    ),
    "conduit_job_duration_seconds": (
        "histogram", "Task job runs (one delivery of a task's job) by model and provider",
        ("model", "provider"), JOB_BUCKETS,
    ),
    "conduit_tasks_finished": ("counter", "Tasks that reached a terminal state", ("model", "provider", "status"), ()),
    "conduit_provider_errors": ("counter", "Failed upstream calls by provider and code", ("provider", "code"), ()),
    "conduit_provider_retries": ("counter", "Upstream calls retried after a transient failure", ("provider",), ()),
    "conduit_webhook_deliveries": ("counter", "Webhook delivery attempts by outcome", ("outcome",), ()),
    "conduit_credits_charged": ("counter", "Credits charged for tasks", ("model",), ()),
    "conduit_credits_granted": ("counter", "Credits granted, by source of the lot", ("source",), ()),
    "conduit_signin_attempts": (
        "counter", "Password checks by outcome (succeeded, failed, throttled) and client (device, untrusted)",
        ("outcome", "client"), (),
    ),
    "conduit_invalid_api_keys": (
        "counter", "Requests with an unknown, revoked or expired API key, by how they were refused "
        "(looked_up: a database lookup; cached: the short-lived cache of refused keys; throttled: 429)",
        ("outcome",), (),
    ),
    "conduit_moderation_decisions": (
        "counter", "Moderation blocks and flags by usage source, stage (input, output) and category",
        ("source", "stage", "category", "action"), (),
    ),
    "conduit_moderation_suspensions": (
        "counter", "Accounts suspended automatically for content-policy strikes, by the last category",
        ("category",), (),
    ),
}  # fmt: skip

Key = tuple[str, tuple[tuple[str, str], ...]]


class Recorder:
    """In-memory increments since the last flush (thread-safe; cheap enough for every request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    @staticmethod
    def _field(name: str, labels: Mapping[str, object], suffix: str) -> str:
        label_names = DEFINITIONS[name][2]
        values = "\x1f".join(str(labels.get(label, "")) for label in label_names)
        return f"{name}\x1e{values}\x1e{suffix}"

    def inc(self, name: str, labels: Mapping[str, object], value: float = 1.0) -> None:
        field = self._field(name, labels, "")
        with self._lock:
            self._values[field] = self._values.get(field, 0.0) + value

    def observe(self, name: str, labels: Mapping[str, object], seconds: float) -> None:
        buckets = DEFINITIONS[name][3]
        index = bisect.bisect_left(buckets, seconds)
        bucket = repr(buckets[index]) if index < len(buckets) else "+Inf"
        fields = (self._field(name, labels, f"b{bucket}"), self._field(name, labels, "sum"))
        with self._lock:
            self._values[fields[0]] = self._values.get(fields[0], 0.0) + 1
            self._values[fields[1]] = self._values.get(fields[1], 0.0) + seconds

    def drain(self) -> dict[str, float]:
        with self._lock:
            values, self._values = self._values, {}
        return values

    def restore(self, values: Mapping[str, float]) -> None:
        """Put back increments a failed flush could not write (they go with the next one)."""
        with self._lock:
            for field, value in values.items():
                self._values[field] = self._values.get(field, 0.0) + value


METRICS = Recorder()  # one per process; only memory (the flusher and the scrape do the I/O)
