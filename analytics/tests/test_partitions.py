"""The monthly partitions of the raw AI calls (PostgreSQL only: SQLite keeps a plain table).

The table is partitioned, calls land in their month's partition (or the default one), the
monitor prepares the months ahead (idempotent, two monitors at once), a call waiting in the
default partition moves when its month's partition is created, and retention drops whole
expired months and deletes rows only in the month the cutoff falls in. Migration 0012 moves
existing rows, and back and forth again.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from analytics import partitions
from analytics.models import AICall, CallRollup
from analytics.partitions import (
    MONTHS_AHEAD,
    create_partition,
    drop_partitions_before,
    ensure_partitions,
    month_of,
    next_month,
    partition_for,
)
from analytics.rollups import purge_raw_calls
from analytics.selectors import totals
from analytics.services import CallRecord, record_call
from analytics.timezones import local_day

from .factories import make_call, make_price

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="partitions exist on PostgreSQL only (set DATABASE_URL=postgres://...); "
        "SQLite keeps a plain table. CI runs these on PostgreSQL.",
    ),
]


def partition_of(call: AICall) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM analytics_aicall WHERE id = %s", [call.pk]
        )
        return cursor.fetchone()[0]


def months_back(n: int):
    """The first day of the UTC month ``n`` months before this one."""
    month = month_of(timezone.now())
    for _ in range(n):
        month = (month.replace(day=1) - timedelta(days=1)).replace(day=1)
    return month


def at(month, day: int, hour: int = 12) -> datetime:
    return datetime(month.year, month.month, day, hour, tzinfo=UTC)


@pytest.mark.django_db
def test_the_table_is_partitioned_by_month_with_a_default_partition():
    assert partitions.is_partitioned()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_partkeydef('analytics_aicall'::regclass)")
        assert cursor.fetchone()[0] == "RANGE (created_at)"
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'analytics_aicall'::regclass AND contype = 'p'"
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, created_at)"
        cursor.execute("SELECT to_regclass('analytics_aicall_default') IS NOT NULL")
        assert cursor.fetchone()[0]
    # The migration prepared this month and MONTHS_AHEAD more.
    names = {p.name for p in partitions.partitions()}
    month = month_of(timezone.now())
    for _ in range(MONTHS_AHEAD + 1):
        assert partition_for(month).name in names
        month = next_month(month)


@pytest.mark.django_db
def test_calls_land_in_their_months_partition_or_the_default_one():
    user_call = record_call(
        CallRecord(
            task_type="chat",
            model="gpt-test",
            base_url="https://api.example.com/v1",
            status="ok",
            input_tokens=10,
            output_tokens=5,
            latency_ms=100,
            ttft_ms=50,
        )
    )
    assert partition_of(user_call) == partition_for(month_of(timezone.now())).name
    ancient = make_call(created_at=datetime(2001, 1, 1, tzinfo=UTC))
    assert partition_of(ancient) == "analytics_aicall_default"
    # Read back through the ORM by primary key, as the admin does.
    assert AICall.objects.get(pk=ancient.pk).created_at.year == 2001
    assert AICall.objects.get(pk=user_call.pk).model == "gpt-test"


@pytest.mark.django_db
def test_ensure_partitions_prepares_the_months_ahead_once():
    later = timezone.now() + timedelta(days=31 * 8)
    created = ensure_partitions(now=later)
    assert partition_for(month_of(later)).name in created
    assert len(created) >= 1
    assert ensure_partitions(now=later) == []  # idempotent
    names = {p.name for p in partitions.partitions()}
    month = month_of(later)
    for _ in range(MONTHS_AHEAD + 1):
        assert partition_for(month).name in names
        month = next_month(month)


@pytest.mark.django_db
def test_a_call_waiting_in_the_default_partition_moves_to_its_new_partition():
    later = timezone.now() + timedelta(days=31 * 12)
    waiting = make_call(created_at=later)
    assert partition_of(waiting) == "analytics_aicall_default"
    ensure_partitions(now=later)
    assert partition_of(waiting) == partition_for(month_of(later)).name
    assert AICall.objects.filter(pk=waiting.pk).count() == 1
    # A month within the retention window whose call waits in the default partition (its
    # partition was never prepared) gets one too.
    old_month = datetime(2001, 3, 1, tzinfo=UTC)
    stray = make_call(created_at=old_month + timedelta(days=3))
    assert create_partition(month_of(old_month)) == 1
    assert partition_of(stray) == partition_for(month_of(old_month)).name
    assert create_partition(month_of(old_month)) is None


@pytest.mark.django_db(transaction=True)
def test_two_monitors_preparing_partitions_at_once_create_each_once():
    later = timezone.now() + timedelta(days=31 * 20)
    results: list[list[str]] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(2)

    def monitor():
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            results.append(ensure_partitions(now=later))
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
    created = results[0] + results[1]
    assert len(created) == len(set(created)) == MONTHS_AHEAD + 1


# Transactional: the calls are committed before retention runs, as in production (a partition
# cannot be dropped in the transaction that inserted into it while its deferred FK checks wait).
@pytest.mark.django_db(transaction=True)
def test_retention_drops_whole_months_and_deletes_only_in_the_cutoffs_month(settings):
    make_price(model="m1", inp="1", out="1")
    oldest, older, partial = months_back(3), months_back(2), months_back(1)
    for month in (oldest, older, partial):
        create_partition(month)
    # The cutoff: the 11th of last month (reporting zone UTC).
    cutoff_day = at(partial, 11).date()
    settings.ANALYTICS_RAW_RETENTION_DAYS = (local_day(timezone.now()) - cutoff_day).days
    in_oldest = make_call(created_at=at(oldest, 5), model="m1")
    in_older = [make_call(created_at=at(older, 20, h), model="m1") for h in (1, 2)]
    expired = make_call(created_at=at(partial, 3), model="m1")
    kept = make_call(created_at=at(partial, 20), model="m1")
    recent = make_call(created_at=timezone.now() - timedelta(hours=1), model="m1")

    purged = purge_raw_calls()

    assert partition_for(oldest).name in purged.dropped
    assert partition_for(older).name in purged.dropped
    assert partition_for(partial).name not in purged.dropped
    assert purged.deleted == 1  # the one expired call of the month the cutoff falls in
    left = set(AICall.objects.values_list("pk", flat=True))
    assert left == {kept.pk, recent.pk}
    assert not {in_oldest.pk, expired.pk, *(c.pk for c in in_older)} & left
    names = {p.name for p in partitions.partitions()}
    assert partition_for(partial).name in names
    assert partition_for(older).name not in names
    # Their days were rolled up before the partitions went.
    day = local_day(in_older[0].created_at)
    assert totals(day, day).calls == 2
    assert CallRollup.objects.filter(period="day", bucket_start=at(oldest, 5, 0)).exists()
    # A second pass has nothing left to do.
    assert not purge_raw_calls()


BEFORE = [("analytics", "0011_api_token")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_rows_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE[0]).apps.get_model("analytics", "AICall")
        moments = [
            timezone.now() - timedelta(hours=1),
            timezone.now() - timedelta(days=40),
            datetime(2001, 6, 1, tzinfo=UTC),  # a month of its own
        ]
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'analytics_aicall'::regclass")
            assert cursor.fetchone()[0] == "r"
        ids = [
            old.objects.create(model="m", status="ok", created_at=moment).pk for moment in moments
        ]

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        assert partitions.is_partitioned()
        moved = {c.pk: c for c in AICall.objects.all()}
        assert sorted(moved) == sorted(ids)
        for pk, moment in zip(ids, moments, strict=True):
            assert moved[pk].created_at == moment
            assert partition_of(moved[pk]) == partition_for(month_of(moment)).name
        # The identity goes on after the highest id moved.
        new = make_call(created_at=timezone.now())
        assert new.pk > max(ids)

        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        assert not partitions.is_partitioned()
        assert sorted(old.objects.values_list("pk", flat=True)) == sorted([*ids, new.pk])
        assert old.objects.create(model="m", status="ok").pk > new.pk
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert partitions.is_partitioned()
    assert AICall.objects.count() == len(ids) + 2


@pytest.mark.django_db(transaction=True)
def test_retention_leaves_a_busy_months_partition_for_the_next_pass(settings, caplog):
    """A long query holds the table: the detach gives up after DDL_LOCK_TIMEOUT instead of
    queueing every insert behind it, and that month's calls are not deleted row by row."""
    import psycopg

    make_price(model="m1", inp="1", out="1")
    older, partial = months_back(2), months_back(1)
    drop_partitions_before(at(older, 1, 0))  # empty ones other tests left, e.g. of 2001
    for month in (older, partial):
        create_partition(month)
    cutoff_day = at(partial, 11).date()
    settings.ANALYTICS_RAW_RETENTION_DAYS = (local_day(timezone.now()) - cutoff_day).days
    waiting = make_call(created_at=at(older, 20), model="m1")
    expired = make_call(created_at=at(partial, 3), model="m1")

    params = connection.get_connection_params()
    with psycopg.connect(**params) as reader:
        reader.execute("SELECT count(*) FROM analytics_aicall")  # its transaction stays open
        purged = purge_raw_calls()
    assert partition_for(older).name not in purged.dropped
    assert "next pass retries" in caplog.text
    assert purged.deleted == 1  # the later month's expired call; the busy month is left whole
    left = set(AICall.objects.values_list("pk", flat=True))
    assert waiting.pk in left and expired.pk not in left

    purged = purge_raw_calls()  # the reader is gone
    assert partition_for(older).name in purged.dropped
    assert not AICall.objects.filter(pk=waiting.pk).exists()
