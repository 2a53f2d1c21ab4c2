from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from shared.catalog.pricing import Pricing, Usage, cost, max_input_tokens, worst_case_usage
from shared.ledger.money import Credits, CreditsFormatError, parse_credits


@pytest.mark.parametrize(
    ("text", "micro"),
    [("25", 25_000_000), ("0.3", 300_000), ("2.5", 2_500_000), ("0.000001", 1), (12, 12_000_000), ("0", 0)],
)
def test_parse_credits_is_exact(text: str | int, micro: int) -> None:
    assert parse_credits(text) == micro


@pytest.mark.parametrize("bad", ["0.0000001", "abc", "NaN", "inf", 0.1, True, "1e999999", "-1e999999", "1e30", 2**80])
def test_parse_credits_refuses_floats_and_excess_precision(bad: object) -> None:
    with pytest.raises(CreditsFormatError):
        parse_credits(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("micro", "text"), [(0, "0"), (300_000, "0.3"), (25_000_000, "25"), (1, "0.000001")])
def test_credits_render_as_plain_decimals(micro: int, text: str) -> None:
    assert str(Credits(micro)) == text
    assert Decimal(str(Credits(micro))) * 1_000_000 == micro


def test_costs_per_unit_round_up_to_the_micro_credit() -> None:
    image = Pricing(unit="image", per_unit=300_000)
    assert cost(image, Usage(images=3)) == 900_000
    video = Pricing(unit="video_second", per_unit=4_000_000)
    assert cost(video, Usage(video_seconds=Fraction(5, 2))) == 10_000_000
    tokens = Pricing(unit="token", input_per_million=18_000_000, output_per_million=18_000_000)
    assert cost(tokens, Usage(input_tokens=1, output_tokens=0)) == 18  # 18 micro-credits per token
    cheap = Pricing(unit="token", input_per_million=1, output_per_million=0)
    assert cost(cheap, Usage(input_tokens=1)) == 1  # a millionth of a micro-credit still costs one
    request = Pricing(unit="request", per_unit=250_000)
    assert cost(request, Usage(requests=1)) == 250_000


def test_worst_case_covers_the_prompt_and_max_tokens() -> None:
    messages = [{"role": "user", "content": "héllo wörld"}]
    usage = worst_case_usage("token", {"messages": messages, "max_tokens": 100})
    assert usage.output_tokens == 100
    assert usage.input_tokens == max_input_tokens(messages) >= len("héllo wörld".encode())
    assert worst_case_usage("image", {"num_images": 3}).images == 3
    assert worst_case_usage("video_second", {"duration_s": 4}).video_seconds == 4
    assert worst_case_usage("request", {}).requests == 1
