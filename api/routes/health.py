"""Liveness."""

from __future__ import annotations

from litestar import get


@get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
