"""The alerts' job of ``manage.py monitor``: evaluate the rules once a minute, as often as the
rollups refresh (``ANALYTICS_ROLLUP_SECONDS``; after the analytics job, so that they read fresh
rollups). Safe with two monitors (alerting.py)."""

import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from .alerting import evaluate_all


class AlertJobs:
    def __init__(self):
        self._last: float | None = None

    def run_due(self, now: datetime | None = None) -> list[str]:
        moment = time.monotonic()
        if self._last is not None and moment - self._last < settings.ANALYTICS_ROLLUP_SECONDS:
            return []
        self._last = moment
        changed = [
            o
            for o in evaluate_all(now or timezone.now())
            if o.action in ("fired", "resolved", "renotified")
        ]
        if not changed:
            return []
        return ["alerts " + ", ".join(f"{o.rule}: {o.action}" for o in changed)]
