"""The monthly partitions of the raw AI calls on PostgreSQL (made by migration 0011).

``analytics_aicall`` is partitioned by range of ``created_at``: one partition per UTC month,
named ``analytics_aicall_y2026m12``, and ``analytics_aicall_default`` for a call of any month
that has no partition yet (so an insert never fails). The monitor keeps the months ahead
prepared (``ensure_partitions``) and retention drops whole expired months
(``drop_partitions_before``) instead of deleting their rows. On SQLite (or a PostgreSQL table
that is not partitioned) every function here does nothing.

The DDL is safe with two monitors at once (one advisory lock, every step re-checked under it)
and never makes the web processes' inserts wait long: a partition is created apart and then
attached (``ATTACH PARTITION`` takes a SHARE UPDATE EXCLUSIVE lock on the table, which inserts
and reads do not conflict with); a detach needs an ACCESS EXCLUSIVE lock for a moment, and
waits for it at most ``DDL_LOCK_TIMEOUT`` (a long query on the table makes it fail, and the
next pass try again) rather than queueing every insert behind a long read.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from .metrics import RAW_CALL_PARTITIONS, RAW_CALLS_MOVED

logger = logging.getLogger(__name__)

TABLE = "analytics_aicall"
DEFAULT = f"{TABLE}_default"
NAME = re.compile(rf"^{TABLE}_y(\d{{4}})m(\d{{2}})$")
# The monitor keeps this month and this many next ones prepared.
MONTHS_AHEAD = 3
PARTITION_LOCK_KEY = 0x41490002
DDL_LOCK_TIMEOUT = "2s"


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive


def month_of(moment: datetime) -> date:
    """The first day of ``moment``'s UTC month."""
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_for(month: date) -> Partition:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = next_month(month)
    end = datetime(end_month.year, end_month.month, 1, tzinfo=UTC)
    return Partition(f"{TABLE}_y{month.year}m{month.month:02d}", start, end)


def is_partitioned() -> bool:
    """Whether the raw calls live in a partitioned table (PostgreSQL, after migration 0011)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions() -> list[Partition]:
    """The monthly partitions attached now, oldest first (the default one left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)""",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = []
    for name in names:
        if match := NAME.match(name):
            found.append(partition_for(date(int(match[1]), int(match[2]), 1)))
    return sorted(found, key=lambda p: p.start)


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PARTITION_LOCK_KEY])
    cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")


def _attached(cursor, name: str) -> bool:
    cursor.execute(
        "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) "
        "AND inhparent = to_regclass(%s)",
        [name, TABLE],
    )
    return cursor.fetchone() is not None


def create_partition(month: date) -> int | None:
    """Create and attach ``month``'s partition, moving its calls out of the default partition.

    Return how many calls were moved, or None if the partition was there already.
    """
    part = partition_for(month)
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        if _attached(cursor, part.name):
            return None
        # No insert may reach the default partition with a call of this month between the
        # move and the attach (which would then refuse); calls of prepared months never wait.
        cursor.execute(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"CREATE TABLE {part.name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE)"
        )
        # The attach skips its scan when a constraint already proves the bounds.
        cursor.execute(
            f"ALTER TABLE {part.name} ADD CONSTRAINT {part.name}_bounds "
            "CHECK (created_at >= %s AND created_at < %s)",
            [part.start, part.end],
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s "  # noqa: S608 (names are ours)
            f"RETURNING *) INSERT INTO {part.name} SELECT * FROM moved",
            [part.start, part.end],
        )
        moved = cursor.rowcount
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {part.name} FOR VALUES FROM (%s) TO (%s)",
            [part.start, part.end],
        )
        cursor.execute(f"ALTER TABLE {part.name} DROP CONSTRAINT {part.name}_bounds")
    RAW_CALL_PARTITIONS.labels("created").inc()
    if moved:
        RAW_CALLS_MOVED.inc(moved)
    logger.info(
        "created partition %s (%d calls moved from the default partition)", part.name, moved
    )
    return moved


def _months_waiting_in_default(oldest: date, newest: date) -> list[date]:
    """Months between ``oldest`` and ``newest`` with calls in the default partition."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date "  # noqa: S608
            f"FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s",
            [partition_for(oldest).start, partition_for(newest).end],
        )
        return [row[0] for row in cursor.fetchall()]


def ensure_partitions(*, now: datetime | None = None, oldest: datetime | None = None) -> list[str]:
    """Create the partitions of this month and the MONTHS_AHEAD next ones, and of the months
    from ``oldest`` on whose calls wait in the default partition; return the names created.

    Calls of months outside that window (older than retention, or far in the future) stay in
    the default partition: retention deletes the old ones, the future ones move when their
    month comes within MONTHS_AHEAD.
    """
    if not is_partitioned():
        return []
    now = now or timezone.now()
    first = month_of(now)
    last = first
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    wanted = set()
    month = first
    while month <= last:
        wanted.add(month)
        month = next_month(month)
    wanted.update(_months_waiting_in_default(month_of(oldest or now), last))
    have = {p.start.date() for p in partitions()}
    created = []
    for month in sorted(wanted - have):
        try:
            moved = create_partition(month)
        except OperationalError as exc:
            if not lock_not_available(exc):
                raise
            logger.warning(
                "partition %s not created, the default partition was busy for %s "
                "(next pass retries)",
                partition_for(month).name,
                DDL_LOCK_TIMEOUT,
            )
            continue
        if moved is not None:
            created.append(partition_for(month).name)
    return created


@dataclass(frozen=True)
class Dropped:
    names: tuple[str, ...] = ()
    # The first partition that could not be dropped (its lock not had in time), if any: its
    # calls must not be deleted row by row instead; the next pass tries again.
    blocked: Partition | None = None


def lock_not_available(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL's lock_timeout (SQLSTATE 55P03), not an outage."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


def drop_partitions_before(cutoff: datetime) -> Dropped:
    """Detach and drop every monthly partition that ends at or before ``cutoff``.

    Their calls must have been rolled up already. Stops at the first partition whose lock it
    cannot get within DDL_LOCK_TIMEOUT (logged; the next pass retries).
    """
    if not is_partitioned():
        return Dropped()
    dropped: list[str] = []
    for part in partitions():
        if part.end > cutoff:
            break
        try:
            estimate = _detach_and_drop(part)
        except OperationalError as exc:
            if not lock_not_available(exc):
                raise
            logger.warning(
                "retention: %s not dropped, the table was busy for %s (next pass retries)",
                part.name,
                DDL_LOCK_TIMEOUT,
            )
            return Dropped(tuple(dropped), blocked=part)
        if estimate is None:
            continue  # another monitor dropped it
        RAW_CALL_PARTITIONS.labels("dropped").inc()
        logger.info(
            "dropped partition %s (calls before %s; %s)",
            part.name,
            part.end.date().isoformat(),
            f"about {estimate} rows" if estimate >= 0 else "never analyzed",
        )
        dropped.append(part.name)
    return Dropped(tuple(dropped))


def _detach_and_drop(part: Partition) -> int | None:
    """Return the planner's row estimate of the dropped partition, None if it was gone."""
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        if not _attached(cursor, part.name):
            return None
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [part.name]
        )
        estimate = cursor.fetchone()[0]
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {part.name}")
        cursor.execute(f"DROP TABLE {part.name}")
    return estimate
