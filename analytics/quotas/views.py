"""The admin's quotas overview: per-user usage against quota, refusals, and the global cap."""

from django.conf import settings
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from analytics.timezones import day_bounds, month_bounds
from analytics.timezones import today as reporting_today
from analytics.views import require_permission

from . import selectors
from .backends import backend
from .limits import default_limits, limits_for_many
from .meters import global_meter
from .models import UsageQuota
from .presenters import user_rows
from .status import meter_state

QUOTA_USERS = 200


def quotas_overview(request, admin_site) -> TemplateResponse:
    """Per-user usage against quota, users near or over it, refusals, and the global cap."""
    require_permission(request)
    today = reporting_today()
    today_start = day_bounds(today)[0]
    only_near = request.GET.get("show") == "near"

    rows = selectors.quota_usage(today_start, month_bounds(today)[0], limit=QUOTA_USERS)
    limits = limits_for_many([row["user"] for row in rows])
    gmeter = global_meter(timezone.now())
    spent = meter_state(gmeter)  # recorded spend plus open reservations
    by_limit, by_user = selectors.refusals_since(today_start)
    context = {
        **admin_site.each_context(request),
        "title": "Quotas and the daily cost cap",
        "opts": UsageQuota._meta,
        "today": today,
        "only_near": only_near,
        "users": user_rows(rows, limits, only_near=only_near),
        "max_users": QUOTA_USERS,
        "cap": {
            "allowed": settings.AI_DAILY_COST_CAP_USD,
            "spent": spent.used,
            "percent": None if spent.fraction is None else round(spent.fraction * 100),
            "reached": spent.allowed is not None and spent.used >= spent.allowed,
            "resets_at": gmeter.resets_at,
        },
        "open_reservations": backend().open_reservations(),
        "backend": settings.QUOTA_BACKEND,
        "defaults": default_limits(),
        "refusals_by_limit": by_limit,
        "refusals_by_user": by_user,
        "events_url": reverse("admin:quotas_quotaevent_changelist"),
        "quotas_url": reverse("admin:quotas_usagequota_changelist"),
    }
    return TemplateResponse(request, "admin/quotas/overview.html", context)
