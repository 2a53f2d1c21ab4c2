"""Liveness (``/healthz``: the process answers) and readiness (``/readyz``: PostgreSQL and Redis reachable,
migrations applied; ``503`` otherwise, so a load balancer stops sending traffic)."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.deps import ServicesDep
from shared.infra.health import Readiness, readiness


class Liveness(msgspec.Struct):
    status: Literal["ok"]


@get("/healthz", operation_id="getLiveness", tags=["health"])
async def healthz() -> Liveness:
    return Liveness(status="ok")


@get(
    "/readyz",
    operation_id="getReadiness",
    tags=["health"],
    responses={503: ResponseSpec(Readiness, generate_examples=False, description="Not ready: which dependency failed")},
)
async def readyz(services: ServicesDep) -> Response[Readiness]:
    report = await readiness(services.db, services.redis)
    return Response(report, status_code=200 if report.status == "ok" else 503)
