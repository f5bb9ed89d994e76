"""The admin's AI usage dashboard and daily cost report (served by ``AICallAdmin``, staff only,
``analytics.view_ai_dashboard``); every number comes from the rollups through ``selectors``."""

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from . import presenters, selectors
from .forms import MAX_RANGE_DAYS, DateRangeForm, ReportDayForm
from .models import AICall
from .reports import report_csv
from .timezones import today as reporting_today

PERMISSION = "analytics.view_ai_dashboard"


def require_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def dashboard(request, admin_site) -> TemplateResponse:
    require_permission(request)
    today = reporting_today()
    yesterday = today - timedelta(days=1)
    chosen = DateRangeForm(request.GET, today=today).date_range()

    # One read of the range's daily rollups feeds the totals, the charts and the breakdowns.
    summary = selectors.range_summary(chosen.start, chosen.end)
    users = selectors.top_users(chosen.start, chosen.end, limit=presenters.TOP_USERS)
    today_totals = summary.day(today) or selectors.totals(today, today)
    yesterday_totals = summary.day(yesterday) or selectors.totals(yesterday, yesterday)
    context = {
        **admin_site.each_context(request),
        "title": "AI usage dashboard",
        "opts": AICall._meta,
        "range": chosen,
        "today": today,
        "max_range_days": MAX_RANGE_DAYS,
        "quick_ranges": presenters.quick_ranges(today),
        "cards": presenters.cards(today_totals, yesterday_totals),
        "summary": presenters.range_summary(summary.totals),
        "rollup_every": presenters.refresh_period(settings.ANALYTICS_ROLLUP_SECONDS),
        "charts": presenters.day_charts(summary.days, summary.totals.unpriced_calls),
        "breakdowns": presenters.breakdowns(summary),
        "top_users": presenters.top_user_rows(users),
        "top_users_limit": presenters.TOP_USERS,
        "report_url": reverse("admin:analytics_report"),
        "changelist_url": presenters.changelist_url(),
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


def report(request, admin_site) -> HttpResponse:
    require_permission(request)
    today = reporting_today()
    form = ReportDayForm(request.GET, today=today)
    error = "" if form.is_valid() else " ".join(str(e) for e in form.errors["day"])
    context = {
        **admin_site.each_context(request),
        "title": "Daily AI cost report",
        "opts": AICall._meta,
        "today": today,
        "error": error,
        "raw_day": request.GET.get("day", "").strip(),
        "dashboard_url": reverse("admin:analytics_dashboard"),
        "changelist_url": presenters.changelist_url(),
    }
    if error:
        return TemplateResponse(request, "admin/analytics/report.html", context, status=400)

    day = form.cleaned_data["day"] or today - timedelta(days=1)
    daily = selectors.daily_report(day, top=presenters.TOP_USERS)
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
            "totals": presenters.report_totals(daily.total),
            "sections": presenters.report_sections(daily),
        }
    )
    return TemplateResponse(request, "admin/analytics/report.html", context)
