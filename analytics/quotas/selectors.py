"""Reads of the quotas overview: recorded usage per user, and the refusals."""

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from analytics.models import AICall

from .models import QuotaEvent


def quota_usage(today_start, month_start, *, limit: int) -> list[dict]:
    """Recorded usage of today and this month per user (the users who spent most today first):
    dicts of ``user`` (a User), ``tokens_today``, ``cost_today`` and ``cost_month``."""
    rows = list(
        AICall.objects.filter(created_at__gte=month_start, is_demo=False, user__isnull=False)
        .values("user")
        .annotate(
            tokens_today=Sum("total_tokens", filter=Q(created_at__gte=today_start), default=0),
            cost_today=Sum("cost_usd", filter=Q(created_at__gte=today_start), default=0),
            cost_month=Sum("cost_usd", default=0),
        )
        .order_by("-cost_today", "-tokens_today", "-cost_month")[:limit]
    )
    users = get_user_model().objects.in_bulk([r["user"] for r in rows])
    return [dict(r, user=users[r["user"]]) for r in rows if r["user"] in users]


def refusals_since(moment, *, top_users: int = 20) -> tuple[list[dict], list[dict]]:
    """Return the quota refusals since ``moment`` counted by limit, and by user and limit."""
    events = QuotaEvent.objects.filter(created_at__gte=moment)
    by_limit = [dict(r) for r in events.values("limit").annotate(n=Count("id")).order_by("-n")]
    by_user = [
        dict(r)
        for r in events.filter(user__isnull=False)
        .values("user__username", "limit")
        .annotate(n=Count("id"))
        .order_by("-n")[:top_users]
    ]
    return by_limit, by_user
