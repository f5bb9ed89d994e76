"""The dashboard's numbers as a document: the CSV and JSON exports and the JSON API (v1).

One function reads what the dashboard page shows (the same selectors, the same range) and returns
it as plain values: exact decimal strings for money (never floats), ``None`` where the page shows
"—" or "n/a". The daily report's export is ``reports.report_json`` / ``report_csv``.
"""

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings

from . import selectors
from .reports import csv_cell

DASHBOARD_TOP_USERS = 20
DASHBOARD_SECTIONS = ("model", "task_type", "variant")
CSV_COLUMNS = (
    "section",
    "key",
    "day",
    "calls",
    "errors",
    "error_rate",
    "success_rate",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "tokens",
    "cost_usd",
    "unpriced_calls",
    "cost_per_call_usd",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "avg_ttft_ms",
)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.000001")))


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def totals_values(t: selectors.Totals) -> dict:
    """The numbers of one row of the dashboard; cost ``None`` when every call was unpriced (the
    page's "n/a"), cost per call ``None`` without priced calls (the page's "—")."""
    all_unpriced = bool(t.calls) and t.unpriced_calls >= t.calls
    return {
        "calls": t.calls,
        "errors": t.errors,
        "error_rate": _rate(t.error_rate),
        "success_rate": _rate(t.success_rate),
        "input_tokens": t.input_tokens,
        "cached_input_tokens": t.cached_input_tokens,
        "output_tokens": t.output_tokens,
        "tokens": t.tokens,
        "cost_usd": None if all_unpriced else _money(t.cost_usd),
        "unpriced_calls": t.unpriced_calls,
        "cost_per_call_usd": _money(t.cost_per_call),
        "avg_latency_ms": _ms(t.avg_latency_ms),
        "p50_latency_ms": _ms(t.p50_latency_ms),
        "p95_latency_ms": _ms(t.p95_latency_ms),
        "avg_ttft_ms": _ms(t.avg_ttft_ms),
    }


def dashboard_document(*, start: date, end: date, today: date) -> dict:
    """Return what the dashboard shows for ``start``..``end`` (inclusive) as plain values."""
    summary = selectors.range_summary(start, end)
    users = selectors.top_users(start, end, limit=DASHBOARD_TOP_USERS)
    yesterday = today - timedelta(days=1)
    today_totals = summary.day(today) or selectors.totals(today, today)
    yesterday_totals = summary.day(yesterday) or selectors.totals(yesterday, yesterday)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days_in_range": (end - start).days + 1,
        "reporting_time_zone": settings.REPORTING_TIME_ZONE,
        "today": {"day": today.isoformat(), **totals_values(today_totals)},
        "yesterday": {"day": yesterday.isoformat(), **totals_values(yesterday_totals)},
        "totals": totals_values(summary.totals),
        "days": [
            {
                "day": day.isoformat(),
                **totals_values(totals),
                "cost_by_model_usd": {m: _money(c) for m, c in sorted(costs.items())},
            }
            for day, totals, costs in summary.days
        ],
        **{
            f"by_{dimension}": [
                {"key": key, **totals_values(totals)}
                for key, totals in summary.breakdowns[dimension]
            ]
            for dimension in DASHBOARD_SECTIONS
        },
        "top_users": [
            {
                "rank": rank,
                "user_id": u.user_id,
                "username": u.username,
                "calls": u.calls,
                "tokens": u.tokens,
                "cost_usd": _money(u.cost_usd),
            }
            for rank, u in enumerate(users, start=1)
        ],
    }


def dashboard_json(document: dict) -> str:
    return json.dumps(document, indent=2)


def dashboard_csv(document: dict) -> str:
    """One row per figure the page shows: ``section`` says which part (today, yesterday, total,
    day, model, task_type, variant, user; day_model: a day's cost of one model)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()

    def row(section: str, key: str, day: str, values: dict) -> None:
        cells = {"section": section, "key": key, "day": day, **values}
        writer.writerow({k: csv_cell(v) for k, v in cells.items()})

    row("today", "", document["today"]["day"], document["today"])
    row("yesterday", "", document["yesterday"]["day"], document["yesterday"])
    row("total", "", "", document["totals"])
    for day in document["days"]:
        row("day", "", day["day"], day)
    for day in document["days"]:
        for model, cost in day["cost_by_model_usd"].items():
            row("day_model", model, day["day"], {"cost_usd": cost})
    for dimension in DASHBOARD_SECTIONS:
        for line in document[f"by_{dimension}"]:
            row(dimension, line["key"], "", line)
    for user in document["top_users"]:
        row("user", user["username"], "", user)
    return out.getvalue()


def dashboard_filename(start: date, end: date, extension: str) -> str:
    return f"ai-usage-{start.isoformat()}-to-{end.isoformat()}.{extension}"


def report_filename(day: date, extension: str) -> str:
    return f"ai-cost-report-{day.isoformat()}.{extension}"
