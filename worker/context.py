"""The typed arq job context."""

from __future__ import annotations

from typing import TypedDict

from arq.connections import ArqRedis

from shared.services import Services
from shared.tasks.execution import TaskRuntime
from shared.webhooks.dispatch import WebhookWorker


class WorkerContext(TypedDict):
    redis: ArqRedis  # set by arq
    job_id: str  # set by arq for each job
    job_try: int
    services: Services
    runtime: TaskRuntime
    webhooks: WebhookWorker
