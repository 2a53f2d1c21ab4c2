"""The schema, as Piccolo tables (a module per domain in ``shared.infra.db.schema``). Migrations in ``migrations/``
are generated from ``TABLES``.

Money columns are BIGINT micro-credits. The database enforces the money invariants with CHECK constraints
so that no code path, however wrong, can drive a balance or a lot below zero.
"""

from __future__ import annotations

from piccolo.table import Table

from shared.infra.db.schema.accounts import Account, AccountToken, ApiKey, OAuthIdentity
from shared.infra.db.schema.batches import OpenAIBatch, OpenAIBatchLine, OpenAIFile
from shared.infra.db.schema.billing import BillingOrder, BillingRefund, StripeEvent
from shared.infra.db.schema.ledger import (
    ApiKeyHold,
    CreditLot,
    Hold,
    HoldAllocation,
    LedgerEntry,
    MemberHold,
    UsageRecord,
)
from shared.infra.db.schema.media import MediaUpload
from shared.infra.db.schema.moderation import ModerationEvent
from shared.infra.db.schema.promos import PromoCode, PromoRedemption
from shared.infra.db.schema.staff import StaffAuditEntry, SupportCannedReply, TaskAttempt
from shared.infra.db.schema.support import SupportAttachment, SupportMessage, SupportTicket
from shared.infra.db.schema.tasks import IdempotencyRecord, Task
from shared.infra.db.schema.teams import AccountAuditEntry, AccountInvitation, AccountMember
from shared.infra.db.schema.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSigningSecret,
)

TABLES: list[type[Table]] = [
    Account,
    ApiKey,
    CreditLot,
    Task,
    Hold,
    HoldAllocation,
    LedgerEntry,
    UsageRecord,
    IdempotencyRecord,
    WebhookEndpoint,
    WebhookSigningSecret,
    WebhookEvent,
    WebhookDelivery,
    WebhookAttempt,
    ApiKeyHold,
    AccountToken,
    OAuthIdentity,
    PromoCode,
    PromoRedemption,
    # support tickets
    SupportTicket,
    SupportMessage,
    SupportAttachment,
    # billing
    BillingOrder,
    BillingRefund,
    StripeEvent,
    # staff: audit log, canned replies, task attempts
    StaffAuditEntry,
    SupportCannedReply,
    TaskAttempt,
    # the OpenAI Batch API
    OpenAIFile,
    OpenAIBatch,
    OpenAIBatchLine,
    # input media
    MediaUpload,
    # moderation: blocks and flags
    ModerationEvent,
    # teams: members, invitations, the account's audit trail
    AccountMember,
    AccountInvitation,
    AccountAuditEntry,
    MemberHold,
]
