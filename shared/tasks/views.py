"""The public shape of a task: what ``GET /v1/tasks/{id}`` returns and what webhooks carry."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast

import msgspec

from shared.infra.storage import UrlSigner
from shared.ledger.money import Credits
from shared.tasks import TaskStatus
from shared.tasks.records import TaskRecord


class TaskOutput(msgspec.Struct):
    """One output of a task: a file (``url``, signed) or ``text``; ``requested`` is what was asked for, where this
    output differs (``shared.tasks.delivery``)."""

    type: str | None
    url: str | None
    content_type: str | None
    width: int | None
    height: int | None
    duration_s: float | None
    text: str | None
    requested: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class TaskError(msgspec.Struct):
    code: str
    message: str


def public_input(params: dict[str, Any], signer: UrlSigner) -> dict[str, Any]:
    """The task's input, each stored input file shown with a signed URL instead of its storage key."""
    return {name: _public_value(value, signer) for name, value in params.items()}


def _public_value(value: Any, signer: UrlSigner) -> Any:
    if isinstance(value, list):
        return [_public_value(item, signer) for item in value]
    if isinstance(value, dict) and isinstance(value.get("key"), str) and value["key"].startswith("inputs/"):
        return {**{name: item for name, item in value.items() if name != "key"}, "url": signer.url(value["key"])}
    return value


class TaskCredits(msgspec.Struct):
    held: Credits
    charged: Credits


class Task(msgspec.Struct):
    id: str
    object: Literal["task"]
    status: TaskStatus
    model: str
    kind: str
    input: dict[str, Any]
    outputs: list[TaskOutput]
    error: TaskError | None
    progress: dict[str, Any] | None
    provider: str | None
    credits: TaskCredits
    metadata: dict[str, Any]
    webhook_url: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None


def public_output(output: dict[str, Any], signer: UrlSigner) -> TaskOutput:
    key = output.get("key")
    return TaskOutput(
        type=output.get("type"),
        url=signer.url(key) if key else output.get("url"),
        content_type=output.get("content_type"),
        width=output.get("width"),
        height=output.get("height"),
        duration_s=output.get("duration_s"),
        text=output.get("text"),
        requested=output.get("requested") or msgspec.UNSET,
    )


def public_task(task: TaskRecord, signer: UrlSigner) -> Task:
    error = None
    if task.error_code:
        error = TaskError(code=task.error_code, message=task.error_message or "")
    return Task(
        id=str(task.id),
        object="task",
        status=cast(TaskStatus, task.status),  # the tasks table's check constraint allows these only
        model=task.model,
        kind=task.kind,
        input=public_input(task.input, signer),
        outputs=[public_output(output, signer) for output in task.outputs],
        error=error,
        progress=task.progress,
        provider=task.provider,
        credits=TaskCredits(held=Credits(task.credits_held), charged=Credits(task.credits_charged)),
        metadata=task.metadata,
        webhook_url=task.webhook_url,
        created_at=task.created_at,
        started_at=task.started_at,
        completed_at=task.completed_at,
    )
