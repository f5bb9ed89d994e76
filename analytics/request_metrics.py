"""Requests and 5xx answers per minute, counted in memory and added to ``RequestMinute`` rows.

One row per minute for all processes (never one row per request): each process adds its counts
with an atomic upsert every few seconds.
"""

import threading
import time
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from .models import RequestMinute

FLUSH_EVERY_SECONDS = 10.0


class MinuteCounter:
    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[datetime, list[int]] = {}
        self._last_flush = time.monotonic()
        self.flushing = False

    def count(self, status: int, *, now: datetime | None = None) -> None:
        minute = (now or timezone.now()).replace(second=0, microsecond=0)
        with self._lock:
            counts = self._counts.setdefault(minute, [0, 0])
            counts[0] += 1
            if status >= 500:
                counts[1] += 1

    def flush_due(self) -> bool:
        return not self.flushing and time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS

    def take(self) -> dict[datetime, list[int]]:
        with self._lock:
            counts, self._counts = self._counts, {}
            self._last_flush = time.monotonic()
        return counts

    def give_back(self, counts: dict[datetime, list[int]]) -> None:
        with self._lock:
            for minute, (requests, errors) in counts.items():
                mine = self._counts.setdefault(minute, [0, 0])
                mine[0] += requests
                mine[1] += errors

    def flush(self) -> int:
        """Add the counted minutes to the database; keep them for the next try on failure."""
        counts = self.take()
        if not counts:
            return 0
        try:
            add_request_counts(counts)
        except Exception:
            self.give_back(counts)
            raise
        return len(counts)


def add_request_counts(counts: dict[datetime, list[int]]) -> None:
    table = RequestMinute._meta.db_table
    sql = (
        f"INSERT INTO {table} (minute, requests, errors_5xx) VALUES (%s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (minute) DO UPDATE SET requests = {table}.requests + excluded.requests, "
        f"errors_5xx = {table}.errors_5xx + excluded.errors_5xx"
    )
    # All minutes or none: a failure gives every count back, so none is ever added twice.
    with transaction.atomic(), connection.cursor() as cursor:
        for minute, (requests, errors) in sorted(counts.items()):
            cursor.execute(
                sql, [connection.ops.adapt_datetimefield_value(minute), requests, errors]
            )


requests_per_minute = MinuteCounter()
