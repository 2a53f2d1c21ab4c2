"""Ranges of single request fields, where a value outside them could not be stored or computed with.

Integers are declared on the request structs with ``msgspec.Meta`` (checked while the body is converted, and
shown in the OpenAPI document); credit amounts are decimals, which ``Meta`` cannot bound, so the routes pass
them through ``credits_within_limit`` before they are turned into micro-credits. Lower bounds and the other
rules of a field stay with the service that owns it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from shared.infra.errors import InvalidInput
from shared.ledger.money import MICRO, CreditsFormatError, parse_credits
from shared.settings import InputLimits

INTEGER_MAX = 2**31 - 1  # an INTEGER column

# a count kept in an INTEGER column (e.g. a promo code's redemptions)
IntegerCount = Annotated[int, msgspec.Meta(le=INTEGER_MAX)]
# a number of days added to today: a century at most, so that the date stays a date
Days = Annotated[int, msgspec.Meta(le=36_500)]


def credits_within_limit(value: Decimal, param: str, limits: InputLimits) -> Decimal:
    """The amount, if it is a finite number of credits within ``MAX_CREDIT_AMOUNT`` either way."""
    largest = Decimal(limits.max_credit_amount) / MICRO
    if not value.is_finite() or abs(value) > largest:
        raise InvalidInput(f"{param} must be a number of credits between -{largest} and {largest}", param=param)
    return value


def micro_credits(value: Decimal, param: str, limits: InputLimits) -> int:
    """A credit amount in micro-credits: within the limit, with at most six decimals."""
    try:
        return parse_credits(credits_within_limit(value, param, limits))
    except CreditsFormatError as exc:
        raise InvalidInput(f"{param}: {exc}", param=param) from None
