"""The usage chart: credits charged per UTC day, stacked by model, as a server-rendered SVG.

No script and no inline style: colours are SVG presentation attributes, so the page's CSP stays strict.
Every bar carries a ``<title>`` (a tooltip, and what a screen reader says).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

PALETTE = ("#4f6bed", "#e8743b", "#19a979", "#ed4a7b", "#945ecf", "#13a4b4", "#525df4", "#bf399e", "#6c8893")
MAX_DAYS = 92
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28


@dataclass(frozen=True, slots=True)
class ChartData:
    days: list[dt.date]
    models: list[str]
    credits: dict[tuple[dt.date, str], Decimal]  # (day, model) -> credits

    @property
    def empty(self) -> bool:
        return not any(self.credits.values())

    def day_total(self, day: dt.date) -> Decimal:
        return sum((self.credits.get((day, m), Decimal(0)) for m in self.models), Decimal(0))


def chart_days(start: dt.date | None, end: dt.date | None, today: dt.date, default_days: int = 14) -> list[dt.date]:
    """The days shown: ``start`` (inclusive) to ``end`` (exclusive), by default the last ``default_days``
    ending today; never more than ``MAX_DAYS`` (the most recent ones are kept)."""
    last = (end - dt.timedelta(days=1)) if end else today
    first = start or (last - dt.timedelta(days=default_days - 1))
    if last < first:
        return []
    count = min((last - first).days + 1, MAX_DAYS)
    return [last - dt.timedelta(days=i) for i in reversed(range(count))]


def chart_data(rows: Iterable[Mapping[str, Any]], days: list[dt.date]) -> ChartData:
    """From the summary's ``by_day_and_model`` rows (``date`` ISO string, ``model``, ``credits``)."""
    wanted = set(days)
    totals: dict[tuple[dt.date, str], Decimal] = {}
    per_model: dict[str, Decimal] = {}
    for row in rows:
        day = dt.date.fromisoformat(str(row["date"]))
        if day not in wanted:
            continue
        amount = Decimal(str(row["credits"]))
        totals[(day, row["model"])] = totals.get((day, row["model"]), Decimal(0)) + amount
        per_model[row["model"]] = per_model.get(row["model"], Decimal(0)) + amount
    models = sorted(per_model, key=lambda m: (-per_model[m], m))  # biggest spender at the bottom
    return ChartData(days=days, models=models, credits=totals)


def _nice_max(value: Decimal) -> Decimal:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover - 10 x 10^n always fits


def _fmt(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render_svg(data: ChartData) -> Markup:
    """The chart as an inline ``<svg>`` element (safe to put in a template as is)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((data.day_total(d) for d in data.days), default=Decimal(0)))
    n = max(len(data.days), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1.0)
    colours = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(data.models)}
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Credits per day by model" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):  # horizontal grid with labels
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#666">'
            f"{escape(_fmt(value.quantize(Decimal('0.01')) if top >= 1 else value))}</text>"
        )
    label_every = max(1, n // 8)
    for index, day in enumerate(data.days):
        x = LEFT + index * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        for model in data.models:
            amount = data.credits.get((day, model))
            if not amount:
                continue
            h = float(amount / top) * plot_h
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colours[model]}" data-model="{escape(model)}" data-day="{day.isoformat()}">'
                f"<title>{escape(day.isoformat())} · {escape(model)}: {escape(_fmt(amount))} credits</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" fill="#666">'
                f"{day.strftime('%m-%d')}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(data: ChartData) -> list[tuple[str, str]]:
    """(model, colour) pairs in the chart's order."""
    return [(model, PALETTE[i % len(PALETTE)]) for i, model in enumerate(data.models)]
