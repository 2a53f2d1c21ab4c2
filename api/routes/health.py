"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: PostgreSQL and Redis reachable,
migrations applied; ``503`` otherwise, so a load balancer stops sending traffic)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from api.deps import ServicesDep
from shared.infra.health import readiness


@get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["health"])
async def readyz(services: ServicesDep) -> Response[dict[str, Any]]:
    report = await readiness(services.db, services.redis)
    return Response(report, status_code=200 if report["status"] == "ok" else 503)
