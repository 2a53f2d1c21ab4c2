"""Jinja filters of the website: credits, money and dates, the way people read them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from jinja2 import Environment

from shared.ledger.money import MICRO, Credits

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"}


def credits(value: Any, places: int = 2) -> str:
    """A credit amount (``Credits``, or a decimal number of credits) with at least ``places`` decimals and more
    only when they matter: 24.7 -> "24.70", 0.0003 -> "0.0003"."""
    if value is None:
        return "—"
    amount = Decimal(value.micro) / MICRO if isinstance(value, Credits) else Decimal(str(value))
    text = f"{amount:,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(places, '0')}" if places or frac else whole


def money(amount: int | None, currency: str | None) -> str:
    """An amount in the currency's minor unit: (500, "usd") -> "$5.00"; (500, "jpy") -> "¥500" style."""
    if amount is None or currency is None:
        return "—"
    code = currency.lower()
    value = Decimal(amount) if code in ZERO_DECIMAL else Decimal(amount) / 100
    text = f"{value:,.0f}" if code in ZERO_DECIMAL else f"{value:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code.upper()}"


def when(value: Any) -> str:
    """A timestamp (datetime or ISO 8601 string) as "2026-11-22 00:30 UTC"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def register(env: Environment) -> None:
    env.filters.update(credits=credits, money=money, when=when)
