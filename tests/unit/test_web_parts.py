"""The website's parts that need no server: filters, the usage chart, the security headers, safe redirects."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from api.web.auth_pages import safe_next
from api.web.chart import MAX_DAYS, chart_data, chart_days, legend, render_svg
from api.web.filters import credits, money, when
from api.web.security import CSP, is_page_path
from shared.ledger.money import Credits

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "web" / "templates"


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        (Credits(24_700_000), 2, "24.70"),
        (Credits(300_000), 2, "0.30"),
        (Credits(300), 2, "0.0003"),
        (Credits(1_234_567_000_000), 2, "1,234,567.00"),
        (Credits(500_000_000), 0, "500"),
        (Decimal("0.5"), 0, "0.5"),
        ("2.25", 2, "2.25"),
        (None, 2, "—"),
    ],
)
def test_credits_filter(value: object, places: int, shown: str) -> None:
    assert credits(value, places) == shown


def test_money_filter_uses_the_currency_minor_unit() -> None:
    assert money(500, "usd") == "$5.00"
    assert money(123456, "EUR") == "€1,234.56"
    assert money(500, "jpy") == "500 JPY"
    assert money(1999, "chf") == "19.99 CHF"
    assert money(None, "usd") == "—"


def test_when_filter_shows_utc() -> None:
    assert when("2026-11-22T01:30:00+01:00") == "2026-11-22 00:30 UTC"
    assert when("2026-11-22T00:30:00Z") == "2026-11-22 00:30 UTC"
    assert when(dt.datetime(2026, 11, 22, 0, 30, tzinfo=dt.UTC)) == "2026-11-22 00:30 UTC"
    assert when(None) == "—"
    assert when("not a date") == "not a date"


def test_chart_days_default_to_two_weeks_and_are_capped() -> None:
    today = dt.date(2026, 11, 22)
    days = chart_days(None, None, today)
    assert (days[0], days[-1], len(days)) == (dt.date(2026, 11, 9), today, 14)
    ranged = chart_days(dt.date(2026, 11, 1), dt.date(2026, 11, 4), today)  # "to" is exclusive
    assert ranged == [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
    assert len(chart_days(dt.date(2020, 1, 1), None, today)) == MAX_DAYS
    assert chart_days(dt.date(2026, 11, 5), dt.date(2026, 11, 5), today) == []


def test_chart_stacks_models_per_day_with_heights_proportional_to_credits() -> None:
    days = chart_days(dt.date(2026, 11, 20), dt.date(2026, 11, 23), dt.date(2026, 11, 22))
    rows = [
        {"date": "2026-11-20", "model": "flux-schnell", "credits": 3},
        {"date": "2026-11-20", "model": "llama", "credits": 1},
        {"date": "2026-11-22", "model": "flux-schnell", "credits": 1.5},
        {"date": "2026-10-01", "model": "old", "credits": 99},  # outside the days shown
    ]
    data = chart_data(rows, days)
    assert data.models == ["flux-schnell", "llama"]  # biggest first (at the bottom of each stack)
    assert data.day_total(dt.date(2026, 11, 20)) == Decimal(4)
    svg = str(render_svg(data))
    bars = re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"[^>]*data-model="([^"]+)" data-day="([^"]+)"', svg)
    heights = {(model, day): float(h) for h, model, day in bars}
    assert set(heights) == {("flux-schnell", "2026-11-20"), ("llama", "2026-11-20"), ("flux-schnell", "2026-11-22")}
    assert heights[("flux-schnell", "2026-11-20")] == pytest.approx(3 * heights[("llama", "2026-11-20")], rel=0.01)
    assert heights[("flux-schnell", "2026-11-20")] == pytest.approx(
        2 * heights[("flux-schnell", "2026-11-22")], rel=0.01
    )
    assert "old" not in svg
    assert "flux-schnell: 3 credits" in svg  # the tooltip
    assert [model for model, _ in legend(data)] == ["flux-schnell", "llama"]
    assert not data.empty


def test_chart_escapes_model_names_and_handles_no_data() -> None:
    days = chart_days(None, None, dt.date(2026, 11, 22))
    data = chart_data([{"date": "2026-11-22", "model": "<script>x</script>", "credits": 1}], days)
    svg = str(render_svg(data))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    empty = chart_data([], days)
    assert empty.empty
    assert 'class="bar"' not in str(render_svg(empty))


def test_content_security_policy_allows_no_inline_code_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in CSP


def test_templates_hold_no_inline_script_or_style() -> None:
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+=", text), path  # no inline event handlers


def test_forms_that_change_something_go_through_the_api() -> None:
    """Every form either reads (GET) or is sent by the site script to /v1 with the session's CSRF token."""
    for path in TEMPLATES.rglob("*.html"):
        for form in re.findall(r"<form\b[^>]*>", path.read_text()):
            assert 'data-api="/v1/' in form or 'method="get"' in form, (path.name, form)


def test_page_paths_and_safe_redirects() -> None:
    assert is_page_path("/") and is_page_path("/dashboard/keys") and is_page_path("/no-such-page")
    assert not any(is_page_path(p) for p in ("/v1/tasks", "/v1", "/docs", "/docs/openapi.json", "/healthz", "/readyz"))
    assert safe_next("/dashboard/usage?from=2026-11-01") == "/dashboard/usage?from=2026-11-01"
    for hostile in ("//evil.example", "https://evil.example", "/\\evil.example", "", None):
        assert safe_next(hostile) == "/dashboard"
