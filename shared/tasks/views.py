"""The public shape of a task: what ``GET /v1/tasks/{id}`` returns and what webhooks carry."""

from __future__ import annotations

from typing import Any

from shared.infra.storage import UrlSigner
from shared.ledger.money import Credits
from shared.tasks.records import TaskRecord

OUTPUT_FIELDS = ("type", "url", "content_type", "width", "height", "duration_s", "text")


def public_output(output: dict[str, Any], signer: UrlSigner) -> dict[str, Any]:
    shaped = {name: output.get(name) for name in OUTPUT_FIELDS}
    if output.get("requested"):  # what was asked for, where this output differs (shared.tasks.delivery)
        shaped["requested"] = output["requested"]
    if output.get("key"):
        shaped["url"] = signer.url(output["key"])
    return shaped


def public_task(task: TaskRecord, signer: UrlSigner) -> dict[str, Any]:
    error = None
    if task.error_code:
        error = {"code": task.error_code, "message": task.error_message or ""}
    return {
        "id": str(task.id),
        "object": "task",
        "status": task.status,
        "model": task.model,
        "kind": task.kind,
        "input": task.input,
        "outputs": [public_output(output, signer) for output in task.outputs],
        "error": error,
        "progress": task.progress,
        "provider": task.provider,
        "credits": {"held": Credits(task.credits_held), "charged": Credits(task.credits_charged)},
        "metadata": task.metadata,
        "webhook_url": task.webhook_url,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "completed_at": task.completed_at,
    }
