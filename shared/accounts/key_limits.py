"""What an owner sets on a key, checked: its name, expiry, allowed models, spend cap, rate limits and budget per
period (with the UPDATE that sets a budget, and the budget's fields in the key's answer: ``budget``,
``budget_remaining``, ``resets_at``). The money side of caps and budgets is in ``shared.ledger.spend_caps`` and
``shared.ledger.budgets``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import msgspec

from shared.accounts.redaction import without_keys
from shared.catalog import Catalog
from shared.infra.errors import InvalidInput
from shared.ledger.budgets import PERIODS, BudgetState
from shared.ledger.money import MICRO, Credits, CreditsFormatError, parse_credits

MAX_NAME = 100
MAX_ALLOWED_MODELS = 100
MAX_SPEND_CAP = 1_000_000_000 * MICRO
MAX_BUDGET = MAX_SPEND_CAP


def check_name(name: str) -> str:
    """The name to store: trimmed, with any API key in it cut out."""
    name = name.strip()
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"name must be at most {MAX_NAME} printable characters", param="name")
    return without_keys(name)


def check_expiry(expires_at: dt.datetime | None) -> dt.datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone, e.g. 2030-01-01T00:00:00Z", param="expires_at")
    if expires_at <= dt.datetime.now(dt.UTC):
        raise InvalidInput("expires_at must be in the future", param="expires_at")
    return expires_at


def check_allowed_models(catalog: Catalog, models: list[str] | None) -> list[str] | None:
    if models is None:
        return None
    if not models or len(models) > MAX_ALLOWED_MODELS:
        raise InvalidInput(
            f"allowed_models lists 1-{MAX_ALLOWED_MODELS} model ids (or is null for every model)",
            param="allowed_models",
        )
    for index, model in enumerate(models):
        if catalog.get(model) is None:
            raise InvalidInput(
                f"unknown model {model!r}; see GET /v1/models", code="model_not_found", param=f"allowed_models[{index}]"
            )
    return sorted(set(models))


def check_spend_cap(cap: Decimal | int | None) -> int | None:
    if cap is None:
        return None
    try:
        micro = parse_credits(cap)
    except CreditsFormatError as exc:
        raise InvalidInput(f"spend_cap: {exc}", param="spend_cap") from None
    if not 0 <= micro <= MAX_SPEND_CAP:
        raise InvalidInput("spend_cap must be between 0 and 1000000000 credits", param="spend_cap")
    return micro


MAX_LIMIT_OVERRIDE = 1_000_000


def check_limit_override(value: int | None, param: str) -> int | None:
    """A key's or account's own rate limit: a positive integer, or None for the default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT_OVERRIDE:
        raise InvalidInput(f"{param} must be an integer from 1 to {MAX_LIMIT_OVERRIDE}, or null", param=param)
    return value


class Budget(msgspec.Struct):
    """A period budget as its owner sees it: ``amount`` credits per ``period``, ``spent`` and ``reserved`` (held
    by requests still running) in the current period."""

    amount: Credits
    period: str
    reset: Literal["calendar", "rolling"]
    spent: Credits
    reserved: Credits


def budget_view(state: BudgetState | None) -> Budget | None:
    if state is None:
        return None
    return Budget(
        amount=Credits(state.budget.amount),
        period=state.budget.period,
        reset="rolling" if state.budget.rolling else "calendar",
        spent=Credits(state.spent),
        reserved=Credits(state.reserved),
    )


def budget_fields(state: BudgetState | None) -> dict[str, Any]:
    """``budget``, ``budget_remaining`` and ``resets_at`` of a key's or member's view."""
    if state is None:
        return {"budget": None, "budget_remaining": None, "resets_at": None}
    return {"budget": budget_view(state), "budget_remaining": Credits(state.remaining), "resets_at": state.resets_at}


@dataclass(frozen=True, slots=True)
class BudgetInput:
    """A budget as an owner sets it: ``amount`` credits per ``period``, on the UTC calendar or ``rolling``."""

    amount: Decimal | int
    period: str
    reset: str = "calendar"


def check_budget(budget: BudgetInput | None) -> tuple[int, str, bool] | None:
    if budget is None:
        return None
    if budget.period not in PERIODS:
        raise InvalidInput(f"budget.period must be one of {', '.join(PERIODS)}", param="budget.period")
    if budget.reset not in ("calendar", "rolling"):
        raise InvalidInput("budget.reset must be calendar or rolling", param="budget.reset")
    try:
        micro = parse_credits(budget.amount)
    except CreditsFormatError as exc:
        raise InvalidInput(f"budget.amount: {exc}", param="budget.amount") from None
    if not 0 <= micro <= MAX_BUDGET:
        raise InvalidInput("budget.amount must be between 0 and 1000000000 credits", param="budget.amount")
    return micro, budget.period, budget.reset == "rolling"


# A budget set: a new period or reset starts counting afresh from now (the anchor of rolling periods); a new
# amount on the same period keeps what the period spent. Pending holds keep their reservations.
SET_BUDGET = """
    budget = ${amount}, budget_period = ${period}::text, budget_rolling = ${rolling},
    budget_anchor = CASE WHEN budget_period IS DISTINCT FROM ${period}::text OR budget_rolling <> ${rolling}
                         OR budget_anchor IS NULL THEN now() ELSE budget_anchor END,
    budget_spent = CASE WHEN budget_period IS DISTINCT FROM ${period}::text OR budget_rolling <> ${rolling}
                        THEN 0 ELSE budget_spent END,
    budget_period_start = CASE WHEN budget_period IS DISTINCT FROM ${period}::text OR budget_rolling <> ${rolling}
                               THEN NULL ELSE budget_period_start END
"""
# A budget removed: nothing is counted any more (pending holds keep their reservations until they resolve)
CLEAR_BUDGET = "budget = NULL, budget_period = NULL, budget_anchor = NULL, budget_period_start = NULL, budget_spent = 0"
