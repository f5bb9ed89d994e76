"""Rollups: incremental passes equal a rebuild, histograms give percentiles within one bucket,
selectors equal direct SQL over the raw calls, retention keeps what was rolled up."""

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from analytics.histogram import LATENCY_BUCKETS_MS, bucket_index, percentile
from analytics.models import AICall, CallRollup, UserDailyUsage
from analytics.rollups import purge_raw_calls, rollup_range, rollup_recent
from analytics.selectors import breakdown, daily_report, top_users, totals
from analytics.timezones import day_bounds, local_day

from .factories import make_call, make_price, make_user

pytestmark = pytest.mark.django_db


def snapshot():
    fields = [f.name for f in CallRollup._meta.fields if f.name != "id"]
    rollups = sorted(tuple(str(getattr(r, f)) for f in fields) for r in CallRollup.objects.all())
    users = sorted(
        UserDailyUsage.objects.values_list("day", "user_id", "calls", "errors", "cost_usd")
    )
    return rollups, users


def seed(now: datetime, n: int = 400, seed: int = 7):
    rng = random.Random(seed)
    make_price(model="m1", inp="1", out="2")
    make_price(model="m2", inp="3", cached="1", out="6")
    users = [make_user() for _ in range(4)]
    for _ in range(n):
        make_call(
            created_at=now - timedelta(minutes=rng.randint(1, 4 * 24 * 60)),
            model=rng.choice(["m1", "m2", "unpriced"]),
            status=rng.choice(["ok"] * 8 + ["error", "timeout", "cancelled"]),
            task_type=rng.choice(["chat", "title"]),
            variant=rng.choice(["", "control", "treatment"]),
            user=rng.choice(users),
            input_tokens=rng.randint(10, 3000),
            cached_input_tokens=rng.randint(0, 10),
            output_tokens=rng.randint(0, 900),
            latency_ms=int(rng.lognormvariate(7, 1)),
            ttft_ms=rng.choice([None, int(rng.lognormvariate(5.5, 0.6))]),
        )
    return users


def test_incremental_passes_equal_a_rebuild():
    now = timezone.now()
    seed(now - timedelta(hours=6))
    # The monitor's passes, with more calls arriving between them (some stamped a little late).
    rollup_recent(now - timedelta(hours=5))
    make_call(created_at=now - timedelta(hours=4, minutes=58), model="m1")
    rollup_recent(now - timedelta(hours=3))
    for minutes in (170, 90, 30, 2):
        make_call(created_at=now - timedelta(minutes=minutes), model="m2", status="error")
        rollup_recent(now - timedelta(minutes=minutes - 1))
    rollup_recent(now)
    incremental = snapshot()
    assert incremental[0], "the passes produced no rollups"

    CallRollup.objects.all().delete()
    UserDailyUsage.objects.all().delete()
    rollup_range(now - timedelta(days=6), now)
    assert snapshot() == incremental


def test_rollup_totals_equal_direct_sql_over_raw_calls():
    now = timezone.now()
    seed(now)
    rollup_range(now - timedelta(days=6), now + timedelta(minutes=1))
    first, last = local_day(now - timedelta(days=4)), local_day(now)
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
    raw = AICall.objects.filter(created_at__gte=start, created_at__lt=end)
    expected = raw.aggregate(
        calls=Count("id"),
        errors=Count("id", filter=Q(status__in=["error", "timeout", "rate_limited"])),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost_usd"),
        unpriced=Count("id", filter=Q(cost_usd__isnull=True)),
        latency=Avg("latency_ms"),
    )
    got = totals(first, last)
    assert got.calls == expected["calls"]
    assert got.errors == expected["errors"]
    assert got.input_tokens == expected["input"]
    assert got.output_tokens == expected["output"]
    assert got.cost_usd == expected["cost"]
    assert got.unpriced_calls == expected["unpriced"] > 0
    assert got.avg_latency_ms == pytest.approx(expected["latency"])

    by_model = dict(breakdown(first, last, "model"))
    for model in ("m1", "m2", "unpriced"):
        assert by_model[model].calls == raw.filter(model=model).count()
    assert by_model["unpriced"].cost_usd == 0 and by_model["unpriced"].unpriced_calls > 0

    top = top_users(first, last, limit=2)
    per_user = raw.values("user_id").annotate(cost=Sum("cost_usd")).order_by("-cost")[:2]
    assert [u.user_id for u in top] == [r["user_id"] for r in per_user]
    assert [u.cost_usd for u in top] == [r["cost"] for r in per_user]


def test_daily_report_compares_with_the_trailing_seven_day_average():
    make_price(model="m1", inp="1000", cached=None, out="0")  # $0.001 per input token
    user = make_user("reporter")
    day = local_day(timezone.now()) - timedelta(days=1)
    day_start, _ = day_bounds(day)
    for ago in range(1, 8):  # trailing week: 2 calls of 100 tokens a day = $0.20 a day
        for _ in range(2):
            make_call(
                created_at=day_start - timedelta(days=ago) + timedelta(hours=12),
                model="m1",
                input_tokens=100,
                output_tokens=0,
                user=user,
            )
    for _ in range(5):  # the day: 5 calls = $0.50
        make_call(
            created_at=day_start + timedelta(hours=3),
            model="m1",
            input_tokens=100,
            output_tokens=0,
            user=user,
        )
    rollup_range(day_start - timedelta(days=9), day_start + timedelta(days=1))
    report = daily_report(day)
    assert report.total.calls == 5
    assert report.total.cost_usd == Decimal("0.5")
    assert report.total.avg_cost_usd == Decimal("0.2")
    assert report.total.avg_calls == 2
    assert report.total.cost_change == pytest.approx(1.5)
    assert report.history_days == 7
    assert [line.key for line in report.by_user] == ["reporter"]
    assert report.by_user[0].avg_cost_usd == Decimal("0.2")


def test_histogram_percentiles_are_within_one_bucket_of_the_exact_value():
    rng = random.Random(3)
    for _ in range(50):
        values = [
            int(rng.lognormvariate(rng.uniform(4, 9), rng.uniform(0.3, 1.5))) for _ in range(500)
        ]
        histogram = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        for v in values:
            histogram[bucket_index(v)] += 1
        ordered = sorted(values)
        for q in (0.5, 0.95, 0.99):
            exact = ordered[max(int(q * len(ordered) + 0.999999) - 1, 0)]  # nearest rank
            estimate = percentile(histogram, q)
            assert abs(bucket_index(estimate) - bucket_index(exact)) <= 1, (q, exact, estimate)


def test_retention_deletes_old_raw_calls_but_keeps_their_rollups(settings):
    settings.ANALYTICS_RAW_RETENTION_DAYS = 10
    make_price(model="m1", inp="1", out="1")
    now = timezone.now()
    old = [make_call(created_at=now - timedelta(days=20, hours=h), model="m1") for h in range(3)]
    recent = make_call(created_at=now - timedelta(days=1), model="m1")
    # The monitor never rolled the old day up: the purge does it before deleting.
    purged = purge_raw_calls()
    # SQLite deletes them; on PostgreSQL their month's partition may have been dropped whole.
    assert purged.deleted == 3 or purged.dropped, purged
    assert not AICall.objects.filter(pk__in=[c.pk for c in old]).exists()
    assert AICall.objects.filter(pk=recent.pk).exists()
    old_day = local_day(old[0].created_at)
    assert totals(old_day, old_day).calls == sum(
        1 for c in old if local_day(c.created_at) == old_day
    )
    # A rebuild over the purged range leaves those rollups as they were.
    before = snapshot()
    rollup_range(now - timedelta(days=30), now)
    after = snapshot()
    old_rows = [r for r in before[0] if r[1].startswith(str(old_day))]
    assert old_rows and all(r in after[0] for r in old_rows)


def test_range_summary_equals_the_separate_selectors():
    from analytics.selectors import by_day, range_summary

    now = timezone.now()
    seed(now)
    rollup_range(now - timedelta(days=6), now + timedelta(minutes=1))
    first, last = local_day(now - timedelta(days=4)), local_day(now)
    summary = range_summary(first, last)
    assert summary.totals == totals(first, last)
    assert summary.days == by_day(first, last)
    for dimension in ("model", "task_type", "variant"):
        assert summary.breakdowns[dimension] == breakdown(first, last, dimension)
    assert summary.day(last) == totals(last, last)
    assert summary.totals.calls > 0


def test_purge_keeps_whole_hours_in_a_half_hour_time_zone(settings):
    from analytics.timezones import reporting_zone

    settings.REPORTING_TIME_ZONE = "Asia/Kolkata"  # midnight there is hh:30 UTC
    settings.ANALYTICS_RAW_RETENTION_DAYS = 10
    reporting_zone.cache_clear()
    try:
        make_price(model="m1", inp="1", out="1")
        cutoff, _ = day_bounds(local_day(timezone.now() - timedelta(days=10)))
        # Three calls in the UTC hour that the local midnight cuts in two.
        hour = cutoff.astimezone(timezone.UTC).replace(minute=0)
        for minute in (5, 20, 45):
            make_call(created_at=hour + timedelta(minutes=minute), model="m1")
        purge_raw_calls()
        row = CallRollup.objects.get(period="hour", bucket_start=hour)
        assert row.calls == 3
        assert AICall.objects.count() == 1  # the 45-minute call is after the local midnight
    finally:
        reporting_zone.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_two_rollups_at_once_do_not_collide():
    import threading

    from django.db import connection

    now = timezone.now()
    seed(now, n=200)
    errors = []
    barrier = threading.Barrier(2)

    def monitor():
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            rollup_range(now - timedelta(days=5), now + timedelta(minutes=1))
        except Exception as exc:
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=monitor) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert CallRollup.objects.filter(period="day").exists()
    assert connection.vendor in ("postgresql", "sqlite")
