"""Provider health for operators: credentials configured, circuit state (shared through Redis) and the last
hour's outcomes of tasks on each provider."""

from __future__ import annotations

from typing import Any

from shared.infra.db import Database
from shared.providers import ProviderRegistry


async def provider_health(db: Database, registry: ProviderRegistry) -> list[dict[str, Any]]:
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
    health = []
    for name in registry.names():
        provider = registry.get(name)
        circuit: dict[str, Any] = {"state": "closed", "failures": 0, "open_until_ms": None}
        if registry.breaker is not None:
            circuit = await registry.breaker.state(name)
        health.append(
            {
                "name": name,
                "object": "provider_health",
                "configured": bool(provider and provider.configured()),
                "circuit": circuit,
                "last_hour": recent.get(name, {}),
            }
        )
    return health
