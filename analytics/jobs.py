"""The analytics jobs of ``manage.py monitor``: each is idempotent, so two monitors are safe.

Rollups, retention (with the monthly partitions of the raw calls on PostgreSQL) and the daily
report. The alerts and quotas apps register their own jobs
(after this one, so that alerts read fresh rollups)."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .partitions import ensure_partitions
from .rollups import purge_raw_calls, raw_horizon, rollup_recent
from .selectors import daily_report
from .services import claim_once, email_cost_report
from .timezones import reporting_zone

logger = logging.getLogger(__name__)

PURGE_EVERY = 3600.0


class AnalyticsJobs:
    """Runs each job when it is due; the schedule lives in this monitor process."""

    def __init__(self):
        self._last: dict[str, float] = {}

    def _due(self, name: str, every: float) -> bool:
        now = time.monotonic()
        if now - self._last.get(name, -every) >= every:
            self._last[name] = now
            return True
        return False

    def run_due(self, now: datetime | None = None) -> list[str]:
        now = now or timezone.now()
        done = []
        # The dashboard's figures trail the raw calls by up to this much (plus a monitor pass).
        if self._due("rollup", settings.ANALYTICS_ROLLUP_SECONDS):
            counts = rollup_recent(now)
            done.append(f"rollup {counts}")
        # This month's partition and the next ones, and those of retained months whose calls
        # wait in the default partition (PostgreSQL; nothing to do on SQLite).
        if self._due("partitions", PURGE_EVERY) and (
            created := ensure_partitions(now=now, oldest=raw_horizon())
        ):
            done.append(f"created partitions {', '.join(created)}")
        if self._due("purge", PURGE_EVERY) and (purged := purge_raw_calls()):
            done.append(f"retention: {purged}")
        if (sent := send_daily_report_if_due(now)) is not None:
            done.append(f"cost report emailed to {len(sent)}")
        return done


def send_daily_report_if_due(now: datetime) -> list[str] | None:
    """At COST_REPORT_HOUR (reporting zone), email yesterday's report, once per day overall."""
    if settings.COST_REPORT_HOUR is None:
        return None
    local = now.astimezone(reporting_zone())
    if local.hour < settings.COST_REPORT_HOUR:
        return None
    day = local.date() - timedelta(days=1)
    if not claim_once(f"analytics.cost_report_email:{day.isoformat()}"):
        return None
    # Bring yesterday's rollups up to date before reporting on it; the day is claimed already,
    # so a failure here must not cost the report.
    try:
        rollup_recent(now)
    except Exception:
        logger.exception("rollup before the daily report failed; reporting the rollups as they are")
    return email_cost_report(daily_report(day))
