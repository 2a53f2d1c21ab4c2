"""Pure parts of batch work: the batch discount in prices and the catalog, the checks of a batch input file's
lines, and how an upstream's growing logs become new lines per event."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from shared.batches.batches import read_lines
from shared.catalog import CatalogError
from shared.catalog.pricing import Pricing, Usage, cost, parse_pricing
from shared.tasks.upstream import split_logs


def test_the_batch_discount_comes_off_every_price_rounded_up() -> None:
    tokens = Pricing(unit="token", input_per_million=1_000_000, output_per_million=3_000_000)
    usage = Usage(input_tokens=3, output_tokens=1)
    assert cost(tokens, usage) == 6 and cost(tokens.for_batch(), usage) == 3
    assert cost(Pricing(unit="image", per_unit=5).for_batch(), Usage(images=1)) == 3  # 2.5 rounded up
    custom = parse_pricing({"unit": "request", "credits": "1", "batch_discount": "0.25"}, kind="text", where="m")
    assert custom.batch_discount == Fraction(1, 4) and cost(custom.for_batch(), Usage(requests=1)) == 750_000
    assert parse_pricing({"unit": "request", "credits": "1"}, kind="text", where="m").batch_discount == Fraction(1, 2)
    for bad in ("1", "-0.1", "half", True):
        with pytest.raises(CatalogError, match="batch_discount"):
            parse_pricing({"unit": "request", "credits": "1", "batch_discount": bad}, kind="text", where="m")


def _line(custom_id: object, **changes: object) -> str:
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}
    return json.dumps({**line, **changes})


def test_batch_input_lines_are_checked_with_their_line_numbers() -> None:
    text = "\n".join([
        _line("a"), "", _line("a"), _line(7), _line("b", method="GET"), _line("c", url="/v1/chat/completions"),
        _line("d", body={"input": "no model"}), "[1]", "{oops", _line("e"),
    ])  # fmt: skip
    lines, errors = read_lines(text.encode(), "/v1/embeddings", max_lines=100)
    assert [line.custom_id for line in lines] == ["a", "e"]
    assert [(error["code"], error["line"]) for error in errors] == [
        ("duplicate_custom_id", 3), ("missing_required_parameter", 4), ("invalid_method", 5),
        ("mismatched_endpoint", 6), ("invalid_request", 7), ("invalid_json_line", 8), ("invalid_json_line", 9),
    ]  # fmt: skip
    _, too_many = read_lines("\n".join(_line(str(n)) for n in range(3)).encode(), "/v1/embeddings", max_lines=2)
    assert [error["code"] for error in too_many] == ["too_many_requests"]


def test_each_progress_event_tells_only_the_log_lines_not_told_before() -> None:
    kept, told = split_logs(None, {"upstream_status": "processing", "logs": ["a", "b"]})
    assert kept == {"upstream_status": "processing", "log_lines": 2} and told["logs"] == ["a", "b"]
    kept, told = split_logs(kept, {"upstream_status": "processing", "logs": ["a", "b", "c"]})
    assert kept["log_lines"] == 3 and told == {"upstream_status": "processing", "logs": ["c"]}
    kept, told = split_logs(kept, {"upstream_status": "processing", "logs": ["a", "b", "c"]})
    assert told == {"upstream_status": "processing"}  # nothing new
    assert split_logs(kept, {"queue_position": 2}) == ({"queue_position": 2}, {"queue_position": 2})
