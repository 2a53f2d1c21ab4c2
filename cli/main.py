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
import json
import logging
import os
import sys

from cli.accounts import add_account_commands, add_limit_and_role_commands, add_staff_commands, cmd_accounts_create
from cli.connections import Connections, run_with_connections
from cli.embedded import EmbeddedError, EmbeddedServices
from cli.moderation import add_moderation_commands
from cli.operating import add_operating_commands
from shared.accounts import ROLES
from shared.infra.heap import settle_after_startup
from shared.settings import Settings, SettingsError


def _setup_logging(settings: Settings, process: str = "conduit") -> None:
    from shared.infra.logs import configure_logging

    configure_logging(settings.log_level, fmt=settings.operating.log_format, process=process)


# -- processes --------------------------------------------------------------------------------------------


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    port = args.port if args.port is not None else settings.port
    with Connections(settings) as resolved:
        _setup_logging(resolved, "web")
        app = create_app(resolved)
        app.on_startup.append(lambda _: settle_after_startup())  # once the services have started
        uvicorn.run(
            app,
            host=args.host or resolved.host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level=resolved.log_level.lower(),
            log_config=None,  # keep our handlers (JSON lines with request ids)
            proxy_headers=False,  # the app believes proxies itself: FORWARDED_ALLOW_IPS (api.proxies)
            server_header=False,
        )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.process import WorkerProcess

    with Connections(settings) as resolved:
        _setup_logging(resolved, "worker")
        import uvloop  # the API runs on uvloop too (uvicorn); asyncio's own loop costs ~30% more CPU per job

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(WorkerProcess(resolved).run(on_started=settle_after_startup))


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from shared.infra.db.migrate import apply_migrations

    async def go(resolved: Settings) -> int:
        await apply_migrations(resolved.direct_database_url, quiet=False)
        return 0

    return run_with_connections(go, settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cli.devserver import run_platform

    return run_platform(settings, port=args.port)


# -- operator actions -------------------------------------------------------------------------------------


def cmd_ledger_check(args: argparse.Namespace, settings: Settings) -> int:
    from shared.infra.db import Database
    from shared.ledger.invariants import check_ledger

    async def go(resolved: Settings) -> int:
        db = await Database.connect(resolved, min_size=1, max_size=2)
        try:
            problems = await check_ledger(db)
        finally:
            await db.close()
        print(json.dumps({"ok": not problems, "problems": problems}, indent=2, default=str))
        return 0 if not problems else 1

    return run_with_connections(go, settings)


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
    create.add_argument("--role", default="user", choices=ROLES)
    create.set_defaults(handler=cmd_accounts_create)
    add_account_commands(accounts, sub)
    add_limit_and_role_commands(accounts)
    add_operating_commands(sub)  # conduit admin …, conduit workers
    add_staff_commands(sub)  # conduit staff grant|revoke|list
    add_moderation_commands(sub)  # conduit moderation check

    ledger = sub.add_parser("ledger", help="ledger tools").add_subparsers(dest="action", required=True)
    ledger.add_parser("check", help="verify the money invariants").set_defaults(handler=cmd_ledger_check)

    services = sub.add_parser("services", help="the embedded PostgreSQL and Redis (development)")
    services.add_argument("action", choices=["start", "stop", "status"])
    services.set_defaults(handler=cmd_services)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.infra.errors import ConduitError
    from shared.ledger.money import CreditsFormatError
    from shared.moderation.policy import PolicyError

    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings) or 0)
    except (SettingsError, EmbeddedError, CreditsFormatError, PolicyError) as exc:
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
