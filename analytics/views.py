"""The admin's AI usage dashboard and daily cost report.

Both pages are served by ``AICallAdmin`` (see ``admin.py``) under ``/admin/analytics/aicall/``,
wrapped in ``admin_site.admin_view`` (staff only, never cached), and need the
``analytics.view_ai_dashboard`` permission. Every number comes from ``selectors``, which read
the rollups only, so the pages cost the same whatever the number of raw calls.
"""

import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from core.formatting import format_change, format_count, format_money, format_ms, format_percent

from . import charts, quotas, selectors
from .models import AICall, QuotaEvent, UsageQuota
from .reports import report_csv
from .timezones import day_bounds, local_day, month_bounds

PERMISSION = "analytics.view_ai_dashboard"
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
# Dates before this are refused: nothing was recorded then, and date arithmetic near year 1
# would overflow.
EARLIEST_DAY = date(2000, 1, 1)
TOP_USERS = 20
CHART_MODELS = 6  # models with a colour of their own in the cost chart; the rest are "Other"
NO_VALUE_LABEL = "(none)"
# The value of the changelist's model/task type/variant filters that selects the empty string.
EMPTY_FILTER_VALUE = "__none__"
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

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


def _require_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _today() -> date:
    return local_day(timezone.now())


# --- Parsing the dates of a request --------------------------------------------------------


class BadDay(ValueError):
    """A date from the query string that cannot be used; its message is shown on the page."""


def parse_day(value: str, *, today: date, what: str = "The date") -> date:
    """Return the YYYY-MM-DD ``value`` as a date, or raise BadDay with a readable message."""
    text = value.strip()
    try:
        if not ISO_DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        raise BadDay(f"{what} “{shown}” is not a date of the form YYYY-MM-DD.") from None
    if day > today:
        raise BadDay(f"{what} {day.isoformat()} is in the future (today is {today.isoformat()}).")
    if day < EARLIEST_DAY:
        raise BadDay(f"{what} {day.isoformat()} is before {EARLIEST_DAY.isoformat()}.")
    return day


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    error: str = ""

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def default_range(today: date) -> DateRange:
    return DateRange(today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today)


def pick_range(params, today: date) -> DateRange:
    """Return the range asked for by ``start`` and ``end`` (YYYY-MM-DD, both inclusive).

    Either may be left out (the end defaults to today, the start to 30 days before the end).
    A range that cannot be used falls back to the last 30 days, with the reason in ``error``.
    """
    raw_start = params.get("start", "").strip()
    raw_end = params.get("end", "").strip()
    if not raw_start and not raw_end:
        return default_range(today)
    fallback = f" Showing the last {DEFAULT_RANGE_DAYS} days instead."
    try:
        end = parse_day(raw_end, today=today, what="The end date") if raw_end else today
        start = (
            parse_day(raw_start, today=today, what="The start date")
            if raw_start
            else max(end - timedelta(days=DEFAULT_RANGE_DAYS - 1), EARLIEST_DAY)
        )
    except BadDay as exc:
        return replace(default_range(today), error=str(exc) + fallback)
    if start > end:
        error = f"The start date {start.isoformat()} is after the end date {end.isoformat()}."
    elif (end - start).days + 1 > MAX_RANGE_DAYS:
        error = f"The range is longer than {MAX_RANGE_DAYS} days."
    else:
        return DateRange(start, end)
    return replace(default_range(today), error=error + fallback)


# --- Presentation helpers --------------------------------------------------------------------


def _label(key: str) -> str:
    return key or NO_VALUE_LABEL


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


def cost_per_priced_call(t: selectors.Totals) -> str:
    priced = t.calls - t.unpriced_calls
    return format_money(t.cost_usd / priced) if priced > 0 else "—"


def relative_change(value: float, average: float) -> float | None:
    return (value - average) / average if average else None


def _changelist_url(**filters) -> str:
    url = reverse("admin:analytics_aicall_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _svg(markup: str):
    # The chart functions escape every text they put in (see charts.py and its tests).
    return mark_safe(markup)  # noqa: S308


# --- The dashboard ---------------------------------------------------------------------------


def _cards(today: selectors.Totals, yesterday: selectors.Totals) -> list[dict]:
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


def _breakdown_rows(dimension: str, groups: list[tuple[str, selectors.Totals]]) -> list[dict]:
    return [
        {
            "key": key,
            "label": _label(key),
            "url": _changelist_url(**{dimension: key or EMPTY_FILTER_VALUE}),
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


def _charts(days: list[tuple[date, selectors.Totals, dict]], unpriced: int) -> list[dict]:
    labels = [day.isoformat() for day, _, _ in days]

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

    return [
        {
            "key": "cost",
            "title": "Cost per day, by model",
            "svg": _svg(
                charts.stacked_bars(
                    labels, cost_series, title="Cost per day by model", value_format=format_money
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
                    value_format=format_count,
                    line=("Error rate", [t.error_rate for _, t, _ in days]),
                    line_format=format_percent,
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
                    value_format=charts.format_compact,
                )
            ),
            "note": "",
        },
    ]


def dashboard(request, admin_site) -> TemplateResponse:
    _require_permission(request)
    today = _today()
    yesterday = today - timedelta(days=1)
    chosen = pick_range(request.GET, today)

    # One read of the range's daily rollups feeds the totals, the charts and the breakdowns.
    summary = selectors.range_summary(chosen.start, chosen.end)
    range_totals = summary.totals
    users = selectors.top_users(chosen.start, chosen.end, limit=TOP_USERS)
    today_totals = summary.day(today) or selectors.totals(today, today)
    yesterday_totals = summary.day(yesterday) or selectors.totals(yesterday, yesterday)
    context = {
        **admin_site.each_context(request),
        "title": "AI usage dashboard",
        "opts": AICall._meta,
        "range": chosen,
        "today": today,
        "max_range_days": MAX_RANGE_DAYS,
        "quick_ranges": [
            {
                "label": f"Last {n} days",
                "query": urlencode(
                    {"start": (today - timedelta(days=n - 1)).isoformat(), "end": today}
                ),
            }
            for n in (7, 30, 90, 365)
        ],
        "cards": _cards(today_totals, yesterday_totals),
        "summary": {
            "calls": format_count(range_totals.calls),
            "error_rate": format_percent(range_totals.error_rate),
            "tokens": format_count(range_totals.tokens),
            "cost": format_cost(
                range_totals.cost_usd, range_totals.calls, range_totals.unpriced_calls
            ),
            "unpriced": unpriced_note(range_totals.unpriced_calls),
        },
        "charts": _charts(summary.days, range_totals.unpriced_calls),
        "breakdowns": [
            {
                "dimension": dimension,
                "title": title,
                "column": column,
                "rows": _breakdown_rows(dimension, summary.breakdowns[dimension]),
            }
            for dimension, title, column in BREAKDOWNS
        ],
        "top_users": [
            {
                "rank": rank,
                "username": u.username,
                "url": _changelist_url(user__id__exact=u.user_id),
                "calls": format_count(u.calls),
                "tokens": format_count(u.tokens),
                "cost": format_money(u.cost_usd),
            }
            for rank, u in enumerate(users, start=1)
        ],
        "top_users_limit": TOP_USERS,
        "report_url": reverse("admin:analytics_report"),
        "changelist_url": _changelist_url(),
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


# --- The daily cost report ---------------------------------------------------------------------


def _report_line(line: selectors.ReportLine) -> dict:
    return {
        "key": line.key,
        "label": _label(line.key),
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


def _report_totals(total: selectors.ReportLine) -> list[dict]:
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


def report(request, admin_site) -> HttpResponse:
    _require_permission(request)
    today = _today()
    raw_day = request.GET.get("day", "").strip()
    error = ""
    day = today - timedelta(days=1)
    if raw_day:
        try:
            day = parse_day(raw_day, today=today)
        except BadDay as exc:
            error = str(exc)

    context = {
        **admin_site.each_context(request),
        "title": "Daily AI cost report",
        "opts": AICall._meta,
        "today": today,
        "error": error,
        "raw_day": raw_day,
        "dashboard_url": reverse("admin:analytics_dashboard"),
        "changelist_url": _changelist_url(),
    }
    if error:
        return TemplateResponse(request, "admin/analytics/report.html", context, status=400)

    daily = selectors.daily_report(day, top=TOP_USERS)
    if request.GET.get("format") == "csv":
        response = HttpResponse(report_csv(daily), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="ai-cost-report-{day.isoformat()}.csv"'
        )
        return response

    url = reverse("admin:analytics_report")
    context.update(
        {
            "day": day,
            "is_today": day == today,
            "previous_url": f"{url}?{urlencode({'day': day - timedelta(days=1)})}",
            "next_url": (
                f"{url}?{urlencode({'day': day + timedelta(days=1)})}" if day < today else ""
            ),
            "csv_url": f"{url}?{urlencode({'day': day, 'format': 'csv'})}",
            "history_days": daily.history_days,
            "trailing_days": selectors.TRAILING_DAYS,
            "totals": _report_totals(daily.total),
            "sections": [
                {
                    "key": key,
                    "title": title,
                    "column": column,
                    "rows": [_report_line(line) for line in getattr(daily, attribute)],
                }
                for key, title, column, attribute in REPORT_SECTIONS
            ],
        }
    )
    return TemplateResponse(request, "admin/analytics/report.html", context)


# --- Quotas ----------------------------------------------------------------------------------

QUOTA_NEAR = 0.8
QUOTA_USERS = 200


def _usage_rows(today_start, month_start) -> list[dict]:
    """Recorded usage of today and this month per user (the users who spent most today first)."""
    rows = list(
        AICall.objects.filter(created_at__gte=month_start, is_demo=False, user__isnull=False)
        .values("user")
        .annotate(
            tokens_today=Sum("total_tokens", filter=Q(created_at__gte=today_start), default=0),
            cost_today=Sum("cost_usd", filter=Q(created_at__gte=today_start), default=0),
            cost_month=Sum("cost_usd", default=0),
        )
        .order_by("-cost_today", "-tokens_today", "-cost_month")[:QUOTA_USERS]
    )
    users = get_user_model().objects.in_bulk([r["user"] for r in rows])
    return [dict(r, user=users[r["user"]]) for r in rows if r["user"] in users]


def _quota_state(fraction: float | None) -> str:
    if fraction is None:
        return ""
    return "over" if fraction >= 1 else "near" if fraction >= QUOTA_NEAR else "ok"


def _quota_cells(row: dict, limits) -> tuple[list[dict], float]:
    """The row's cells (used / allowed, percent, state) and its largest fraction of a limit."""
    cells, worst = [], 0.0
    for label, used, allowed, money in (
        ("Tokens today", row["tokens_today"], limits.tokens_per_day, False),
        ("Cost today", row["cost_today"], limits.cost_per_day_usd, True),
        ("Cost this month", row["cost_month"], limits.cost_per_month_usd, True),
    ):
        if allowed is None:
            fraction, shown = None, "no limit"
        else:
            fraction = float(used) / float(allowed) if allowed else 1.0
            shown = f"${allowed:,.2f}" if money else f"{allowed:,}"
            worst = max(worst, fraction)
        cells.append(
            {
                "label": label,
                "used": f"${used:,.4f}" if money else f"{used:,}",
                "allowed": shown,
                "percent": None if fraction is None else round(fraction * 100),
                "state": _quota_state(fraction),
            }
        )
    return cells, worst


def quotas_overview(request, admin_site) -> TemplateResponse:
    """Per-user usage against quota, users near or over it, refusals, and the global cap."""
    _require_permission(request)
    now = timezone.now()
    today = _today()
    today_start = day_bounds(today)[0]
    only_near = request.GET.get("show") == "near"

    rows = _usage_rows(today_start, month_bounds(today)[0])
    limits = quotas.limits_for_many([row["user"] for row in rows])
    users = []
    for row in rows:
        cells, worst = _quota_cells(row, limits[row["user"].pk])
        if only_near and worst < QUOTA_NEAR:
            continue
        users.append(
            {
                "user": row["user"],
                "exempt": limits[row["user"].pk].exempt,
                "cells": cells,
                "state": _quota_state(worst),
                "worst": worst,
            }
        )
    users.sort(key=lambda u: -u["worst"])

    gmeter = quotas.global_meter(now)
    spent = quotas.meter_state(gmeter)  # recorded spend plus open reservations
    events_today = QuotaEvent.objects.filter(created_at__gte=today_start)
    context = {
        **admin_site.each_context(request),
        "title": "Quotas and the daily cost cap",
        "opts": UsageQuota._meta,
        "today": today,
        "only_near": only_near,
        "users": users,
        "max_users": QUOTA_USERS,
        "cap": {
            "allowed": settings.AI_DAILY_COST_CAP_USD,
            "spent": spent.used,
            "percent": None if spent.fraction is None else round(spent.fraction * 100),
            "reached": spent.allowed is not None and spent.used >= spent.allowed,
            "resets_at": gmeter.resets_at,
        },
        "open_reservations": quotas.backend().open_reservations(),
        "backend": settings.QUOTA_BACKEND,
        "defaults": quotas.default_limits(),
        "refusals_by_limit": list(
            events_today.values("limit").annotate(n=Count("id")).order_by("-n")
        ),
        "refusals_by_user": list(
            events_today.filter(user__isnull=False)
            .values("user__username", "limit")
            .annotate(n=Count("id"))
            .order_by("-n")[:20]
        ),
        "events_url": reverse("admin:analytics_quotaevent_changelist"),
        "quotas_url": reverse("admin:analytics_usagequota_changelist"),
    }
    return TemplateResponse(request, "admin/analytics/quotas.html", context)
