"""Provider health for operators: credentials configured, circuit state (shared through Redis), the last
hour's attempts on each provider (error rate, latency) and outcomes of tasks; the queue; and opening or
closing a provider's circuit by hand (audited)."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.admin.views import CircuitState, ProviderAttempts, ProviderCircuit, ProviderHealth, QueueOverview
from shared.infra.db import Database
from shared.infra.errors import NotFound
from shared.providers import ProviderRegistry
from shared.staff import Actor, audit


async def provider_health(db: Database, registry: ProviderRegistry) -> list[ProviderHealth]:
    rows = await db.fetch(
        """
        SELECT provider, status, count(*) AS n FROM tasks
        WHERE completed_at > now() - interval '1 hour' AND provider IS NOT NULL
        GROUP BY provider, status
        """
    )
    recent: dict[str, dict[str, int]] = {}
    for row in rows:
        recent.setdefault(row["provider"], {})[row["status"]] = row["n"]
    attempts = {
        row["provider"]: row
        for row in await db.fetch(
            """
            SELECT provider, count(*) AS n, count(*) FILTER (WHERE outcome = 'failed') AS failed,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms
            FROM task_attempts WHERE started_at > now() - interval '1 hour' AND outcome <> 'skipped'
            GROUP BY provider
            """
        )
    }
    health = []
    for name in registry.names():
        provider = registry.get(name)
        circuit: dict[str, Any] = {"state": "closed", "failures": 0, "open_until_ms": None, "held_open": False}
        if registry.breaker is not None:
            circuit = await registry.breaker.state(name)
        tried = attempts.get(name)
        health.append(
            ProviderHealth(
                name=name,
                object="provider_health",
                configured=bool(provider and provider.configured()),
                circuit=CircuitState(**circuit),
                last_hour=recent.get(name, {}),
                attempts_last_hour=ProviderAttempts(
                    count=tried["n"] if tried else 0,
                    error_rate=round(tried["failed"] / tried["n"], 3) if tried else None,
                    latency_p50_ms=round(tried["p50_ms"]) if tried else None,
                    latency_p95_ms=round(tried["p95_ms"]) if tried else None,
                ),
            )
        )
    return health


async def queue_overview(db: Database) -> QueueOverview:
    """Tasks waiting for a worker and running, and how long the oldest queued one has waited."""
    row = await db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
               count(*) FILTER (WHERE status = 'running') AS running,
               min(created_at) FILTER (WHERE status = 'queued') AS oldest_queued_at
        FROM tasks WHERE status IN ('queued', 'running')
        """
    )
    assert row is not None  # an aggregate always answers one row
    oldest = await db.fetchval("SELECT id FROM tasks WHERE status = 'queued' ORDER BY created_at LIMIT 1")
    return QueueOverview(
        object="queue",
        queued=row["queued"],
        running=row["running"],
        oldest_queued_at=row["oldest_queued_at"],
        oldest_queued_task=str(oldest) if oldest else None,
    )


async def set_circuit(
    registry: ProviderRegistry, db: Database, name: str, *, open_it: bool, actor: Actor, reason: str = ""
) -> ProviderCircuit:
    """Open a provider's circuit by hand (its routes are skipped until it is closed) or close it."""
    reason = audit.check_reason(reason, required=open_it)
    if name not in registry.names() or registry.breaker is None:
        raise NotFound(f"no provider {name}", code="provider_not_found", param="provider")
    before = await registry.breaker.state(name)
    if open_it:
        await registry.breaker.hold_open(name)
    else:
        await registry.breaker.reset(name)
    after = await registry.breaker.state(name)
    action = "provider.circuit_open" if open_it else "provider.circuit_close"
    await audit.record(db, actor, action, "provider", name, reason=reason, before=before, after=after)
    return ProviderCircuit(name=name, object="provider_circuit", circuit=msgspec.convert(after, CircuitState))
