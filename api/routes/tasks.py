"""/v1/tasks: submit, list, get, cancel."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from api.contract import raises
from api.deps import PrincipalDep, ServicesDep, TaskAdmissionDep, provide_principal, provide_task_admission
from api.permissions import requires
from api.rate_limit_headers import TASK_ROUTE
from api.task_batches import BatchSubmitResult, batch_response
from shared.infra.errors import (
    BudgetExceeded,
    Conflict,
    InsufficientCredits,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    RateLimited,
    SpendCapExceeded,
)
from shared.infra.ids import parse_uuid
from shared.infra.pagination import PageEnvelope, page_envelope
from shared.tasks.batch import submit_batch
from shared.tasks.cancellation import cancel_task
from shared.tasks.queries import get_task, list_tasks, task_not_found
from shared.tasks.submit import TaskSubmission, submit_task
from shared.tasks.views import Task, public_task

TASK_NOT_FOUND = (NotFound, "task_not_found")


class SubmitTaskBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None


class BatchTaskBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


class SubmitBatchBody(msgspec.Struct, forbid_unknown_fields=True):
    tasks: list[BatchTaskBody]
    atomic: bool = True  # any invalid task refuses the batch; false: each gets its own error, the rest go


class TaskController(Controller):
    opt = requires("tasks.read")
    path = "/v1/tasks"
    tags = ["tasks"]
    dependencies = {"principal": Provide(provide_principal)}

    @post(
        "/",
        operation_id="createTask",
        status_code=202,
        opt={
            "rate_limit": TASK_ROUTE,
            **requires("tasks.run"),
        },  # requests per minute and in-flight slots, in one check (admission)
        dependencies={"admission": Provide(provide_task_admission)},
    )
    @raises(
        (InvalidInput, "invalid_input", "url_not_allowed"),
        (NotFound, "model_not_found"),
        InsufficientCredits,
        SpendCapExceeded,
        BudgetExceeded,
        (Conflict, "idempotency_in_progress", "idempotency_key_reused"),
        ModelUnavailable,
    )
    async def submit(
        self,
        data: JSONBody[SubmitTaskBody],
        principal: PrincipalDep,
        admission: TaskAdmissionDep,
        services: ServicesDep,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[Task]:
        task, created = await submit_task(
            db=services.db,
            queue=services.queue,
            catalog=services.catalog,
            providers=services.providers,
            principal=principal,
            submission=TaskSubmission(
                model=data.model,
                input=data.input,
                webhook_url=data.webhook_url,
                metadata=data.metadata,
                idempotency_key=idempotency_key,
            ),
            moderator=services.moderator,
            url_guard=services.url_guard,
            task_id=admission.task_id,
            events=services.events,
            media=services.media,
            background=services.background,
        )
        admission.created = created
        headers = {"Location": f"/v1/tasks/{task.id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(public_task(task, services.signer), status_code=202, headers=headers)

    @post(
        "/batch",
        operation_id="submitTaskBatch",
        status_code=202,
        opt=requires("tasks.run"),
        responses={207: ResponseSpec(BatchSubmitResult, description="Some tasks were refused (atomic: false)")},
    )
    @raises(
        (InvalidInput, "invalid_input", "model_not_found", "idempotency_key_reused"),
        InsufficientCredits,
        SpendCapExceeded,
        BudgetExceeded,
        ModelUnavailable,
        (RateLimited, "too_many_concurrent_tasks"),
    )
    async def submit_batch(
        self, data: JSONBody[SubmitBatchBody], principal: PrincipalDep, services: ServicesDep
    ) -> Response[BatchSubmitResult]:
        """Up to 1,000 tasks in one request: one hold each, all placed or none (402 for the lot); 202 when every
        task was submitted, 207 when some were refused (``atomic: false``), each item with its task or error."""
        submissions = [
            TaskSubmission(item.model, item.input, item.webhook_url, item.metadata, item.idempotency_key)
            for item in data.tasks
        ]
        results = await submit_batch(
            db=services.db,
            queue=services.queue,
            catalog=services.catalog,
            providers=services.providers,
            principal=principal,
            submissions=submissions,
            atomic=data.atomic,
            moderator=services.moderator,
            url_guard=services.url_guard,
            events=services.events,
            limits=services.request_limits,
        )
        return batch_response(results, services.signer)

    @get("/", operation_id="listTasks")
    async def list_tasks(
        self,
        principal: PrincipalDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        after: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        model: FromQuery[str | None] = None,
    ) -> PageEnvelope[Task]:
        page = await list_tasks(services.db, principal.account_id, limit=limit, after=after, status=status, model=model)
        return page_envelope(page.map(lambda task: public_task(task, services.signer)))

    @get("/{task_id:str}", operation_id="getTask")
    @raises(TASK_NOT_FOUND)
    async def get_task(self, principal: PrincipalDep, services: ServicesDep, task_id: FromPath[str]) -> Task:
        task = await get_task(services.db, principal.account_id, task_id)
        return public_task(task, services.signer)

    @post("/{task_id:str}/cancel", operation_id="cancelTask", status_code=200, opt=requires("tasks.run"))
    @raises(TASK_NOT_FOUND, (Conflict, "task_not_cancelable"))
    async def cancel(self, principal: PrincipalDep, services: ServicesDep, task_id: FromPath[str]) -> Task:
        parsed = parse_uuid(task_id)
        if parsed is None:
            raise task_not_found(task_id)
        task = await cancel_task(
            services.db,
            services.queue,
            principal.account_id,
            parsed,
            slots=services.request_limits.slots,
            events=services.events,
        )
        return public_task(task, services.signer)
