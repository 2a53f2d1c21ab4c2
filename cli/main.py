"""``conduit``: the operator command line and the entry point of every process.

    conduit run                      the whole platform for development (embedded servers, API, worker)
    conduit web | worker | migrate   the Procfile processes
    conduit accounts create ...      operator actions
    conduit ledger check             verify the money invariants against a live database
    conduit services start|stop|status   the embedded PostgreSQL and Redis

When DATABASE_URL / REDIS_URL are unset, commands use the embedded servers under CONDUIT_DATA_DIR
(default ``.conduit/dev``), starting them if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from cli.embedded import EmbeddedError, EmbeddedServices
from cli.operating import add_operating_commands
from shared.settings import Settings, SettingsError


class Connections:
    """Resolves DATABASE_URL / REDIS_URL, starting embedded servers when they are unset."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedServices | None = None
        self.started: list[str] = []

    def __enter__(self) -> Settings:
        s = self.settings
        if s.database_url and s.redis_url:
            return s
        self.embedded = EmbeddedServices(s.data_dir)
        self.started = self.embedded.start(need_postgres=not s.database_url, need_redis=not s.redis_url)
        urls = self.embedded.urls
        return s.with_connections(s.database_url or urls.database_url, s.redis_url or urls.redis_url)

    def __exit__(self, *exc: object) -> None:
        if self.embedded is not None and self.started:
            self.embedded.stop(self.started)

    def keep_running(self) -> None:
        """Leave servers this command started running (used by commands that hand them to children)."""
        self.started = []


def _setup_logging(settings: Settings, process: str = "conduit") -> None:
    from shared.logs import configure_logging

    configure_logging(settings.log_level, fmt=settings.operating.log_format, process=process)


def _run(coro_fn: Callable[[Settings], Coroutine[Any, Any, int]], settings: Settings) -> int:
    with Connections(settings) as resolved:
        return asyncio.run(coro_fn(resolved))


# -- processes --------------------------------------------------------------------------------------------


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    port = args.port if args.port is not None else settings.port
    with Connections(settings) as resolved:
        _setup_logging(resolved, "web")
        uvicorn.run(
            create_app(resolved),
            host=args.host or resolved.host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=resolved.log_level.lower(),
            log_config=None,  # keep our handlers (JSON lines with request ids)
            proxy_headers=True,
            server_header=False,
        )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.main import create_worker

    with Connections(settings) as resolved:
        _setup_logging(resolved, "worker")
        import uvloop  # the API runs on uvloop too (uvicorn); asyncio's own loop costs ~30% more CPU per job

        asyncio.set_event_loop(uvloop.new_event_loop())
        worker = create_worker(resolved)
        worker.run()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from shared.db.migrate import apply_migrations

    async def go(resolved: Settings) -> int:
        database_url, _ = resolved.require_connections()
        await apply_migrations(database_url, quiet=False)
        return 0

    return _run(go, settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.devserver import run_platform

    return run_platform(settings, port=args.port)


# -- operator actions -------------------------------------------------------------------------------------


def cmd_accounts_create(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.service import create_account
    from shared.db import Database
    from shared.db.migrate import apply_migrations
    from shared.money import parse_credits

    credits = parse_credits(args.credits)

    async def go(resolved: Settings) -> int:
        database_url, _ = resolved.require_connections()
        await apply_migrations(database_url)
        db = await Database.connect(resolved, min_size=1, max_size=2)
        try:
            created = await create_account(db, email=args.email, credits=credits, role=args.role)
        finally:
            await db.close()
        print(
            json.dumps(
                {
                    "account_id": str(created.account_id),
                    "email": created.email,
                    "api_key": created.api_key.secret,
                    "credits": args.credits,
                },
                indent=2,
            )
        )
        return 0

    return _run(go, settings)


def cmd_ledger_check(args: argparse.Namespace, settings: Settings) -> int:
    from shared.db import Database
    from shared.invariants import check_ledger

    async def go(resolved: Settings) -> int:
        db = await Database.connect(resolved, min_size=1, max_size=2)
        try:
            problems = await check_ledger(db)
        finally:
            await db.close()
        print(json.dumps({"ok": not problems, "problems": problems}, indent=2, default=str))
        return 0 if not problems else 1

    return _run(go, settings)


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    embedded = EmbeddedServices(settings.data_dir)
    if args.action == "start":
        started = embedded.start()
        print(json.dumps({"started": started, **embedded.urls.__dict__}, indent=2))
    elif args.action == "stop":
        embedded.stop()
        print(json.dumps({"stopped": True}))
    else:
        print(
            json.dumps(
                {
                    "postgres": embedded.postgres_running(),
                    "redis": embedded.redis_running(),
                    **embedded.urls.__dict__,
                },
                indent=2,
            )
        )
    return 0


# -- accounts: suspension and promotional codes (issue 5) ---------------------------------------------------


def _with_services(settings: Settings, action: Callable[[Any], Coroutine[Any, Any, Any]]) -> int:
    """Run ``action(services)`` against the database and Redis (applying migrations first); print its JSON."""
    from shared.db.migrate import apply_migrations
    from shared.metrics.store import flush
    from shared.services import Services

    async def go(resolved: Settings) -> int:
        database_url, _ = resolved.require_connections()
        await apply_migrations(database_url)
        services = await Services.start(resolved, db_pool_max=2)
        try:
            result = await action(services)
        finally:
            await flush(services.redis)  # metrics (issue 9): e.g. credits an operator granted
            await services.close()
        print(json.dumps(result, indent=2, default=str))
        return 0

    return _run(go, settings)


def cmd_accounts_suspend(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.erasure import suspend

    suspended = args.action == "suspend"

    async def action(services: Any) -> dict[str, Any]:
        account_id = await suspend(services.db, services.redis, args.account, suspended=suspended)
        return {"account_id": str(account_id), "status": "suspended" if suspended else "active"}

    return _with_services(settings, action)


def _parse_when(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise SettingsError(f"not an ISO 8601 date or time: {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def cmd_promo_create(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import create_promo_code
    from shared.money import parse_credits

    credits = parse_credits(args.credits)
    expires_at = _parse_when(args.expires_at) if args.expires_at else None
    if args.expires_in_days is not None:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_in_days)

    async def action(services: Any) -> dict[str, Any]:
        promo = await create_promo_code(
            services.db,
            credits=credits,
            code=args.code,
            expires_at=expires_at,
            credit_validity_days=args.credit_validity_days,
            max_redemptions=args.max_redemptions,
            description=args.description,
        )
        return promo.summary()

    return _with_services(settings, action)


def cmd_promo_list(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import list_promo_codes

    async def action(services: Any) -> list[dict[str, Any]]:
        return [promo.summary() for promo in await list_promo_codes(services.db)]

    return _with_services(settings, action)


def cmd_promo_disable(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import disable_promo_code

    async def action(services: Any) -> dict[str, Any]:
        return (await disable_promo_code(services.db, args.code)).summary()

    return _with_services(settings, action)


def add_account_commands(accounts: Any, sub: Any) -> None:
    for name, text in (
        ("suspend", "suspend an account: its keys and sessions stop working"),
        ("unsuspend", "reinstate it"),
    ):
        command = accounts.add_parser(name, help=text)
        command.add_argument("account", help="account id or email")
        command.set_defaults(handler=cmd_accounts_suspend)

    promo = sub.add_parser("promo", help="promotional codes").add_subparsers(dest="action", required=True)
    create = promo.add_parser("create", help="create a code that grants credits to each account that claims it")
    create.add_argument("--credits", required=True, help="credits granted per claim, e.g. 10 or 2.5")
    create.add_argument("--code", default=None, help="the code (letters, digits, - and _); generated if omitted")
    create.add_argument("--expires-at", default=None, help="last moment the code can be claimed (ISO 8601)")
    create.add_argument("--expires-in-days", type=int, default=None, help="or: claimable for this many days")
    create.add_argument("--credit-validity-days", type=int, default=None, help="the granted credits expire after")
    create.add_argument("--max-redemptions", type=int, default=None, help="how many accounts may claim it")
    create.add_argument("--description", default="")
    create.set_defaults(handler=cmd_promo_create)
    promo.add_parser("list", help="list codes and their redemptions").set_defaults(handler=cmd_promo_list)
    disable = promo.add_parser("disable", help="stop a code from being claimed")
    disable.add_argument("code")
    disable.set_defaults(handler=cmd_promo_disable)


# -- rate limits and support staff (issue 8) ----------------------------------------------------------------


def _limit_value(raw: str | None) -> Any:
    from shared.accounts.key_management import UNSET

    if raw is None:
        return UNSET
    if raw.strip().lower() == "default":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"expected a positive integer or 'default', got {raw!r}") from None


def cmd_accounts_limits(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.erasure import find_account
    from shared.request_limits import set_account_limits

    rpm, inflight = _limit_value(args.rpm), _limit_value(args.max_inflight)

    async def action(services: Any) -> dict[str, Any]:
        account_id = await find_account(services.db, args.account)
        limits = await set_account_limits(services.db, services.redis, account_id, rpm=rpm, max_inflight=inflight)
        defaults = services.settings.rate_limits
        return {
            "account_id": str(account_id),
            **limits,
            "defaults": {
                "rate_limit_rpm": defaults.rpm_per_account,
                "max_inflight_tasks": defaults.inflight_per_account,
            },
        }

    return _with_services(settings, action)


def cmd_accounts_role(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.erasure import find_account
    from shared.accounts.keys import publish_invalidation

    async def action(services: Any) -> dict[str, Any]:
        account_id = await find_account(services.db, args.account)
        await services.db.execute(
            "UPDATE accounts SET role = $2, updated_at = now() WHERE id = $1", account_id, args.role
        )
        await publish_invalidation(services.redis, f"account:{account_id}")
        return {"account_id": str(account_id), "role": args.role}

    return _with_services(settings, action)


def add_issue8_commands(accounts: Any) -> None:
    limits = accounts.add_parser("limits", help="show or set an account's own rate limits")
    limits.add_argument("account", help="account id or email")
    limits.add_argument("--rpm", default=None, help="requests per minute, or 'default'")
    limits.add_argument("--max-inflight", default=None, help="tasks in flight at once, or 'default'")
    limits.set_defaults(handler=cmd_accounts_limits)
    role = accounts.add_parser("role", help="set an account's role (support staff answer tickets)")
    role.add_argument("account", help="account id or email")
    role.add_argument("role", choices=["user", "support", "admin"])
    role.set_defaults(handler=cmd_accounts_role)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Conduit: many AI models behind one API.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole platform locally (embedded PostgreSQL and Redis, API, worker)")
    run.add_argument("--port", type=int, default=None)
    run.set_defaults(handler=cmd_run)

    web = sub.add_parser("web", help="serve the API on $PORT")
    web.add_argument("--port", type=int, default=None)
    web.add_argument("--host", default=None)
    web.set_defaults(handler=cmd_web)

    sub.add_parser("worker", help="run an arq worker").set_defaults(handler=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)

    accounts = sub.add_parser("accounts", help="manage accounts").add_subparsers(dest="action", required=True)
    create = accounts.add_parser("create", help="create an account with credits and print an API key")
    create.add_argument("--email", required=True)
    create.add_argument("--credits", default="0", help="credits to grant, e.g. 100 or 2.5")
    create.add_argument("--role", default="user", choices=["user", "support", "admin"])
    create.set_defaults(handler=cmd_accounts_create)
    add_account_commands(accounts, sub)
    add_issue8_commands(accounts)
    add_operating_commands(sub)  # issue 9: conduit admin …, conduit workers

    ledger = sub.add_parser("ledger", help="ledger tools").add_subparsers(dest="action", required=True)
    ledger.add_parser("check", help="verify the money invariants").set_defaults(handler=cmd_ledger_check)

    services = sub.add_parser("services", help="the embedded PostgreSQL and Redis (development)")
    services.add_argument("action", choices=["start", "stop", "status"])
    services.set_defaults(handler=cmd_services)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.errors import ConduitError
    from shared.money import CreditsFormatError

    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings) or 0)
    except (SettingsError, EmbeddedError, CreditsFormatError) as exc:
        print(f"conduit: {exc}", file=sys.stderr)
        return 2
    except ConduitError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    logging.captureWarnings(True)
    sys.exit(main())
