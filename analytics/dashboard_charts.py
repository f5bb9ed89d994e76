"""The dashboard's four charts of a range, as SVG (analytics/charts.py) with their notes."""

from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.safestring import mark_safe

from core.formatting import format_count, format_money, format_ms, format_percent

from . import charts, selectors
from .chart_scales import count_axis, money_axis, ms_axis

CHART_MODELS = 6  # models with a colour of their own in the cost chart; the rest are "Other"


def _svg(markup: str):
    # The chart functions escape every text they put in (see charts.py and its tests).
    return mark_safe(markup)  # noqa: S308


def _counted(noun: str):
    """A tooltip format for counts with their noun: ``1 call``, ``1,204 calls``."""

    def show(value) -> str:
        if value is None:
            return "—"
        return f"{format_count(value)} {noun if value == 1 else noun + 's'}"

    return show


def day_report_url(day: date) -> str:
    return f"{reverse('admin:analytics_report')}?{urlencode({'day': day.isoformat()})}"


def day_charts(
    days: list[tuple[date, selectors.Totals, dict]], unpriced: int, *, clip: bool = True
) -> list[dict]:
    """The four charts of the range; each day links to its report; ``clip`` lets a few days
    far above the rest go off the scale (analytics/chart_scales.py)."""
    labels = [day.isoformat() for day, _, _ in days]
    links = [day_report_url(day) for day, _, _ in days]

    model_costs: dict[str, Decimal] = {}
    for _, _, costs in days:
        for model, cost in costs.items():
            model_costs[model] = model_costs.get(model, Decimal(0)) + cost
    ranked = sorted(
        (m for m, c in model_costs.items() if c > 0), key=lambda m: (-model_costs[m], m)
    )
    shown, others = ranked[:CHART_MODELS], set(ranked[CHART_MODELS:])
    cost_series = {m: [costs.get(m, Decimal(0)) for _, _, costs in days] for m in shown}
    if others:
        cost_series["Other models"] = [
            sum((c for m, c in costs.items() if m in others), Decimal(0)) for _, _, costs in days
        ]
    common: dict[str, Any] = {"links": links, "clip": clip}

    charts_ = [
        {
            "key": "cost",
            "title": "Cost per day, by model",
            "svg": _svg(
                charts.stacked_bars(
                    labels,
                    cost_series,
                    title="Cost per day by model",
                    value_format=format_money,
                    axis_format=money_axis,
                    **common,
                )
            ),
            "note": (
                f"Leaves out {unpriced:,} unpriced calls (models without a price)."
                if unpriced
                else ""
            ),
        },
        {
            "key": "calls",
            "title": "Calls per day, and the error rate",
            "svg": _svg(
                charts.stacked_bars(
                    labels,
                    {
                        "Succeeded": [t.calls - t.errors for _, t, _ in days],
                        "Failed": [t.errors for _, t, _ in days],
                    },
                    title="Calls per day with the error rate",
                    value_format=_counted("call"),
                    axis_format=count_axis,
                    line=("Error rate", [t.error_rate for _, t, _ in days]),
                    line_format=format_percent,
                    **common,
                )
            ),
            "note": "Failed: errors, timeouts and rate limits (cancelled calls are not failures).",
        },
        {
            "key": "latency",
            "title": "Latency per day (p50 and p95)",
            "svg": _svg(
                charts.lines(
                    labels,
                    {
                        "p50": [t.p50_latency_ms for _, t, _ in days],
                        "p95": [t.p95_latency_ms for _, t, _ in days],
                    },
                    title="Latency per day, p50 and p95",
                    value_format=format_ms,
                    axis_format=ms_axis,
                    **common,
                )
            ),
            "note": "Percentiles come from bucketed histograms: exact to the bucket.",
        },
        {
            "key": "tokens",
            "title": "Tokens per day",
            "svg": _svg(
                charts.stacked_bars(
                    labels,
                    {
                        "Input": [t.input_tokens for _, t, _ in days],
                        "Output": [t.output_tokens for _, t, _ in days],
                    },
                    title="Tokens per day, input and output",
                    value_format=_counted("token"),
                    axis_format=count_axis,
                    **common,
                )
            ),
            "note": "",
        },
    ]
    for chart in charts_:
        # Whether a day went off the clipped scale (the page then offers the full scale).
        chart["clipped"] = "chart-clip-label" in chart["svg"]
    return charts_
