"""What the dashboard and the daily report show: rows of formatted values, charts as SVG."""

from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.urls import reverse

from core.formatting import (
    format_change,
    format_count,
    format_money,
    format_ms,
    format_percent,
)

from . import selectors
from .forms import DateRange
from .timezones import day_bounds

TOP_USERS = 20
NO_VALUE_LABEL = "(none)"
# The value of the changelist's model/task type/variant filters that selects the empty string.
EMPTY_FILTER_VALUE = "__none__"
QUICK_RANGES = (7, 30, 90, 365)

BREAKDOWNS = (
    ("model", "By model", "Model"),
    ("task_type", "By task type", "Task type"),
    ("variant", "By variant", "Variant"),
)
REPORT_SECTIONS = (
    ("model", "By model", "Model", "by_model"),
    ("task_type", "By task type", "Task type", "by_task_type"),
    ("variant", "By variant", "Variant", "by_variant"),
    ("user", f"By user (top {TOP_USERS} by cost)", "User", "by_user"),
)


def format_cost(cost: Decimal, calls: int, unpriced: int) -> str:
    """Return the cost of the priced calls; ``n/a`` when every call was unpriced.

    Unpriced calls (models without a price) are never counted as free: the pages show how many
    there are next to the cost.
    """
    if calls and unpriced >= calls:
        return "n/a"
    return format_money(cost)


def unpriced_note(unpriced: int) -> str:
    return f"{unpriced:,} unpriced" if unpriced else ""


def _label(key: str) -> str:
    return key or NO_VALUE_LABEL


def cost_per_priced_call(t: selectors.Totals) -> str:
    priced = t.calls - t.unpriced_calls
    return format_money(t.cost_usd / priced) if priced > 0 else "—"


def relative_change(value: float, average: float) -> float | None:
    return (value - average) / average if average else None


def changelist_url(**filters) -> str:
    url = reverse("admin:analytics_aicall_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def range_calls_url(first: date, last: date, **filters) -> str:
    """The AI calls of reporting-zone days ``first``..``last`` in the admin (and ``filters``)."""
    start, end = day_bounds(first)[0], day_bounds(last)[1]
    return changelist_url(
        created_at__gte=start.isoformat(), created_at__lt=end.isoformat(), **filters
    )


def day_calls_url(day: date, **filters) -> str:
    """The AI calls of a reporting-zone day in the admin (with more ``filters``)."""
    return range_calls_url(day, day, **filters)


# The dashboard charts' scales: days far above the rest clipped (the default), or every day to
# scale. The choice is the query's ``scale``, else the one remembered in a cookie.
CHART_SCALES = ("clipped", "full")


def chart_scale(asked: str, remembered: str | None) -> str:
    for choice in (asked, remembered):
        if choice in CHART_SCALES:
            return choice
    return CHART_SCALES[0]


def dashboard_links(chosen: DateRange, *, full_scale: bool) -> dict:
    """The exports of the range shown, and the same page with the other chart scale (named,
    so that it overrides a remembered choice; it lands on the charts)."""
    url = reverse("admin:analytics_dashboard")
    shown = {"start": chosen.start.isoformat(), "end": chosen.end.isoformat()}
    other_scale = {**shown, "scale": "clipped" if full_scale else "full"}
    return {
        "csv": f"{url}?{urlencode({**shown, 'format': 'csv'})}",
        "json": f"{url}?{urlencode({**shown, 'format': 'json'})}",
        "scale": f"{url}?{urlencode(other_scale)}#charts",
    }


# --- The dashboard ---------------------------------------------------------------------------


def cards(today: selectors.Totals, yesterday: selectors.Totals) -> list[dict]:
    rows = [
        ("calls", "Calls", lambda t: format_count(t.calls)),
        ("success_rate", "Success rate", lambda t: format_percent(t.success_rate)),
        ("avg_latency", "Average latency", lambda t: format_ms(t.avg_latency_ms)),
        ("p95_latency", "p95 latency", lambda t: format_ms(t.p95_latency_ms)),
        ("avg_ttft", "Average time to first token", lambda t: format_ms(t.avg_ttft_ms)),
        ("tokens", "Tokens", lambda t: format_count(t.tokens)),
        ("cost", "Cost", lambda t: format_cost(t.cost_usd, t.calls, t.unpriced_calls)),
    ]
    cards = []
    for key, label, show in rows:
        card = {"key": key, "label": label, "today": show(today), "yesterday": show(yesterday)}
        if key == "cost":
            card["today_note"] = unpriced_note(today.unpriced_calls)
            card["yesterday_note"] = unpriced_note(yesterday.unpriced_calls)
        cards.append(card)
    return cards


def breakdown_rows(
    dimension: str, groups: list[tuple[str, selectors.Totals]], chosen: DateRange
) -> list[dict]:
    return [
        {
            "key": key,
            "label": _label(key),
            "url": range_calls_url(
                chosen.start, chosen.end, **{dimension: key or EMPTY_FILTER_VALUE}
            ),
            "calls": format_count(t.calls),
            "error_rate": format_percent(t.error_rate),
            "tokens": format_count(t.tokens),
            "cost": format_cost(t.cost_usd, t.calls, t.unpriced_calls),
            "unpriced": unpriced_note(t.unpriced_calls),
            "cost_per_call": cost_per_priced_call(t),
            "avg_latency": format_ms(t.avg_latency_ms),
            "p95_latency": format_ms(t.p95_latency_ms),
        }
        for key, t in groups
    ]


def quick_ranges(today: date) -> list[dict]:
    return [
        {
            "label": f"Last {n} days",
            "query": urlencode(
                {"start": (today - timedelta(days=n - 1)).isoformat(), "end": today}
            ),
        }
        for n in QUICK_RANGES
    ]


def refresh_period(seconds: float) -> str:
    """``minute``, ``15 seconds``: how often the monitor refreshes the rollups."""
    return "minute" if seconds == 60 else f"{seconds:g} seconds"


def range_summary(t: selectors.Totals) -> dict:
    return {
        "calls": format_count(t.calls),
        "calls_noun": "call" if t.calls == 1 else "calls",
        "error_rate": format_percent(t.error_rate),
        "tokens": format_count(t.tokens),
        "tokens_noun": "token" if t.tokens == 1 else "tokens",
        "cost": format_cost(t.cost_usd, t.calls, t.unpriced_calls),
        "unpriced": unpriced_note(t.unpriced_calls),
    }


def breakdowns(summary: selectors.RangeSummary, chosen: DateRange) -> list[dict]:
    return [
        {
            "dimension": dimension,
            "title": title,
            "column": column,
            "rows": breakdown_rows(dimension, summary.breakdowns[dimension], chosen),
        }
        for dimension, title, column in BREAKDOWNS
    ]


def top_user_rows(users: list[selectors.UserUsage], chosen: DateRange) -> list[dict]:
    return [
        {
            "rank": rank,
            "username": u.username,
            "url": range_calls_url(chosen.start, chosen.end, user__id__exact=u.user_id),
            "calls": format_count(u.calls),
            "tokens": format_count(u.tokens),
            "cost": format_money(u.cost_usd),
        }
        for rank, u in enumerate(users, start=1)
    ]


# --- The daily cost report ---------------------------------------------------------------------


def _report_line(line: selectors.ReportLine, day: date, section: str) -> dict:
    # The changelist's search matches a username exactly; the other sections have filters.
    user = section == "user"
    filters = {"q": line.key} if user else {section: line.key or EMPTY_FILTER_VALUE}
    return {
        "key": line.key,
        "label": _label(line.key),
        "url": day_calls_url(day, **filters),
        "calls": format_count(line.calls),
        "avg_calls": f"{line.avg_calls:,.1f}",
        "tokens": format_count(line.tokens),
        "avg_tokens": f"{line.avg_tokens:,.0f}",
        "cost": format_cost(line.cost_usd, line.calls, line.unpriced_calls),
        "unpriced": unpriced_note(line.unpriced_calls),
        "avg_cost": format_money(line.avg_cost_usd),
        "change": _cost_change(line),
    }


def _cost_change(line: selectors.ReportLine) -> str:
    if line.cost_change is not None:
        return format_change(line.cost_change)
    return "new" if line.cost_usd > 0 else "n/a"


def report_totals(total: selectors.ReportLine) -> list[dict]:
    return [
        {
            "key": "calls",
            "label": "Calls",
            "day": format_count(total.calls),
            "avg": f"{total.avg_calls:,.1f}",
            "change": format_change(relative_change(total.calls, total.avg_calls)),
            "note": "",
        },
        {
            "key": "tokens",
            "label": "Tokens",
            "day": format_count(total.tokens),
            "avg": f"{total.avg_tokens:,.0f}",
            "change": format_change(relative_change(total.tokens, total.avg_tokens)),
            "note": "",
        },
        {
            "key": "cost",
            "label": "Cost",
            "day": format_cost(total.cost_usd, total.calls, total.unpriced_calls),
            "avg": format_money(total.avg_cost_usd),
            "change": _cost_change(total),
            "note": unpriced_note(total.unpriced_calls),
        },
    ]


def report_sections(daily: selectors.DailyReport) -> list[dict]:
    return [
        {
            "key": key,
            "title": title,
            "column": column,
            "rows": [_report_line(line, daily.day, key) for line in getattr(daily, attribute)],
        }
        for key, title, column, attribute in REPORT_SECTIONS
    ]
