"""The quotas' job of ``manage.py monitor``: purge expired database counters, and reconcile the
Redis counters after an outage (reconcile.py). Idempotent, so two monitors are safe."""

import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from .backends import DatabaseBackend
from .reconcile import reconcile_if_requested

PURGE_EVERY = 3600.0


class QuotaJobs:
    """Runs each job when it is due; the schedule lives in this monitor process."""

    def __init__(self):
        self._last_purge: float | None = None
        # Set when this monitor found Redis down: reconcile the quota counters once it is back,
        # whether or not a web process managed to ask for it.
        self._redis_was_down = False

    def run_due(self, now: datetime | None = None) -> list[str]:
        now = now or timezone.now()
        done = []
        # Redis expires its counters itself; the database backend's are deleted here.
        moment = time.monotonic()
        if self._last_purge is None or moment - self._last_purge >= PURGE_EVERY:
            self._last_purge = moment
            if settings.QUOTA_BACKEND == "database" and (
                expired := DatabaseBackend.purge_expired()
            ):
                done.append(f"purged {expired} expired quota counters")
        if settings.QUOTA_BACKEND == "redis":
            try:
                raised = reconcile_if_requested(seen_outage=self._redis_was_down, now=now)
            except Exception:
                self._redis_was_down = True
                raise
            self._redis_was_down = False
            if raised is not None:
                done.append(f"quota counters reconciled ({raised} raised)")
        return done
