"""Appeals: the owner of a suspended account can still open a support ticket about the suspension (with the API
key of the account, or a website session opened before the suspension: both refuse everything else, and a
suspended account cannot sign in anew)."""

from __future__ import annotations

import msgspec

from shared.accounts.keys import Principal
from shared.infra.db import Database
from shared.infra.errors import Conflict
from shared.infra.storage import LocalStorage
from shared.support.settings import SupportSettings
from shared.support.tickets import create_ticket

APPEAL_SUBJECT = "Appeal: account suspension"


class AppealBody(msgspec.Struct, forbid_unknown_fields=True):
    message: str


class AppealTicket(msgspec.Struct):
    """The support ticket the appeal opened (its replies are mailed to the account's address)."""

    id: str
    object: str
    subject: str
    category: str
    status: str


async def open_appeal(
    db: Database, storage: LocalStorage, settings: SupportSettings, principal: Principal, message: str
) -> AppealTicket:
    """Open a ticket in the ``account`` category, quoting the suspension's reason for staff."""
    row = await db.fetchrow("SELECT status, suspension_reason FROM accounts WHERE id = $1", principal.account_id)
    if row is None or row["status"] != "suspended":
        raise Conflict("this account is not suspended: open a support ticket instead", code="account_not_suspended")
    body = f"{message}\n\n(The suspension said: {row['suspension_reason'] or 'no reason given'})"
    ticket = await create_ticket(
        db, storage, settings, principal.account_id, subject=APPEAL_SUBJECT, category="account", body=body, uploads=[]
    )
    return AppealTicket(id=ticket.id, object="support_ticket", subject=ticket.subject, category=ticket.category,
                        status=ticket.status)  # fmt: skip
