"""The staff audit log: every staff action is in it with who, role, what, target, reason, before and after,
IP and channel; refused attempts of staff too; nobody can change it, not even with SQL; it exports as CSV;
the command line writes to it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from decimal import Decimal

import asyncpg
import httpx
import pytest

from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.helpers import balance
from tests.integration.operating.test_platform import conduit
from tests.integration.staff.conftest import SessionFactory


async def _entries(services: Services, target_id: object) -> list[asyncpg.Record]:
    return await services.db.fetch("SELECT * FROM staff_audit_log WHERE target_id = $1 ORDER BY id", str(target_id))


async def test_grants_are_audited_and_support_staff_are_refused_and_logged(
    client: httpx.AsyncClient, signed_in: SessionFactory, services: Services, make_account: AccountFactory
) -> None:
    customer = await make_account(credits="2")
    support_account, support = await signed_in("support")
    admin_account, admin = await signed_in("admin")
    path = f"/v1/admin/accounts/{customer.id}/credits"

    refused = await support.post(path, json={"amount": 50, "reason": "I want to help"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
    assert await balance(client, customer) == (Decimal("2"), Decimal("0"))
    [attempt] = await services.db.fetch(
        "SELECT * FROM staff_audit_log WHERE actor_id = $1 AND outcome = 'refused'", support_account.id
    )
    assert attempt["actor"] == support_account.email and attempt["role"] == "support"
    assert attempt["action"] == "refused.adjust_credits" and attempt["via"] == "console"
    assert attempt["target_id"] == f"POST {path}" and attempt["ip"] == "127.0.0.1"

    granted = await admin.post(path, json={"amount": 5, "reason": "outage on 3 May"})
    assert granted.status_code == 200, granted.text
    [entry] = await _entries(services, customer.id)
    assert (entry["actor"], entry["role"], entry["action"], entry["reason"], entry["via"]) == (
        admin_account.email,
        "admin",
        "credits.grant",
        "outage on 3 May",
        "console",
    )
    assert json.loads(entry["before"])["available"] == "2" and json.loads(entry["after"])["available"] == "7"
    ledger = (await client.get("/v1/account/ledger", headers=customer.headers)).json()["data"]
    assert any(e["type"] == "grant" and e["description"].startswith("outage on 3 May") for e in ledger)

    # The same through the admin API with a key: "api".
    await client.post(path, json={"amount": -1, "reason": "clawback"}, headers=admin_account.headers)
    assert [(e["action"], e["via"]) for e in await _entries(services, customer.id)][-1] == ("credits.deduct", "api")

    # A session without its second factor reaches no staff route, and the attempt is logged.
    _, half = await signed_in("admin", second_factor=False)
    blocked = await half.post(path, json={"amount": 1, "reason": "x"})
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "second_factor_required"
    assert (await support.get("/v1/staff/tickets")).status_code == 200
    assert (await half.get("/v1/staff/tickets")).json()["error"]["code"] == "second_factor_required"


async def test_nobody_can_change_the_log_and_it_exports_as_csv(
    client: httpx.AsyncClient, signed_in: SessionFactory, services: Services, make_account: AccountFactory
) -> None:
    customer = await make_account(credits="1")
    admin_account, admin = await signed_in("admin")
    formula = '=HYPERLINK("http://evil")'
    assert (
        await admin.post(f"/v1/admin/accounts/{customer.id}/credits", json={"amount": 1, "reason": formula})
    ).status_code == 200
    for statement in (
        "UPDATE staff_audit_log SET reason = 'nothing happened'",
        "DELETE FROM staff_audit_log",
        "TRUNCATE staff_audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await services.db.execute(statement)
    assert len(await _entries(services, customer.id)) == 1

    export = await admin.get("/v1/admin/audit/export", params={"target_id": str(customer.id)})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 1 and rows[0]["action"] == "credits.grant" and rows[0]["actor"] == admin_account.email
    assert rows[0]["reason"] == "'" + formula  # a spreadsheet shows it, never runs it
    listed = (await admin.get("/v1/admin/audit", params={"action": "credits.", "target_id": str(customer.id)})).json()
    assert [e["action"] for e in listed["data"]] == ["credits.grant"]
    page = (await admin.get("/console/audit", params={"target_id": str(customer.id)})).text
    assert "credits.grant" in page and "/v1/admin/audit/export?target_id=" in page


async def test_the_command_line_grants_staff_roles_and_writes_the_log(
    env: dict[str, str], services: Services, make_account: AccountFactory
) -> None:
    person = await make_account()
    granted = await asyncio.to_thread(conduit, ["staff", "grant", person.email, "--role", "support"], env)
    assert granted.returncode == 0, granted.stderr
    assert await services.db.fetchval("SELECT role FROM accounts WHERE id = $1", person.id) == "support"
    listed = await asyncio.to_thread(conduit, ["staff", "list"], env)
    assert person.email in listed.stdout
    revoked = await asyncio.to_thread(conduit, ["staff", "revoke", str(person.id)], env)
    assert revoked.returncode == 0, revoked.stderr
    entries = await _entries(services, person.id)
    assert [(e["action"], e["via"], e["role"]) for e in entries] == [("staff.role", "cli", "operator")] * 2
    assert entries[0]["actor"].startswith("cli:") and json.loads(entries[1]["after"]) == {"role": "user"}
    exported = await asyncio.to_thread(conduit, ["admin", "audit", "--target-id", str(person.id), "--csv"], env)
    assert exported.returncode == 0 and exported.stdout.count("staff.role") == 2
    bad = await asyncio.to_thread(conduit, ["staff", "grant", f"{uuid.uuid4()}", "--role", "admin"], env)
    assert bad.returncode == 1 and "account_not_found" in bad.stderr
