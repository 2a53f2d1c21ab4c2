"""Running a task on a worker: claim it, call the provider, store the outputs, settle.

``execute_task`` is what the arq job calls. It is safe to run any number of times for the same task
(arq delivers at least once): the claim is a compare-and-set with a lease, and settlement only happens
for a task that is still running.

Routes are tried in catalog order. Each call is retried for transient failures (``shared.providers.retry``)
inside a time budget below the job timeout; a route whose retries ran out, whose credentials or model are
refused, or whose circuit is open hands over to the next route. A refusal of the request itself (invalid
input, content policy) fails the task at once. Only routes that honour every parameter of the task are tried.
Whatever route serves the task, it is charged once, at the model's price, for what it delivered
(``shared.tasks.delivery``).

Queue-based upstreams answer with a job id: it is saved on the task (with the provider) before anything
else, then the job is re-scheduled to poll it (``execute_task`` returns the delay; the arq job raises
``Retry(defer=…)``), so no job slot sleeps and a redelivered job resumes the same upstream job.

Each step is published as a live event after its commit (``shared.events``): started, progress (the
provider's reports while it works, an upstream job's status at each poll), each output as it is stored, the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shared.catalog import Catalog, Model
from shared.catalog.pricing import cost
from shared.events import TASK_OUTPUT, TASK_PROGRESS
from shared.infra import tracing
from shared.infra.db import Database
from shared.infra.metrics import METRICS
from shared.infra.storage import LocalStorage, UrlSigner
from shared.media.inputs import attach_input_files
from shared.moderation.decisions import ContentPolicyViolation
from shared.moderation.events import Subject
from shared.moderation.pipeline import Moderator
from shared.providers import ProviderRegistry, route_for
from shared.providers.base import (
    Completed,
    GenerationRequest,
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    Submitted,
)
from shared.providers.progress import reporting_to
from shared.providers.retry import with_retries
from shared.providers.routing import Attempt, RequestRefused, RoutesExhausted, serve
from shared.tasks import leases, lifecycle, upstream
from shared.tasks.attempts import record_attempts
from shared.tasks.delivery import billable_usage, note_requested
from shared.tasks.outputs import output_prefix, store_outputs
from shared.tasks.records import TaskRecord
from shared.webhooks import TASK_STARTED

if TYPE_CHECKING:
    from shared.events.publish import TaskEvents
    from shared.ratelimits.task_slots import TaskSlots
    from shared.tasks.claims import TaskClaims
    from shared.tasks.completions import TaskCompletions
    from shared.tasks.leases import LeaseKeeper
    from shared.tasks.upstream import SubmittedJobs

log = logging.getLogger(__name__)

UPSTREAM_CANCEL_TIMEOUT_S = 10.0
CLAIM_RETRY_S = 1.0  # a job whose claim failed runs again after this, on whichever worker takes it


@dataclass(frozen=True, slots=True)
class TaskRuntime:
    db: Database
    catalog: Catalog
    providers: ProviderRegistry
    storage: LocalStorage
    lease_s: float
    poll_min_s: float = 1.0
    poll_max_s: float = 10.0
    slots: TaskSlots | None = None  # rate limits: in-flight slots given back when a task ends
    events: TaskEvents | None = None  # live task events (shared.events), published after each commit
    signer: UrlSigner | None = None  # input files: the signed URLs upstreams fetch them from
    moderator: Moderator | None = None  # moderation of the outputs of the models the policy names
    completions: TaskCompletions | None = None  # group commit of the tasks that succeed at about the same time
    claims: TaskClaims | None = None  # group commit of the claims of the jobs that start at about the same time
    leases: LeaseKeeper | None = None  # renews the leases of running tasks (workers; None: the lease just lasts)
    submitted: SubmittedJobs | None = None  # upstream jobs kept in Redis too, for a run that takes a task over


def output_subject(task: TaskRecord) -> Subject:
    return Subject(task.account_id, task.api_key_id, "task", task.model, task.kind, task_id=task.id)


def _seconds_left(task: TaskRecord) -> float:
    return (task.deadline_at - dt.datetime.now(dt.UTC)).total_seconds()


async def execute_task(rt: TaskRuntime, task_id: uuid.UUID) -> float | None:
    """Run the task if it is ours to run. Returns a delay in seconds when the job should run again later."""
    claim = rt.claims.claim(task_id) if rt.claims is not None else lifecycle.claim(rt.db, task_id, lease_s=rt.lease_s)
    claiming = asyncio.create_task(claim)
    if not await leases.answered_within(claiming, rt.lease_s / 2):
        # This worker is cut off from the database: another worker takes the job (this one takes none until the
        # database answers). If the claim commits later, its lease lapses unrenewed and the task is taken over.
        log.warning("task %s: the database did not answer its claim; its job runs again shortly", task_id)
        return CLAIM_RETRY_S
    task = claiming.result()
    if task is None:
        return None  # terminal already, or another worker holds the lease
    async with leases.running(rt.db, rt.leases, task):  # its lease renewed; handed back if the run is stopped
        return await _run_claimed(rt, task)


async def _run_claimed(rt: TaskRuntime, task: TaskRecord) -> float | None:
    if task.attempts == 1:  # the first claim (polls and takeovers claim again)
        await _publish(rt, task, TASK_STARTED)
    model = rt.catalog.get(task.model)
    if model is None:
        await _fail(rt, task, code="model_removed", message=f"model {task.model!r} is no longer offered")
        return None
    if _seconds_left(task) <= 0:
        await _deadline_exceeded(rt, task, model)
        return None
    # Everything upstream in this run (calls, retries, downloads) ends before the job timeout would.
    began = time.monotonic()
    ends = began + min(rt.providers.policy.budget_s, _seconds_left(task))
    labels = {"model": task.model, "provider": task.provider or ""}
    try:
        if task.upstream_id and task.provider:
            return await _poll(rt, task, model, ends)
        return await _start(rt, task, model, ends, labels)
    finally:  # metrics: each run of the job, by model and the provider it last tried
        METRICS.observe("conduit_job_duration_seconds", labels, time.monotonic() - began)


async def _start(rt: TaskRuntime, task: TaskRecord, model: Model, ends: float, labels: dict[str, str]) -> float | None:
    if task.attempts > 1 and (resumed := await _resume_submitted(rt, task)) is not False:
        return resumed
    registry = rt.providers
    if not registry.routes_for(model, task.input):
        await _fail(rt, task, code="model_unavailable", message="no provider can serve this request now")
        return None
    tried: list[Attempt] = []
    params = task.input
    if rt.signer is not None:  # input files: their bytes and signed URLs, as the routes pass them upstream
        try:
            params = await attach_input_files(rt.storage, rt.signer, model, task.input)
        except FileNotFoundError:  # the API process stopped before it had written them
            await _fail(rt, task, code="input_missing", message="the input files were not stored")
            return None
    try:
        with reporting_to(functools.partial(_publish_progress, rt, task) if rt.events is not None else None):
            served = await serve(
                registry,
                model,
                params,
                _call_start,
                request_id=task.id,
                ends=ends,
                on_route=functools.partial(labels.__setitem__, "provider"),
                count_failures=lambda: _seconds_left(task) > 0,  # running out of the task's own time says nothing
                attempts=tried,
            )
        if isinstance(served.result, Submitted):
            tried[-1].outcome, tried[-1].upstream_id = "submitted", served.result.upstream_id
            if rt.submitted is not None:  # before any database write, which a cut-off worker could not make
                upstream_id, left_s = served.result.upstream_id, _seconds_left(task) + 60
                await rt.submitted.remember(task.id, served.provider.name, upstream_id, ttl_s=left_s)
    except RequestRefused as refused:
        await record_attempts(rt.db, task.id, tried)
        await _fail(rt, task, code=refused.error.code, message=refused.error.message, provider=refused.provider)
        return None
    except RoutesExhausted as exhausted:
        await record_attempts(rt.db, task.id, tried)
        if _seconds_left(task) <= 0:
            await _deadline_exceeded(rt, task, model)
            return None
        last = exhausted.last
        code = last.code if last is not None else "upstream_unavailable"
        reason = last.message if last is not None else "no time left to try"
        await _fail(rt, task, code=code, message=f"no provider could serve this task; the last one said: {reason}")
        return None
    await record_attempts(rt.db, task.id, tried)
    if isinstance(served.result, Submitted):
        return await _submitted(rt, task, served.provider, served.request, served.result)
    await _settle(rt, task, model, served.result, served.provider.name, ends)
    return None


async def _resume_submitted(rt: TaskRuntime, task: TaskRecord) -> float | Literal[False] | None:
    """A run that takes a task over (its earlier run's worker died or was cut off from the database) resumes the
    upstream job that run created but could not save, rather than create a second one. False: there is none."""
    found = await rt.submitted.recall(task.id) if rt.submitted is not None else None
    if found is None or rt.providers.get(found[0]) is None:
        return False
    provider, upstream_id = found
    if not await upstream.save_submitted(
        rt.db,
        task.id,
        provider=provider,
        upstream_id=upstream_id,
        progress=task.progress or {},
        generation=task.attempts,
    ):
        return None  # canceled, or taken over again, meanwhile
    log.info("task %s: resuming %s job %s, created by an earlier run", task.id, provider, upstream_id)
    return _poll_delay(rt, task)


async def _call_start(provider: Provider, request: GenerationRequest) -> Completed | Submitted:
    with tracing.span("provider.start", provider=provider.name, model=request.model.id):
        return await provider.start(request)


async def _submitted(
    rt: TaskRuntime, task: TaskRecord, provider: Provider, request: GenerationRequest, result: Submitted
) -> float | None:
    kept, told = upstream.split_logs(None, result.progress)
    saved = await upstream.save_submitted(
        rt.db, task.id, provider=provider.name, upstream_id=result.upstream_id, progress=kept, generation=task.attempts
    )
    if not saved:
        now = await rt.db.fetchrow("SELECT status, upstream_id FROM tasks WHERE id = $1", task.id)
        if now is not None and now["status"] == "running" and now["upstream_id"] in (None, result.upstream_id):
            return None  # taken over meanwhile: the run that took it resumes this job (it recalls it)
        # Canceled (or failed by the sweep) while we were submitting, or a concurrent run of this job got its own
        # upstream job saved first: nobody else will use this upstream job, so stop it here.
        await _cancel_quietly(provider, request, result.upstream_id)
        return None
    await _publish_progress(rt, task, told)
    log.info("task %s: submitted to %s as %s", task.id, provider.name, result.upstream_id)
    return _poll_delay(rt, task)


async def _poll(rt: TaskRuntime, task: TaskRecord, model: Model, ends: float) -> float | None:
    assert task.provider is not None and task.upstream_id is not None
    registry = rt.providers
    provider = registry.get(task.provider)
    if provider is None:
        await _fail(
            rt, task, code="upstream_unavailable", message=f"provider {task.provider!r} is no longer configured"
        )
        return None
    request = GenerationRequest(task_id=task.id, model=model, route=route_for(model, task.provider), params=task.input)
    poll = functools.partial(provider.poll, request, task.upstream_id)
    try:
        with tracing.span("provider.poll", provider=task.provider, upstream_id=task.upstream_id):
            result = await with_retries(poll, registry.policy, budget_s=ends - time.monotonic(), provider=task.provider)
    except RetryableError as exc:
        # The upstream job is still ours: look again later rather than fail (the deadline bounds this).
        log.warning("task %s: polling %s failed (%s); will poll again", task.id, task.provider, exc.code)
        if _seconds_left(task) <= 0:
            await _deadline_exceeded(rt, task, model)
            return None
        await upstream.save_progress(rt.db, task.id, None, generation=task.attempts)
        return _poll_delay(rt, task)
    except PermanentError as exc:
        await _fail(rt, task, code=exc.code, message=exc.message, provider=task.provider)
        return None
    if isinstance(result, Completed):
        await _settle(rt, task, model, result, task.provider, ends)
        return None
    kept, told = upstream.split_logs(task.progress, result.progress)
    if not await upstream.save_progress(rt.db, task.id, kept, generation=task.attempts):
        return None  # canceled meanwhile: the cancel job stops the upstream job
    if kept != task.progress:  # an unchanged poll tells nothing new
        await _publish_progress(rt, task, told)
    return _poll_delay(rt, task)


async def _publish(rt: TaskRuntime, task: TaskRecord, event_type: str, **data: Any) -> None:
    if rt.events is not None:
        await rt.events.publish(event_type, task_id=task.id, account_id=task.account_id, **data)


async def _publish_progress(rt: TaskRuntime, task: TaskRecord, progress: dict[str, Any] | None) -> None:
    if progress:
        await _publish(rt, task, TASK_PROGRESS, progress=progress)


async def _publish_output(rt: TaskRuntime, task: TaskRecord, index: int, output: dict[str, Any]) -> None:
    await _publish(rt, task, TASK_OUTPUT, index=index, output=output)


def _poll_delay(rt: TaskRuntime, task: TaskRecord) -> float:
    """Poll often at first, then less: a tenth of the time the task has run, within the configured bounds,
    and never past the deadline (the next run fails the task there)."""
    started = task.started_at or task.created_at
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    delay = min(rt.poll_max_s, max(rt.poll_min_s, elapsed / 10))
    return max(0.05, min(delay, _seconds_left(task) + 0.05))


async def _settle(
    rt: TaskRuntime, task: TaskRecord, model: Model, result: Completed, provider: str, ends: float
) -> None:
    if rt.moderator is not None:
        try:  # a blocked output is neither stored nor charged: the task fails, its hold is voided
            await rt.moderator.check_outputs(output_subject(task), result.outputs)
        except ContentPolicyViolation as blocked:
            await _fail(
                rt, task, code=blocked.code, message=blocked.message, provider=provider, units=result.usage.public()
            )
            return
    try:
        outputs = await store_outputs(
            rt.storage,
            task.id,
            result.outputs,
            fetcher=rt.providers.fetcher,
            budget_s=ends - time.monotonic(),
            on_stored=functools.partial(_publish_output, rt, task) if rt.events is not None else None,
        )
    except ProviderError as exc:
        await rt.storage.delete_prefix(output_prefix(task.id))
        await _fail(rt, task, code=exc.code, message=exc.message, provider=provider)
        return
    usage = billable_usage(model, task.input, result.usage, outputs)
    outputs = note_requested(model, task.input, outputs)
    charge = cost(model.pricing, usage)
    if charge > task.credits_held:
        log.warning("task %s cost %d exceeds its hold %d; charging the hold", task.id, charge, task.credits_held)
    with tracing.span("settle", task_id=task.id, credits_charged_micro=charge):
        done = await lifecycle.complete(
            rt.db,
            task,
            outputs=outputs,
            usage=usage,
            charge=charge,
            provider=provider,
            slots=rt.slots,
            events=rt.events,
            completions=rt.completions,
        )
    if not done:
        # Canceled (or finished by another delivery) while we worked: nothing is charged, drop our files
        # unless the winner was a successful run that wrote the same keys, or a run that took the task over
        # (this run's lease lapsed) is writing them now.
        current = await rt.db.fetchval("SELECT status FROM tasks WHERE id = $1", task.id)
        if current in ("failed", "canceled"):
            await rt.storage.delete_prefix(output_prefix(task.id))


async def _fail(rt: TaskRuntime, task: TaskRecord, *, code: str, message: str, **details: Any) -> bool:
    """This run's task fails (unless it was taken over or ended meanwhile): hold voided, slots given back, told."""
    return await lifecycle.fail(rt.db, task.id, code=code, message=message, slots=rt.slots, events=rt.events,
                                generation=task.attempts, **details)  # fmt: skip


async def _deadline_exceeded(rt: TaskRuntime, task: TaskRecord, model: Model) -> None:
    failed = await _fail(rt, task, code="deadline_exceeded", message="the task ran past its deadline")
    if failed and task.upstream_id and task.provider:
        provider = rt.providers.get(task.provider)
        if provider is not None:
            request = GenerationRequest(
                task_id=task.id, model=model, route=route_for(model, task.provider), params=task.input
            )
            await _cancel_quietly(provider, request, task.upstream_id)


async def _cancel_quietly(provider: Provider, request: GenerationRequest, upstream_id: str) -> None:
    try:
        async with asyncio.timeout(UPSTREAM_CANCEL_TIMEOUT_S):
            await provider.cancel(request, upstream_id)
    except (ProviderError, TimeoutError) as exc:
        log.warning("could not cancel %s job %s: %s", provider.name, upstream_id, exc)
