"""Credits are integers in micro-credits (1 credit = 1,000,000) everywhere but at the edges.

``parse_credits`` turns what a person typed ("25", "0.3", 12) into micro-credits exactly (no floats);
``Credits`` is what responses carry so the JSON shows a decimal number such as ``24.7``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

import msgspec

MICRO = 1_000_000
MAX_MICRO = 2**63 - 1  # the database stores micro-credits as bigint


class CreditsFormatError(ValueError):
    pass


def parse_credits(value: str | int | Decimal) -> int:
    """Exact conversion of a decimal amount of credits to micro-credits (at most 6 decimal places)."""
    if isinstance(value, bool | float):
        raise CreditsFormatError("credits must be given as an integer or a decimal string, not a float")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise CreditsFormatError(f"not a number: {value!r}") from exc
    if not amount.is_finite():
        raise CreditsFormatError(f"not a finite number: {value!r}")
    if amount.adjusted() > 18:  # before multiplying: "1e999999" would overflow the decimal context
        raise CreditsFormatError(f"too large: {value!r}")
    micro = amount * MICRO
    if micro != micro.to_integral_value():
        raise CreditsFormatError(f"at most 6 decimal places are allowed: {value!r}")
    if abs(micro) > MAX_MICRO:
        raise CreditsFormatError(f"too large: {value!r}")
    return int(micro)


def micro_to_decimal(micro: int) -> Decimal:
    return (Decimal(micro) / MICRO).normalize() if micro else Decimal(0)


def ceil_micro(value: Decimal) -> int:
    """Round a fractional micro-credit amount up (prices are never rounded in our favour below cost)."""
    return int(value.to_integral_value(rounding=ROUND_CEILING))


class Credits:
    """A credit amount for a response body or a stored JSON document; encoded as a JSON number (``json_raw``, used
    by the app's type encoders and by ``shared.infra.db.to_json``)."""

    __slots__ = ("micro",)

    def __init__(self, micro: int) -> None:
        self.micro = micro

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credits) and other.micro == self.micro

    def __hash__(self) -> int:
        return hash(self.micro)

    def __repr__(self) -> str:
        return f"Credits({self})"

    def __str__(self) -> str:
        value = micro_to_decimal(self.micro)
        text = format(value, "f")
        return text

    def json_raw(self) -> msgspec.Raw:
        """The amount as a JSON number with up to six decimals (exact: rendered from integers)."""
        return msgspec.Raw(str(self).encode())
