"""Periodic sweeps (arq cron, unique per tick across workers; each is also safe run concurrently)."""

from __future__ import annotations

from shared.accounts.tokens import prune_account_tokens
from shared.alerts.sweep import sweep_alerts
from shared.batches.batches import requeue_batches
from shared.batches.files import purge_expired_files
from shared.ledger import expire_lots, void_abandoned_request_holds
from shared.media.uploads import purge_expired_uploads
from shared.moderation.events import purge_evidence
from shared.tasks.retention import prune_idempotency_records, purge_task_data
from shared.tasks.sweeps import fail_overdue, requeue_orphans
from worker.context import WorkerContext

ABANDONED_MARGIN_S = 600.0  # a request's hold outlives its longest possible run by this much before it is voided


async def sweep(ctx: WorkerContext) -> dict[str, int]:
    services = ctx["services"]
    failed = await fail_overdue(
        services.db, queue=services.queue, slots=services.request_limits.slots, events=services.events
    )
    requeued = await requeue_orphans(services.db, services.queue)
    async with services.db.transaction() as conn:
        expired = await expire_lots(conn)
    slots = await services.request_limits.slots.repair(services.db)
    # OpenAI-compatible requests: holds left pending by an API process that died mid-request
    longest = max(
        (model.max_runtime_s for model in services.catalog if model.kind in ("text", "embedding")), default=600
    )
    abandoned = await void_abandoned_request_holds(services.db, older_than_s=longest + ABANDONED_MARGIN_S)
    batches = await requeue_batches(services.db, services.queue)  # the OpenAI Batch API: jobs lost with Redis
    alerts = await sweep_alerts(services.db, services.mailer)
    return {"failed": failed, "requeued": requeued, "expired_micro_credits": expired, **slots,
            "abandoned_request_holds": abandoned, "batches_requeued": batches, "balance_alerts": alerts.balance_low,
            "budget_alerts": alerts.budget_thresholds}  # fmt: skip


async def housekeeping(ctx: WorkerContext) -> dict[str, int]:
    """Retention and pruning: every few minutes is plenty."""
    services = ctx["services"]
    operating = services.settings.operating
    return {
        "tasks_purged": await purge_task_data(services.db, services.storage, retention_days=operating.retention_days),
        "idempotency_records_pruned": await prune_idempotency_records(services.db, ttl_h=operating.idempotency_ttl_h),
        "account_tokens_pruned": await prune_account_tokens(services.db),
        "session_index_entries_pruned": await services.sessions.prune_indexes(),
        "uploads_purged": await purge_expired_uploads(services.db, services.storage),
        "batch_files_purged": await purge_expired_files(
            services.db, services.storage, retention_s=services.settings.batches.file_retention_s
        ),
        "moderation_evidence_purged": await purge_evidence(
            services.db, retention_s=services.settings.moderation.evidence_retention_s
        ),
    }
