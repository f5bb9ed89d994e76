"""``manage.py monitor``: the long-running housekeeping process (safe to run twice at once).

Every pass runs the jobs the apps registered (``core.jobs``), in their order: sweep replies
whose runner died (marked ``interrupted``; chat), pause experiments whose treatment tripped a
guardrail (experiments), and the analytics jobs that are due (rollups every minute, raw-call
retention hourly, the daily cost report email once a day, quota counters reconciled after a
Redis outage). Every job is idempotent or claims its work in the database, so two monitors
never double anything.

It survives outages of the database and Redis of any length: every pass starts with fresh
connections (a connection that broke with a restarted server is dropped, never reused), an
outage is logged once (``database unavailable since ...``, then ``database available again
after N s``) rather than a traceback per job per pass, and the heartbeat file
(``MONITOR_HEARTBEAT_FILE``) is written only after a pass in which every job succeeded, so
``monitor --check-heartbeat`` (a container health check) turns unhealthy while it cannot work.
"""

import logging
import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from core.jobs import periodic_jobs
from core.outages import DATABASE, REDIS, is_database_outage, is_redis_outage

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the periodic jobs (sweeper, rollups, retention, cost report) until stopped."
    verbosity = 1

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=10.0, help="Seconds between passes.")
        parser.add_argument("--once", action="store_true", help="Run one pass and exit.")
        parser.add_argument(
            "--check-heartbeat",
            action="store_true",
            help="Exit 0 if MONITOR_HEARTBEAT_FILE was written within --max-age seconds, else 1 "
            "(a container health check); runs no job.",
        )
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            help="With --check-heartbeat: the oldest heartbeat that counts as healthy "
            "(default: 3 intervals, at least 60 s).",
        )

    def handle(self, *args, interval: float, once: bool, check_heartbeat: bool, max_age, **opts):
        if interval <= 0:
            self.stderr.write("--interval must be positive")
            raise SystemExit(2)
        if check_heartbeat:
            raise SystemExit(self.check_heartbeat(max_age or max(3 * interval, 60.0)))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        # A background job of a script (`make run`) inherits SIGINT ignored, so that a terminal's
        # Ctrl-C reaches the script alone, which stops the server first and this process after it
        # (with SIGTERM). Keep it ignored, as Python does for its own handler.
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, stop)
        serve_metrics()
        jobs = periodic_jobs()
        self.verbosity = opts.get("verbosity", 1)
        while True:
            if self.run_pass(jobs):
                write_heartbeat()
            if once or stopping:
                return
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.5, interval))

    def run_pass(self, jobs) -> bool:
        """Run every job once; return True if all of them succeeded."""
        drop_connections()
        ok = database_ok = redis_ok = True
        for name, job in jobs:
            try:
                result = job()
            except Exception as exc:  # one failed job must not end the monitor
                ok = False
                drop_connections()  # never carry a failed connection into the next job
                if is_database_outage(exc):
                    database_ok = False
                    DATABASE.failed(exc)  # logged once per outage, not per job and pass
                elif is_redis_outage(exc):
                    redis_ok = False
                    REDIS.failed(exc)
                else:
                    logger.exception("monitor job %s failed", name)
                continue
            if result:
                logger.info("monitor %s: %s", name, result)
                if self.verbosity:  # 0 (`make run`): in the log only
                    self.stdout.write(f"{name}: {result}")
        if database_ok:
            DATABASE.recovered()
        if redis_ok:
            REDIS.recovered()
        return ok

    def check_heartbeat(self, max_age: float) -> int:
        path = settings.MONITOR_HEARTBEAT_FILE
        if not path:
            self.stderr.write("MONITOR_HEARTBEAT_FILE is not set: the monitor writes no heartbeat.")
            return 1
        try:
            age = time.time() - Path(path).stat().st_mtime
        except OSError:
            self.stderr.write(f"no heartbeat at {path}: no pass of the monitor has succeeded yet")
            return 1
        if age > max_age:
            self.stderr.write(f"the last successful pass was {age:.0f} s ago (> {max_age:.0f} s)")
            return 1
        self.stdout.write(f"the last successful pass was {age:.1f} s ago")
        return 0


def serve_metrics() -> None:
    """Serve this process's Prometheus metrics at MONITOR_METRICS_ADDRESS (a daemon thread):
    ``aiproject_dependency_up`` as the monitor sees the database and Redis."""
    if not settings.MONITOR_METRICS_ADDRESS:
        return
    from prometheus_client import start_http_server

    from core.metrics import REGISTRY

    host, _, port = settings.MONITOR_METRICS_ADDRESS.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]"), registry=REGISTRY)


def drop_connections() -> None:
    """Give the connection back: a connection that broke with the server (a restart, a
    failover) would otherwise be reused by every later pass, each failing with "the connection
    is closed". (Not inside a transaction: a test's ``call_command`` runs in one.)"""
    if not connection.in_atomic_block:
        close_old_connections()
        connection.close()


def write_heartbeat() -> None:
    """Touch MONITOR_HEARTBEAT_FILE (written to a temporary name, then renamed over it)."""
    path = settings.MONITOR_HEARTBEAT_FILE
    if not path:
        return
    try:
        temporary = f"{path}.{os.getpid()}.tmp"
        Path(temporary).write_text(f"{time.time():.3f}\n")
        os.replace(temporary, path)
    except OSError:
        logger.warning("could not write the heartbeat file %s", path, exc_info=True)
