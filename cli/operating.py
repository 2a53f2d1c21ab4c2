"""Operator commands: the admin API's actions from a shell, and worker liveness.

    conduit admin accounts search [QUERY] [--status S] [--role R]
    conduit admin accounts show ACCOUNT
    conduit admin credits ACCOUNT AMOUNT --reason TEXT [--operation-id ID]   (negative AMOUNT deducts)
    conduit admin keys revoke KEY_ID
    conduit admin tasks show|fail|retry TASK_ID [--reason TEXT]
    conduit admin providers
    conduit admin audit [--action A] [--target-id ID] [--csv]
    conduit staff grant EMAIL --role support|admin | revoke EMAIL | list
    conduit workers [--check] [--host HOST]

(Suspension and promotional codes: ``conduit accounts suspend|unsuspend``, ``conduit promo …``.) Every action is
written to the staff audit log as ``cli:<user>@<host>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from typing import Any

from cli.connections import Connections, run_with_services
from shared.accounts import ROLES
from shared.settings import Settings
from shared.staff import Actor


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.accounts import search_accounts

    async def action(services: Any) -> Any:
        page = await search_accounts(
            services.db, query=args.query, status=args.status, role=args.role, limit=args.limit, after=args.after
        )
        return {"data": page.items, "has_more": page.has_more, "next_cursor": page.next_cursor}

    return run_with_services(settings, action)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.accounts import account_detail

    async def action(services: Any) -> Any:
        return await account_detail(services.db, args.account)

    return run_with_services(settings, action)


def cmd_credits(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.accounts import adjust_credits
    from shared.ledger.money import parse_credits

    amount = parse_credits(args.amount)

    async def action(services: Any) -> Any:
        return await adjust_credits(
            services.db,
            args.account,
            amount=amount,
            reason=args.reason,
            actor=Actor.cli(),
            operation_id=args.operation_id,
        )

    return run_with_services(settings, action)


def cmd_revoke_key(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.accounts import revoke_any_key

    async def action(services: Any) -> Any:
        return await revoke_any_key(services.db, services.redis, args.key_id, actor=Actor.cli(), reason=args.reason)

    return run_with_services(settings, action)


def cmd_task(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin import tasks

    async def action(services: Any) -> Any:
        if args.task_action == "fail":
            return await tasks.fail_task(
                services.db, services.queue, services.signer, args.task_id, reason=args.reason, actor=Actor.cli(),
                slots=services.request_limits.slots, events=services.events,
            )  # fmt: skip
        if args.task_action == "retry":
            return await tasks.retry_task(
                services.db, services.queue, services.signer, args.task_id, actor=Actor.cli(), reason=args.reason
            )
        return await tasks.view_task(services.db, services.signer, args.task_id)

    return run_with_services(settings, action)


def cmd_providers(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.providers import provider_health

    async def action(services: Any) -> Any:
        return await provider_health(services.db, services.providers)

    return run_with_services(settings, action)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """The staff audit log: the newest entries as JSON, or (``--csv``) all of them as CSV on stdout."""
    import datetime as dt
    import sys

    import msgspec

    from cli.connections import run_with_connections
    from shared.infra.db import Database
    from shared.staff import audit

    filters = audit.AuditFilters(args.target_type, args.target_id, args.actor, args.action)

    async def go(resolved: Settings) -> int:
        db = await Database.connect(resolved, min_size=1, max_size=2)
        try:
            if args.csv:
                async for line in audit.csv_lines(db, filters):
                    sys.stdout.write(line)
                return 0
            page = await audit.entries(db, filters, limit=args.limit)
        finally:
            await db.close()
        shown = [msgspec.to_builtins(entry.public(), builtin_types=(dt.datetime,)) for entry in page.items]
        print(json.dumps(shown, indent=2, default=str))
        return 0

    return run_with_connections(go, settings)


def cmd_workers(args: argparse.Namespace, settings: Settings) -> int:
    """Live worker processes (a heartbeat within the last 2 beats). ``--check``: exit 1 when none is alive
    (on ``--host``, e.g. ``$(hostname)`` in a container's liveness probe)."""
    from shared.infra.queue import close_redis, connect_redis
    from worker.heartbeat import live_workers

    async def go(redis_url: str) -> list[dict[str, Any]]:
        redis = await connect_redis(redis_url, settings.deployment.sentinel)
        try:
            return await live_workers(redis)
        finally:
            await close_redis(redis)

    with Connections(settings) as resolved:
        _, redis_url = resolved.require_connections()
        workers = asyncio.run(go(redis_url))
    if args.host:
        workers = [w for w in workers if w["host"] == args.host]
    print(json.dumps({"alive": len(workers), "workers": workers}, indent=2))
    return 0 if workers or not args.check else 1


def add_operating_commands(sub: Any) -> None:
    admin = sub.add_parser("admin", help="operator actions (the admin API's)").add_subparsers(
        dest="admin_action", required=True
    )
    accounts = admin.add_parser("accounts", help="find and inspect accounts").add_subparsers(
        dest="accounts_action", required=True
    )
    search = accounts.add_parser("search", help="accounts by id, key prefix or part of an email; newest first")
    search.add_argument("query", nargs="?", default=None)
    search.add_argument("--status", choices=["active", "suspended", "deleted"], default=None)
    search.add_argument("--role", choices=ROLES, default=None)
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--after", default=None, help="next_cursor of the previous page")
    search.set_defaults(handler=cmd_search)
    show = accounts.add_parser("show", help="an account with its keys and task counts")
    show.add_argument("account", help="account id or email")
    show.set_defaults(handler=cmd_show)

    credits = admin.add_parser("credits", help="grant (positive) or deduct (negative) credits, with a reason")
    credits.add_argument("account", help="account id or email")
    credits.add_argument("amount", help="credits, e.g. 10 or -2.5")
    credits.add_argument("--reason", required=True, help="written in the ledger")
    credits.add_argument("--operation-id", default=None, help="repeating an operation id applies it once")
    credits.set_defaults(handler=cmd_credits)

    keys = admin.add_parser("keys", help="API keys of any account").add_subparsers(dest="keys_action", required=True)
    revoke = keys.add_parser("revoke", help="revoke a key (it stops working at once)")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason", default="", help="kept in the staff audit log")
    revoke.set_defaults(handler=cmd_revoke_key)

    tasks = admin.add_parser("tasks", help="any account's tasks")
    tasks.add_argument("task_action", choices=["show", "fail", "retry"])
    tasks.add_argument("task_id")
    tasks.add_argument("--reason", default="", help="kept in the staff audit log; for fail, also in the task's error")
    tasks.set_defaults(handler=cmd_task)

    admin.add_parser("providers", help="provider health: credentials, circuits, last hour").set_defaults(
        handler=cmd_providers
    )

    audit = admin.add_parser("audit", help="the staff audit log (newest first; --csv: everything, oldest first)")
    audit.add_argument("--action", default=None, help="an action or its prefix, e.g. credits.")
    audit.add_argument("--target-type", default=None, help="account, task, ticket, provider, order, …")
    audit.add_argument("--target-id", default=None)
    audit.add_argument("--actor", default=None, help="part of the staff member's address")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--csv", action="store_true")
    audit.set_defaults(handler=cmd_audit)

    workers = sub.add_parser("workers", help="live worker processes (for orchestration probes: --check)")
    workers.add_argument("--check", action="store_true", help="exit 1 when no worker is alive")
    workers.add_argument("--host", default=None, help=f"only workers on this host (e.g. {socket.gethostname()})")
    workers.set_defaults(handler=cmd_workers)
