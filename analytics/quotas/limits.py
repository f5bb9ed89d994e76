"""Each user's limits: their own quota row, their groups', the settings, or exempt."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Q

from core.localcache import LocalCache
from core.query_templates import QueryTemplate

from .models import UsageQuota


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None
    tokens_per_day: int | None
    cost_per_day_usd: Decimal | None
    cost_per_month_usd: Decimal | None
    exempt: bool = False


_FIELDS = ("requests_per_minute", "tokens_per_day", "cost_per_day_usd", "cost_per_month_usd")


def default_limits() -> Limits:
    return Limits(
        requests_per_minute=settings.QUOTA_REQUESTS_PER_MINUTE,
        tokens_per_day=settings.QUOTA_TOKENS_PER_DAY,
        cost_per_day_usd=settings.QUOTA_COST_PER_DAY_USD,
        cost_per_month_usd=settings.QUOTA_COST_PER_MONTH_USD,
    )


def _resolve(rows: list[UsageQuota], user_id: int, group_ids: set[int]) -> Limits:
    """The user's own row, else the most generous of their groups' rows, else the settings."""
    defaults = default_limits()
    own = next((r for r in rows if r.user_id == user_id), None)
    groups = [r for r in rows if r.group_id in group_ids]
    values = {}
    for name in _FIELDS:
        by_groups = [getattr(r, name) for r in groups if getattr(r, name) is not None]
        value = max(by_groups) if by_groups else getattr(defaults, name)
        if own is not None and getattr(own, name) is not None:
            value = getattr(own, name)
        values[name] = value
    return Limits(**values)


NO_LIMITS = Limits(None, None, None, None)
EXEMPT = Limits(None, None, None, None, exempt=True)


# Each user's limits, kept per process (aiproject.localcache): posting a message reads them,
# three queries. Connected to the models they derive from in AnalyticsConfig.ready.
LIMITS = LocalCache("limits")


def limits_for(user) -> Limits:
    """The user's limits: exempt, their own UsageQuota row, their groups', or the settings'."""
    return LIMITS.get(user.pk, lambda: _read_limits(user))


def limits_of(user_id: int) -> Limits | None:
    """``limits_for`` by the user's id: the user's row is read only when the cache has not
    got their limits (None: no such user)."""
    from django.contrib.auth import get_user_model

    def load() -> Limits | None:
        user = get_user_model().objects.filter(pk=user_id).first()
        return None if user is None else _read_limits(user)

    return LIMITS.get(user_id, load)


def _read_limits(user) -> Limits:
    if _is_exempt(user):
        return EXEMPT
    rows = _QUOTA_ROWS(user_id=user.pk)
    return _resolve(rows, user.pk, {r.group_id for r in rows if r.group_id is not None})


def _is_exempt(user) -> bool:
    """``user.has_perm("quotas.exempt_from_quotas")`` (active superusers, and holders of the
    permission directly or through a group) in one query, not has_perm's two (the user's and
    the groups' permissions, all of them): a user's limits are read on most of their posts."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return _EXEMPTING.first(user_id=user.pk) is not None


def _exempting(user_id):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        Q(user=user_id) | Q(group__user=user_id),
        content_type__app_label="quotas",
        codename="exempt_from_quotas",
    )[:1]


# Read on most posts (a user who posts less often than the cache keeps their limits), and
# compiled once (core.query_templates): through the ORM, the two cost 2.8 ms of CPU together on
# the benchmark machine, run again 0.6 ms (docs/performance.md).
_EXEMPTING = QueryTemplate(_exempting, user_id=0)
_QUOTA_ROWS = QueryTemplate(
    lambda user_id: UsageQuota.objects.filter(Q(user=user_id) | Q(group__user=user_id)).distinct(),
    user_id=0,
)


def limits_for_many(users) -> dict[int, Limits]:
    """``limits_for`` of many users in four queries (the admin overview)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    User = get_user_model()
    ids = [u.pk for u in users]
    permission = Permission.objects.filter(
        content_type__app_label="quotas", codename="exempt_from_quotas"
    ).first()
    holders = Q(is_superuser=True)
    if permission is not None:
        holders |= Q(user_permissions=permission) | Q(groups__permissions=permission)
    exempt = set(
        User.objects.filter(holders, pk__in=ids, is_active=True).values_list("pk", flat=True)
    )
    memberships: dict[int, set[int]] = {pk: set() for pk in ids}
    for user_id, group_id in User.groups.through.objects.filter(user_id__in=ids).values_list(
        "user_id", "group_id"
    ):
        memberships[user_id].add(group_id)
    all_groups = set().union(*memberships.values()) if memberships else set()
    rows = list(UsageQuota.objects.filter(Q(user_id__in=ids) | Q(group_id__in=all_groups)))
    return {pk: EXEMPT if pk in exempt else _resolve(rows, pk, memberships[pk]) for pk in ids}
