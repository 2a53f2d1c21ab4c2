"""Webhook destinations of an account: its endpoints and the signing secret of task-level ``webhook_url``s.

An endpoint receives every event of the account's tasks that its ``events`` filter lists. Its ``whsec_``
secret is shown once, when the endpoint is created or the secret rotated; after a rotation the previous
secret keeps signing (a second signature in the header) until its grace period ends.

A task's own ``webhook_url`` receives that task's terminal events, signed with the account's signing
secret: one per account, created on first use, readable with ``signing_secret`` and rotatable the same way.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

import msgspec

from shared.accounts.redaction import without_keys
from shared.infra.db import Connection, Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import parse_uuid, uuid7
from shared.infra.urlguard import UrlGuard
from shared.webhooks import DEFAULT_EVENTS, EVENT_TYPES
from shared.webhooks.signing import SecretSet, check_grace, generate_secret

MAX_ENDPOINTS = 10
MAX_DESCRIPTION = 200


class WebhookEndpoint(msgspec.Struct):
    """An endpoint receiving the account's task events; ``secret`` only when it is created or rotated."""

    id: str
    object: Literal["webhook_endpoint"]
    url: str
    description: str
    events: list[str]
    enabled: bool
    status: str
    disabled_reason: str | None
    disabled_at: dt.datetime | None
    failing_since: dt.datetime | None
    secret_rotated_at: dt.datetime | None
    previous_secret_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    secret: str | msgspec.UnsetType = msgspec.UNSET


class WebhookSigningSecret(msgspec.Struct):
    """The account's secret signing the deliveries to tasks' own ``webhook_url``."""

    object: Literal["webhook_signing_secret"]
    secret: str
    previous_secret_expires_at: dt.datetime | None
    secret_rotated_at: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _SigningColumns:
    """The secret columns of an endpoint or of an account's signing secret."""

    secret: str
    previous_secret: str | None
    previous_secret_expires_at: dt.datetime | None

    @property
    def secrets(self) -> SecretSet:
        return SecretSet(self.secret, self.previous_secret, self.previous_secret_expires_at)


@dataclass(frozen=True, slots=True)
class Endpoint(_SigningColumns):
    id: uuid.UUID
    account_id: uuid.UUID
    url: str
    description: str
    events: list[str]
    status: str
    disabled_reason: str | None
    disabled_at: dt.datetime | None
    failing_since: dt.datetime | None
    secret_rotated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    def public(self, *, with_secret: bool = False) -> WebhookEndpoint:
        return WebhookEndpoint(
            id=str(self.id),
            object="webhook_endpoint",
            url=self.url,
            description=self.description,
            events=self.events,
            enabled=self.status == "enabled",
            status=self.status,
            disabled_reason=self.disabled_reason,
            disabled_at=self.disabled_at,
            failing_since=self.failing_since,
            secret_rotated_at=self.secret_rotated_at,
            previous_secret_expires_at=self.secrets.previous_expires_at if self.secrets.previous else None,
            created_at=self.created_at,
            updated_at=self.updated_at,
            secret=self.secrets.current if with_secret else msgspec.UNSET,
        )


@dataclass(frozen=True, slots=True)
class SigningSecret(_SigningColumns):
    """The account's secret for task-level ``webhook_url`` deliveries."""

    account_id: uuid.UUID
    secret_rotated_at: dt.datetime | None
    created_at: dt.datetime

    def public(self) -> WebhookSigningSecret:
        return WebhookSigningSecret(
            object="webhook_signing_secret",
            secret=self.secrets.current,
            previous_secret_expires_at=self.secrets.previous_expires_at if self.secrets.previous else None,
            secret_rotated_at=self.secret_rotated_at,
            created_at=self.created_at,
        )


ENDPOINT_ROWS = RecordMapping(Endpoint, "webhook_endpoints")
SIGNING_SECRET_ROWS = RecordMapping(SigningSecret, "webhook_signing_secrets")


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """A partial update; None leaves a field as it is."""

    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


def endpoint_not_found(endpoint_id: object) -> NotFound:
    return NotFound(f"webhook endpoint {endpoint_id} not found", code="webhook_endpoint_not_found")


def check_events(events: object) -> list[str]:
    if events is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInput("events must be a non-empty list of event types", param="events")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(f"unknown event type {unknown[0]!r}; use any of: {', '.join(EVENT_TYPES)}", param="events")
    return [e for e in EVENT_TYPES if e in events]  # canonical order, no duplicates


def _check_description(description: str) -> str:
    """The description to store, with any API key in it cut out."""
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description must be at most {MAX_DESCRIPTION} characters", param="description")
    return without_keys(description)


async def create_endpoint(
    db: Database,
    guard: UrlGuard,
    account_id: uuid.UUID,
    *,
    url: str,
    events: list[str] | None = None,
    description: str = "",
    enabled: bool = True,
) -> Endpoint:
    """Register an endpoint (its secret is in ``endpoint.secrets.current``: show it to the caller once)."""
    checked = await guard.check(url, param="url")
    filters = check_events(events)
    description = _check_description(description)
    async with db.transaction() as conn:
        # Serialise creations per account so that the limit holds under concurrent requests.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", f"webhook_endpoints:{account_id}")
        count = await conn.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE account_id = $1 AND status <> 'deleted'", account_id
        )
        if count >= MAX_ENDPOINTS:
            raise Conflict(
                f"an account can have at most {MAX_ENDPOINTS} webhook endpoints; delete one first",
                code="too_many_webhook_endpoints",
            )
        row = await conn.fetchrow(
            f"""
            INSERT INTO webhook_endpoints (id, account_id, url, description, events, status, disabled_reason,
                                           disabled_at, secret)
            VALUES ($1, $2, $3, $4, $5, $6::text, $7, CASE WHEN $6::text = 'enabled' THEN NULL ELSE now() END, $8)
            RETURNING {ENDPOINT_ROWS.columns}
            """,
            uuid7(),
            account_id,
            checked.url,
            description,
            filters,
            "enabled" if enabled else "disabled",
            None if enabled else "manual",
            generate_secret(),
        )
    assert row is not None
    return ENDPOINT_ROWS.from_row(row)


async def list_endpoints(db: Database, account_id: uuid.UUID) -> list[Endpoint]:
    rows = await db.fetch(
        f"""SELECT {ENDPOINT_ROWS.columns} FROM webhook_endpoints
            WHERE account_id = $1 AND status <> 'deleted' ORDER BY id""",
        account_id,
    )
    return [ENDPOINT_ROWS.from_row(row) for row in rows]


async def get_endpoint(db: Database | Connection, account_id: uuid.UUID, endpoint_id: str | uuid.UUID) -> Endpoint:
    parsed = endpoint_id if isinstance(endpoint_id, uuid.UUID) else parse_uuid(endpoint_id)
    if parsed is None:
        raise endpoint_not_found(endpoint_id)
    row = await db.fetchrow(
        f"""SELECT {ENDPOINT_ROWS.columns} FROM webhook_endpoints
            WHERE id = $1 AND account_id = $2 AND status <> 'deleted'""",
        parsed,
        account_id,
    )
    if row is None:
        raise endpoint_not_found(endpoint_id)
    return ENDPOINT_ROWS.from_row(row)


async def update_endpoint(
    db: Database, guard: UrlGuard, account_id: uuid.UUID, endpoint_id: str, changes: EndpointChanges
) -> Endpoint:
    current = await get_endpoint(db, account_id, endpoint_id)
    url = (await guard.check(changes.url, param="url")).url if changes.url is not None else None
    events = check_events(changes.events) if changes.events is not None else None
    description = _check_description(changes.description) if changes.description is not None else None
    row = await db.fetchrow(
        f"""
        UPDATE webhook_endpoints SET
            url = COALESCE($3, url),
            events = COALESCE($4, events),
            description = COALESCE($5, description),
            status = CASE WHEN $6::bool IS NULL THEN status WHEN $6 THEN 'enabled' ELSE 'disabled' END,
            disabled_reason = CASE WHEN $6::bool IS NULL THEN disabled_reason WHEN $6 THEN NULL
                                   WHEN status = 'disabled' THEN disabled_reason ELSE 'manual' END,
            disabled_at = CASE WHEN $6::bool IS NULL THEN disabled_at WHEN $6 THEN NULL
                               ELSE COALESCE(disabled_at, now()) END,
            failing_since = CASE WHEN $6::bool THEN NULL ELSE failing_since END,
            updated_at = now()
        WHERE id = $1 AND account_id = $2 AND status <> 'deleted'
        RETURNING {ENDPOINT_ROWS.columns}
        """,
        current.id,
        account_id,
        url,
        events,
        description,
        changes.enabled,
    )
    if row is None:
        raise endpoint_not_found(endpoint_id)
    return ENDPOINT_ROWS.from_row(row)


async def delete_endpoint(db: Database, account_id: uuid.UUID, endpoint_id: str) -> None:
    """The endpoint stops receiving events at once; its deliveries stay in the log."""
    current = await get_endpoint(db, account_id, endpoint_id)
    await db.execute(
        """
        UPDATE webhook_endpoints SET status = 'deleted', disabled_reason = 'deleted', disabled_at = now(),
               updated_at = now()
        WHERE id = $1 AND account_id = $2
        """,
        current.id,
        account_id,
    )


async def rotate_endpoint_secret(
    db: Database, account_id: uuid.UUID, endpoint_id: str, *, grace_s: int | None = None
) -> Endpoint:
    """A new secret signs from now on; the one it replaces also signs until ``grace_s`` from now."""
    grace = check_grace(grace_s)
    current = await get_endpoint(db, account_id, endpoint_id)
    row = await db.fetchrow(
        f"""
        UPDATE webhook_endpoints
        SET previous_secret = secret, previous_secret_expires_at = now() + make_interval(secs => $3),
            secret = $4, secret_rotated_at = now(), updated_at = now()
        WHERE id = $1 AND account_id = $2 AND status <> 'deleted'
        RETURNING {ENDPOINT_ROWS.columns}
        """,
        current.id,
        account_id,
        float(grace),
        generate_secret(),
    )
    if row is None:
        raise endpoint_not_found(endpoint_id)
    return ENDPOINT_ROWS.from_row(row)


async def signing_secret(db: Database | Connection, account_id: uuid.UUID) -> SigningSecret:
    """The account's signing secret for task-level webhook URLs, created on first use."""
    for _ in range(2):
        row = await db.fetchrow(
            f"""
            WITH created AS (
                INSERT INTO webhook_signing_secrets (id, account_id, secret) VALUES ($1, $2, $3)
                ON CONFLICT (account_id) DO NOTHING
                RETURNING {SIGNING_SECRET_ROWS.columns}
            )
            SELECT * FROM created
            UNION ALL
            SELECT {SIGNING_SECRET_ROWS.columns} FROM webhook_signing_secrets WHERE account_id = $2
            LIMIT 1
            """,
            uuid7(),
            account_id,
            generate_secret(),
        )
        if row is not None:
            return SIGNING_SECRET_ROWS.from_row(row)
    # Both reads lost a race with a concurrent creation that committed in between: read it now.
    row = await db.fetchrow(
        f"SELECT {SIGNING_SECRET_ROWS.columns} FROM webhook_signing_secrets WHERE account_id = $1", account_id
    )
    assert row is not None
    return SIGNING_SECRET_ROWS.from_row(row)


async def rotate_signing_secret(db: Database, account_id: uuid.UUID, *, grace_s: int | None = None) -> SigningSecret:
    grace = check_grace(grace_s)
    await signing_secret(db, account_id)  # make sure there is one to rotate
    row = await db.fetchrow(
        f"""
        UPDATE webhook_signing_secrets
        SET previous_secret = secret, previous_secret_expires_at = now() + make_interval(secs => $2),
            secret = $3, secret_rotated_at = now()
        WHERE account_id = $1
        RETURNING {SIGNING_SECRET_ROWS.columns}
        """,
        account_id,
        float(grace),
        generate_secret(),
    )
    assert row is not None
    return SIGNING_SECRET_ROWS.from_row(row)
