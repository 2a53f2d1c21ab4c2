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


def public_input(params: dict[str, Any], signer: UrlSigner) -> dict[str, Any]:
    """The task's input, each stored input file shown with a signed URL instead of its storage key."""
    return {name: _public_value(value, signer) for name, value in params.items()}


def _public_value(value: Any, signer: UrlSigner) -> Any:
    if isinstance(value, list):
        return [_public_value(item, signer) for item in value]
    if isinstance(value, dict) and isinstance(value.get("key"), str) and value["key"].startswith("inputs/"):
        return {**{name: item for name, item in value.items() if name != "key"}, "url": signer.url(value["key"])}
    return value


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
        "input": public_input(task.input, signer),
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
