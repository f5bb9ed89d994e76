"""The admin's AI usage dashboard and daily cost report (served by ``AICallAdmin``, staff only,
``analytics.view_ai_dashboard``); every number comes from the rollups through ``selectors``."""

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from . import dashboard_charts, exports, presenters, selectors
from .forms import MAX_RANGE_DAYS, DateRangeForm, ReportDayForm
from .models import AICall
from .reports import report_csv, report_json
from .timezones import today as reporting_today

PERMISSION = "analytics.view_ai_dashboard"
EXPORT_FORMATS = ("csv", "json")
# The charts' scale (clipped or full) last chosen on the dashboard, kept a year in the browser.
SCALE_COOKIE = "analytics_chart_scale"
SCALE_COOKIE_AGE = 365 * 24 * 3600
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def require_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def download(body: str, *, extension: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=CONTENT_TYPES[extension])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def refuse_export(extension: str, message: str) -> HttpResponse:
    """An export of another range than the one asked for would mislead: refuse it (400)."""
    if extension == "json":
        return JsonResponse({"error": {"code": "bad_date", "message": message}}, status=400)
    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")


def export_dashboard(request, *, today, extension: str) -> HttpResponse:
    form = DateRangeForm(request.GET, today=today)
    if refusal := form.refusal():
        return refuse_export(extension, refusal)
    chosen = form.date_range()
    document = exports.dashboard_document(start=chosen.start, end=chosen.end, today=today)
    body = (exports.dashboard_csv if extension == "csv" else exports.dashboard_json)(document)
    filename = exports.dashboard_filename(chosen.start, chosen.end, extension)
    return download(body, extension=extension, filename=filename)


def dashboard(request, admin_site) -> HttpResponse:
    require_permission(request)
    today = reporting_today()
    if (extension := request.GET.get("format", "")) in EXPORT_FORMATS:
        return export_dashboard(request, today=today, extension=extension)
    yesterday = today - timedelta(days=1)
    chosen = DateRangeForm(request.GET, today=today).date_range()
    chosen_scale = request.GET.get("scale", "")
    full_scale = presenters.chart_scale(chosen_scale, request.COOKIES.get(SCALE_COOKIE)) == "full"

    # One read of the range's daily rollups feeds the totals, the charts and the breakdowns.
    summary = selectors.range_summary(chosen.start, chosen.end)
    charts = dashboard_charts.day_charts(
        summary.days, summary.totals.unpriced_calls, clip=not full_scale
    )
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
        "charts": charts,
        "any_clipped": any(chart["clipped"] for chart in charts),
        "full_scale": full_scale,
        "links": presenters.dashboard_links(chosen, full_scale=full_scale),
        "breakdowns": presenters.breakdowns(summary, chosen),
        "top_users": presenters.top_user_rows(users, chosen),
        "top_users_limit": presenters.TOP_USERS,
        "report_url": reverse("admin:analytics_report"),
        "changelist_url": presenters.changelist_url(),
    }
    response = TemplateResponse(request, "admin/analytics/dashboard.html", context)
    if chosen_scale in presenters.CHART_SCALES:  # a choice made: remembered for next time
        response.set_cookie(
            SCALE_COOKIE,
            chosen_scale,
            max_age=SCALE_COOKIE_AGE,
            path=reverse("admin:analytics_dashboard"),
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    return response


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
    if error and request.GET.get("format") == "json":
        return refuse_export("json", error)
    if error:
        return TemplateResponse(request, "admin/analytics/report.html", context, status=400)

    day = form.cleaned_data["day"] or today - timedelta(days=1)
    daily = selectors.daily_report(day, top=presenters.TOP_USERS)
    if (extension := request.GET.get("format", "")) in EXPORT_FORMATS:
        body = (report_csv if extension == "csv" else report_json)(daily)
        filename = exports.report_filename(day, extension)
        return download(body, extension=extension, filename=filename)

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
            "json_url": f"{url}?{urlencode({'day': day, 'format': 'json'})}",
            "calls_url": presenters.day_calls_url(day),
            "history_days": daily.history_days,
            "trailing_days": selectors.TRAILING_DAYS,
            "totals": presenters.report_totals(daily.total),
            "sections": presenters.report_sections(daily),
        }
    )
    return TemplateResponse(request, "admin/analytics/report.html", context)
