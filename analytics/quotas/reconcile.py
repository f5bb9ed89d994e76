"""Quota charges that Redis missed while it was away, made good from the recorded calls.

A call is charged to its meters after its ``AICall`` row commits. While Redis is away the
charge fails; the row is there. The rows are the source of truth for usage, so rather than keep
the failed charges in the process's memory (lost with the process, and applied twice if
anything else also corrected the counter), the process asks for a *reconciliation*: the monitor,
once Redis answers again, sets each of today's and this month's counters that is below the
recorded usage of its period (plus its open reservations) to that sum. It only ever raises a
counter: a charge that lands while it runs can be counted twice (an over-count by one call),
never lost. A Redis that lost its data needs none of this (a missing counter is seeded from the
same rows on first use); one that kept its data (AOF, a replica promoted) does.

The request is a ``JobState`` row (the database usually outlives a Redis outage); the monitor
also reconciles after an outage it saw itself (its own Redis check failed).
"""

import contextlib
import logging
from datetime import datetime

from django.db import IntegrityError
from django.db.models import Sum
from django.utils import timezone

from core.outages import REDIS

from ..models import AICall, JobState
from ..timezones import day_bounds, month_bounds, reporting_zone
from .backends import RedisBackend, backend
from .meters import _micro, global_meter, user_meters

logger = logging.getLogger("analytics.quotas")

REQUEST = "quotas.reconcile"


def note_lost_charge(exc: BaseException) -> None:
    """A charge failed because Redis is away: report the outage (once) and ask the monitor to
    reconcile the counters from the recorded calls when it is back."""
    REDIS.failed(exc)
    try:
        stamp = {"requested_at": timezone.now().isoformat()}
        # IntegrityError: another process created the row a moment ago, asking the same.
        with contextlib.suppress(IntegrityError):
            JobState.objects.update_or_create(name=REQUEST, defaults={"value": stamp})
    except Exception:
        logger.warning(
            "a quota charge was lost and no reconciliation could be requested "
            "(the monitor reconciles after an outage it sees itself)",
            exc_info=True,
        )


def reconciliation_requested() -> datetime | None:
    """When a process last asked for a reconciliation (None: nobody is asking)."""
    return JobState.objects.filter(name=REQUEST).values_list("updated_at", flat=True).first()


def recorded_usage(now: datetime) -> dict[str, int]:
    """Each meter key of today and this month with the usage its period's calls recorded."""
    today = now.astimezone(reporting_zone()).date()
    day_start, day_end = day_bounds(today)
    month_start, month_end = month_bounds(today)
    calls = AICall.objects.filter(is_demo=False).order_by()
    day = calls.filter(created_at__gte=day_start, created_at__lt=day_end)
    month = calls.filter(created_at__gte=month_start, created_at__lt=month_end)
    usage: dict[str, int] = {}
    for row in (
        day.filter(user__isnull=False)
        .values("user_id")
        .annotate(tokens=Sum("total_tokens"), cost=Sum("cost_usd"))
    ):
        tokens, cost_day, _ = user_meters(row["user_id"], None, now)
        usage[tokens.key] = int(row["tokens"] or 0)
        usage[cost_day.key] = _micro(row["cost"])
    month_rows = month.filter(user__isnull=False).values("user_id").annotate(cost=Sum("cost_usd"))
    for month_row in month_rows:
        usage[user_meters(month_row["user_id"], None, now)[2].key] = _micro(month_row["cost"])
    usage[global_meter(now).key] = _micro(day.aggregate(cost=Sum("cost_usd"))["cost"])
    return usage


def reconcile_counters(now: datetime | None = None) -> int:
    """Raise today's and this month's Redis counters that missed recorded usage; return how many
    were raised (the database backend charges in the same database as the calls: never)."""
    chosen = backend()
    if not isinstance(chosen, RedisBackend):
        return 0
    raised = chosen.raise_to_recorded(recorded_usage(now or timezone.now()))
    if raised:
        logger.warning(
            "raised %d quota counters to the recorded usage (charges were lost while Redis "
            "was unavailable)",
            raised,
        )
    return raised


def reconcile_if_requested(*, seen_outage: bool, now: datetime | None = None) -> int | None:
    """The monitor's job: reconcile if a process asked for it or the monitor saw Redis down;
    return how many counters were raised, or None if there was nothing to do. Raises if Redis
    does not answer (the monitor reports that outage)."""
    chosen = backend()
    if not isinstance(chosen, RedisBackend):
        return None
    chosen.client.ping()
    requested = reconciliation_requested()
    if requested is None and not seen_outage:
        return None
    raised = reconcile_counters(now)
    if requested is not None:
        # A request made after this reconciliation read the calls keeps its row.
        JobState.objects.filter(name=REQUEST, updated_at__lte=requested).delete()
    return raised
