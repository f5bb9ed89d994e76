"""Hourly and daily rollups of the raw calls, and the retention of raw calls.

A rollup is always recomputed from the raw calls of whole buckets, so the monitor's incremental
pass and ``manage.py rollup --since`` produce identical rows. Raw calls older than the retention
are deleted only after their buckets were rolled up, and buckets are never rebuilt from a range
whose raw calls are already gone.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from .metrics import RAW_CALLS_DELETED
from .models import LATENCY_BUCKETS_MS, N_BUCKETS, AICall, CallRollup, JobState, UserDailyUsage
from .partitions import drop_partitions_before
from .timezones import day_bounds, local_day, reporting_zone

KEY_FIELDS = ("model", "task_type", "variant", "status")
ERROR_STATUSES = ("error", "timeout", "rate_limited")


def _bucket_case(field: str):
    whens = [
        When(**{f"{field}__lt": bound}, then=Value(index))
        for index, bound in enumerate(LATENCY_BUCKETS_MS)
    ]
    return Case(*whens, default=Value(len(LATENCY_BUCKETS_MS)), output_field=IntegerField())


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def raw_horizon() -> datetime:
    """The oldest moment raw calls are kept for (older ones may already be deleted)."""
    return timezone.now() - timedelta(days=settings.ANALYTICS_RAW_RETENTION_DAYS)


def _rollup_rows(period: str, start: datetime, end: datetime) -> list[CallRollup]:
    trunc = (
        TruncHour("created_at", tzinfo=UTC)
        if period == CallRollup.Period.HOUR
        else TruncDay("created_at", tzinfo=reporting_zone())
    )
    calls = AICall.objects.between(start, end).annotate(bucket=trunc)
    rows: dict[tuple, CallRollup] = {}
    totals = calls.values("bucket", *KEY_FIELDS).annotate(
        n=Count("id"),
        input=Sum("input_tokens"),
        cached=Sum("cached_input_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost_usd"),
        unpriced=Count("id", filter=Q(cost_usd__isnull=True)),
        latency=Sum("latency_ms"),
        ttft=Sum("ttft_ms"),
        ttft_n=Count("ttft_ms"),
    )
    for t in totals:
        key = (t["bucket"], *(t[f] for f in KEY_FIELDS))
        rows[key] = CallRollup(
            period=period,
            bucket_start=t["bucket"],
            **{f: t[f] for f in KEY_FIELDS},
            calls=t["n"],
            errors=t["n"] if t["status"] in ERROR_STATUSES else 0,
            input_tokens=t["input"] or 0,
            cached_input_tokens=t["cached"] or 0,
            output_tokens=t["output"] or 0,
            cost_usd=t["cost"] or Decimal(0),
            unpriced_calls=t["unpriced"],
            latency_ms_sum=t["latency"] or 0,
            ttft_ms_sum=t["ttft"] or 0,
            ttft_count=t["ttft_n"],
            latency_histogram=[0] * N_BUCKETS,
            ttft_histogram=[0] * N_BUCKETS,
        )
    for field, target in (("latency_ms", "latency_histogram"), ("ttft_ms", "ttft_histogram")):
        counts = (
            calls.filter(**{f"{field}__isnull": False})
            .annotate(b=_bucket_case(field))
            .values("bucket", *KEY_FIELDS, "b")
            .annotate(n=Count("id"))
        )
        for c in counts:
            getattr(rows[(c["bucket"], *(c[f] for f in KEY_FIELDS))], target)[c["b"]] = c["n"]
    return list(rows.values())


def _user_rows(start_day, end_day) -> list[UserDailyUsage]:
    start, _ = day_bounds(start_day)
    _, end = day_bounds(end_day)
    per_user = (
        AICall.objects.between(start, end)
        .filter(user__isnull=False)
        .annotate(day=TruncDay("created_at", tzinfo=reporting_zone()))
        .values("day", "user_id")
        .annotate(
            n=Count("id"),
            errors=Count("id", filter=Q(status__in=ERROR_STATUSES)),
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            unpriced=Count("id", filter=Q(cost_usd__isnull=True)),
        )
    )
    return [
        UserDailyUsage(
            day=local_day(u["day"]),
            user_id=u["user_id"],
            calls=u["n"],
            errors=u["errors"],
            input_tokens=u["input"] or 0,
            output_tokens=u["output"] or 0,
            cost_usd=u["cost"] or Decimal(0),
            unpriced_calls=u["unpriced"],
        )
        for u in per_user
    ]


# Two monitors (or a monitor and `manage.py rollup`) rebuilding overlapping buckets at once
# would both delete and insert them; on PostgreSQL one transaction-scoped lock serializes them
# (SQLite's IMMEDIATE transactions already do).
ROLLUP_LOCK_KEY = 0x41490001


def _rebuild(hour_start, hour_end, first_day, last_day) -> dict[str, int]:
    counts = {"hours": 0, "days": 0, "user_days": 0}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_LOCK_KEY])
        if hour_start < hour_end:
            hourly = _rollup_rows(CallRollup.Period.HOUR, hour_start, hour_end)
            CallRollup.objects.filter(
                period=CallRollup.Period.HOUR,
                bucket_start__gte=hour_start,
                bucket_start__lt=hour_end,
            ).delete()
            CallRollup.objects.bulk_create(hourly, batch_size=1000)
            counts["hours"] = len(hourly)
        if first_day <= last_day:
            day_start, _ = day_bounds(first_day)
            _, day_end = day_bounds(last_day)
            daily = _rollup_rows(CallRollup.Period.DAY, day_start, day_end)
            CallRollup.objects.filter(
                period=CallRollup.Period.DAY, bucket_start__gte=day_start, bucket_start__lt=day_end
            ).delete()
            CallRollup.objects.bulk_create(daily, batch_size=1000)
            users = _user_rows(first_day, last_day)
            UserDailyUsage.objects.filter(day__gte=first_day, day__lte=last_day).delete()
            UserDailyUsage.objects.bulk_create(users, batch_size=1000)
            counts["days"], counts["user_days"] = len(daily), len(users)
    return counts


def rollup_range(start: datetime, end: datetime) -> dict[str, int]:
    """Recompute every hour and reporting-zone day that overlaps ``[start, end)``.

    The range is widened to whole buckets, and clamped so that no bucket is rebuilt from raw
    calls that retention may already have deleted (those rollups are kept as they are).
    """
    horizon = raw_horizon()
    # Retention deletes whole reporting-zone days before the horizon's day: from the next day
    # on, every day's raw calls are complete; hours from the one after the horizon's.
    first_day = max(local_day(start), local_day(horizon) + timedelta(days=1))
    last_day = local_day(end - timedelta(microseconds=1))
    hour_start = max(floor_hour(start), floor_hour(horizon) + timedelta(hours=1))
    hour_end = floor_hour(end - timedelta(microseconds=1)) + timedelta(hours=1)
    return _rebuild(hour_start, hour_end, first_day, last_day)


ROLLUP_STATE = "analytics.rollup"
# Calls are stamped when their attempt ends and committed moments later: look back this far.
LATE_ARRIVAL = timedelta(minutes=5)


def rollup_recent(now: datetime | None = None) -> dict[str, int]:
    """The monitor's incremental pass: recompute the buckets touched since the last pass."""
    now = now or timezone.now()
    state, _ = JobState.objects.get_or_create(name=ROLLUP_STATE)
    last = state.value.get("last_run")
    # The first pass ever backfills every retained day.
    since = datetime.fromisoformat(last) - LATE_ARRIVAL if last else raw_horizon()
    counts = rollup_range(since, now)
    JobState.objects.filter(pk=state.pk).update(value={"last_run": now.isoformat()})
    return counts


@dataclass(frozen=True)
class Purged:
    """What one retention pass removed: rows deleted, and whole monthly partitions dropped."""

    deleted: int = 0
    dropped: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.deleted or self.dropped)

    def __str__(self) -> str:
        parts = [f"deleted {self.deleted} raw calls"]
        if self.dropped:
            parts.append(f"dropped partitions {', '.join(self.dropped)}")
        return "; ".join(parts)


def purge_raw_calls() -> Purged:
    """Remove raw calls of the whole reporting-zone days before the retention horizon.

    Their days are rolled up first, from the raw calls that are still all there, so nothing is
    lost: rollups are kept forever. On PostgreSQL the monthly partitions that end before the
    cutoff are dropped whole; rows are deleted one by one only in the month the cutoff falls in
    (and in the default partition). SQLite deletes them all row by row.
    """
    cutoff, _ = day_bounds(local_day(raw_horizon()))
    oldest = AICall.objects.filter(created_at__lt=cutoff).order_by("created_at").first()
    if oldest is None:
        return Purged()
    first_day = local_day(oldest.created_at)
    last_day = local_day(cutoff - timedelta(microseconds=1))
    # Whole hours: in a zone like +05:30 the cutoff falls inside a UTC hour, whose raw calls are
    # all still here now (after the delete, that hour is never rebuilt again).
    hour_end = floor_hour(cutoff - timedelta(microseconds=1)) + timedelta(hours=1)
    _rebuild(floor_hour(oldest.created_at), hour_end, first_day, last_day)
    return drop_raw_calls_before(cutoff)


def drop_raw_calls_before(cutoff: datetime) -> Purged:
    """Drop the partitions that end by ``cutoff``, then delete the older calls left.

    The caller has rolled their days up (``purge_raw_calls``); the benchmark times this part.
    """
    dropped = drop_partitions_before(cutoff)
    # Partition pruning: only the month the cutoff falls in and the default partition are read.
    expired = AICall.objects.filter(created_at__lt=cutoff)
    if dropped.blocked is not None:  # never delete row by row what a drop will take next pass
        expired = expired.filter(created_at__gte=dropped.blocked.end)
    deleted, _ = expired.delete()
    if deleted:
        RAW_CALLS_DELETED.inc(deleted)
    return Purged(deleted=deleted, dropped=dropped.names)


def merge_histograms(histograms) -> list[int]:
    merged = [0] * N_BUCKETS
    for histogram in histograms:
        for index, count in enumerate(histogram or ()):
            merged[index] += count
    return merged
