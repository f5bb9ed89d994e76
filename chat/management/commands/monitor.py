"""``manage.py monitor``: the long-running housekeeping process (safe to run twice at once).

Every pass: sweep replies whose runner died (marked ``interrupted``), pause experiments whose
treatment tripped a guardrail, and the analytics jobs that
are due (rollups every minute, raw-call retention hourly, the daily cost report email once a
day). Every job is idempotent or claims its work in the database, so two monitors never double
anything.
"""

import logging
import signal
import time

from django.core.management.base import BaseCommand

from analytics.jobs import AnalyticsJobs
from chat.services import sweep_stale_replies
from experiments.guardrails import check_guardrails

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the periodic jobs (sweeper, rollups, retention, cost report) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=10.0, help="Seconds between passes.")
        parser.add_argument("--once", action="store_true", help="Run one pass and exit.")

    def handle(self, *args, interval: float, once: bool, **options):
        if interval <= 0:
            self.stderr.write("--interval must be positive")
            raise SystemExit(2)
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        analytics = AnalyticsJobs()
        while True:
            jobs = (
                ("sweep", sweep_stale_replies),
                ("guardrails", check_guardrails),  # before the alerts, which report its pauses
                ("analytics", analytics.run_due),
            )
            for name, job in jobs:
                try:
                    result = job()
                except Exception:  # one failed job must not end the monitor
                    logger.exception("monitor job %s failed", name)
                    continue
                if result:
                    logger.info("monitor %s: %s", name, result)
                    self.stdout.write(f"{name}: {result}")
            if once or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.5, interval))
