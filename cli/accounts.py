"""``conduit accounts …`` and ``conduit promo …``: operator actions on accounts (create, suspend, limits, role)
and promotional codes."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import msgspec

from cli.connections import as_json, run_with_connections, run_with_services
from shared.accounts import ROLES
from shared.settings import Settings, SettingsError


def cmd_accounts_create(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.service import create_account
    from shared.infra.db import Database
    from shared.infra.db.migrate import apply_migrations
    from shared.ledger.money import Credits, parse_credits
    from shared.staff import Actor, audit

    credits = parse_credits(args.credits)

    async def go(resolved: Settings) -> int:
        await apply_migrations(resolved.direct_database_url)
        db = await Database.connect(resolved, min_size=1, max_size=2)
        try:
            created = await create_account(db, email=args.email, credits=credits, role=args.role)
            after = {"email": created.email, "role": args.role, "credits": args.credits}
            await audit.record(db, Actor.cli(), "account.create", "account", created.account_id, after=after)
        finally:
            await db.close()
        print(
            as_json(
                {
                    "account_id": str(created.account_id),
                    "email": created.email,
                    "api_key": created.api_key.secret,
                    "credits": Credits(credits),
                }
            )
        )
        return 0

    return run_with_connections(go, settings)


def cmd_accounts_suspend(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.standing import set_suspended
    from shared.staff import Actor

    suspended = args.action == "suspend"

    async def action(services: Any) -> Any:
        return await set_suspended(
            services.db, services.redis, args.account, suspended=suspended, actor=Actor.cli(), reason=args.reason
        )

    return run_with_services(settings, action)


def _parse_when(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise SettingsError(f"not an ISO 8601 date or time: {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def cmd_promo_create(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import create_promo_code
    from shared.ledger.money import parse_credits
    from shared.staff import Actor, audit

    credits = parse_credits(args.credits)
    expires_at = _parse_when(args.expires_at) if args.expires_at else None
    if args.expires_in_days is not None:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_in_days)

    async def action(services: Any) -> Any:
        promo = await create_promo_code(
            services.db,
            credits=credits,
            code=args.code,
            expires_at=expires_at,
            credit_validity_days=args.credit_validity_days,
            max_redemptions=args.max_redemptions,
            description=args.description,
        )
        await audit.record(services.db, Actor.cli(), "promo.create", "promo_code", promo.code, after=promo.summary())
        return promo.summary()

    return run_with_services(settings, action)


def cmd_promo_list(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import list_promo_codes

    async def action(services: Any) -> Any:
        return [promo.summary() for promo in await list_promo_codes(services.db)]

    return run_with_services(settings, action)


def cmd_promo_disable(args: argparse.Namespace, settings: Settings) -> int:
    from shared.accounts.rewards import disable_promo_code
    from shared.staff import Actor, audit

    async def action(services: Any) -> Any:
        summary = (await disable_promo_code(services.db, args.code)).summary()
        await audit.record(services.db, Actor.cli(), "promo.disable", "promo_code", args.code, after=summary)
        return summary

    return run_with_services(settings, action)


def add_account_commands(accounts: Any, sub: Any) -> None:
    for name, text in (
        ("suspend", "suspend an account: its keys and sessions stop working"),
        ("unsuspend", "reinstate it"),
    ):
        command = accounts.add_parser(name, help=text)
        command.add_argument("account", help="account id or email")
        command.add_argument(
            "--reason", required=name == "suspend", default="", help="shown to the account's owner; audited"
        )
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
    from shared.admin.standing import change_limits
    from shared.staff import Actor

    rpm, inflight = _limit_value(args.rpm), _limit_value(args.max_inflight)

    async def action(services: Any) -> Any:
        limits = await change_limits(
            services.db, services.redis, args.account, actor=Actor.cli(), rpm=rpm, max_inflight=inflight
        )
        defaults = services.settings.rate_limits
        return {
            **msgspec.structs.asdict(limits),
            "defaults": {
                "rate_limit_rpm": defaults.rpm_per_account,
                "max_inflight_tasks": defaults.inflight_per_account,
            },
        }

    return run_with_services(settings, action)


def cmd_accounts_role(args: argparse.Namespace, settings: Settings) -> int:
    from shared.admin.standing import set_role
    from shared.staff import Actor

    role: str = getattr(args, "role", None) or "user"  # ``conduit staff revoke`` names no role: back to user

    async def action(services: Any) -> Any:
        return await set_role(services.db, services.redis, args.account, role, actor=Actor.cli())

    return run_with_services(settings, action)


def add_limit_and_role_commands(accounts: Any) -> None:
    limits = accounts.add_parser("limits", help="show or set an account's own rate limits")
    limits.add_argument("account", help="account id or email")
    limits.add_argument("--rpm", default=None, help="requests per minute, or 'default'")
    limits.add_argument("--max-inflight", default=None, help="tasks in flight at once, or 'default'")
    limits.set_defaults(handler=cmd_accounts_limits)
    role = accounts.add_parser("role", help="set an account's role (support staff answer tickets)")
    role.add_argument("account", help="account id or email")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(handler=cmd_accounts_role)


def add_staff_commands(sub: Any) -> None:
    """``conduit staff grant EMAIL --role support|admin``, ``conduit staff revoke EMAIL``, ``conduit staff list``."""
    staff = sub.add_parser("staff", help="staff roles (support, admin)").add_subparsers(dest="action", required=True)
    grant = staff.add_parser("grant", help="give an account a staff role (it must sign in with a second factor)")
    grant.add_argument("account", help="account id or email")
    grant.add_argument("--role", required=True, choices=["support", "admin"])
    grant.set_defaults(handler=cmd_accounts_role)
    revoke = staff.add_parser("revoke", help="take the staff role back (the account becomes a user)")
    revoke.add_argument("account", help="account id or email")
    revoke.set_defaults(handler=cmd_accounts_role)
    staff.add_parser("list", help="every staff account").set_defaults(handler=cmd_staff_list)


def cmd_staff_list(args: argparse.Namespace, settings: Settings) -> int:
    async def action(services: Any) -> list[dict[str, Any]]:
        rows = await services.db.fetch(
            """
            SELECT id, email, role, status, totp_enabled_at IS NOT NULL AS second_factor FROM accounts
            WHERE role IN ('support', 'admin') ORDER BY email
            """
        )
        return [{**dict(row), "id": str(row["id"])} for row in rows]

    return run_with_services(settings, action)
