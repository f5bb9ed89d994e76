"""``manage.py monitor``: the long-running housekeeping process (safe to run twice at once).

For now it sweeps replies whose runner died (marks them ``interrupted``); the analytics and
experiments jobs join this loop as they land.
"""

import logging
import signal
import time

from django.core.management.base import BaseCommand

from chat.services import sweep_stale_replies

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the periodic jobs (sweep interrupted replies) until stopped."

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
        while True:
            try:
                swept = sweep_stale_replies()
                if swept:
                    logger.info("marked %d stale replies interrupted", swept)
                    self.stdout.write(f"marked {swept} stale replies interrupted")
            except Exception:  # one failed pass must not end the monitor
                logger.exception("monitor pass failed")
            if once or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.5, interval))
