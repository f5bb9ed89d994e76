"""Outages of the database and Redis: noticed once, reported once, answered fast.

* ``DATABASE`` and ``REDIS`` track whether this process can reach each dependency. The first
  failure of an outage logs one WARNING (``database unavailable since ...``), the first success
  after it one INFO with the duration (``database available again after 12.3 s``); failures in
  between log nothing more. ``/metrics`` shows the state as ``aiproject_dependency_up``.
* ``BREAKER`` keeps requests from queueing behind a dead database (see
  ``core/postgresql``): once the database is found down, connection attempts fail at once
  with ``DatabaseUnavailable`` and a single probe every ``DB_OUTAGE_PROBE_SECONDS`` decides when
  it is back, so N waiting calls do not each hold a thread for the pool timeout.
* ``outage_response`` is the 503 every API view and page answers meanwhile:
  ``database_unavailable``, or ``temporarily_unavailable`` while Redis (quotas, rate limits) is
  away; always retryable, with ``Retry-After``.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse

from .errors import error_json

logger = logging.getLogger("core.outages")

RETRY_AFTER_SECONDS = 2


class DatabaseUnavailable(OperationalError):
    """The database is known to be down; raised at once instead of waiting for a connection.

    An ``OperationalError``, so code that handles database errors handles this one too."""


class Outage:
    """Whether one dependency is reachable from this process, logged once per outage."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._started = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def since(self) -> datetime | None:
        return self._since

    def failed(self, exc: BaseException | None = None) -> bool:
        """Note a failure; return True if it starts an outage (then it is logged)."""
        with self._lock:
            if self._since is not None:
                return False
            self._since = datetime.now(UTC)
            self._started = time.monotonic()
            since = self._since
        cause = f" ({type(exc).__name__}: {str(exc).strip()[:200]})" if exc is not None else ""
        logger.warning(
            "%s unavailable since %s%s",
            self.name,
            since.isoformat(timespec="seconds"),
            cause,
            extra={"event": "dependency_down", "dependency": self.name},
        )
        return True

    def recovered(self) -> float | None:
        """Note a success; return the outage's length in seconds if one just ended."""
        if self._since is None:  # the common case, without the lock
            return None
        with self._lock:
            if self._since is None:
                return None
            since, self._since = self._since, None
            duration = time.monotonic() - self._started
        logger.info(
            "%s available again after %.1f s (unavailable since %s)",
            self.name,
            duration,
            since.isoformat(timespec="seconds"),
            extra={
                "event": "dependency_up",
                "dependency": self.name,
                "outage_seconds": round(duration, 1),
            },
        )
        return duration


DATABASE = Outage("database")
REDIS = Outage("redis")
DEPENDENCIES = (DATABASE, REDIS)


class Breaker:
    """Refuse connection attempts at once while the database is down, but for one probe at a
    time, at most every ``probe_every`` seconds."""

    def __init__(self, outage: Outage):
        self.outage = outage
        self._lock = threading.Lock()
        self._probing = False
        self._next_probe = 0.0

    def admit(self, probe: Callable[[], None], *, probe_every: float) -> bool:
        """Return if a connection may be tried (True: this caller's probe ended an outage);
        raise DatabaseUnavailable if not.

        While the database is down, the caller that finds a probe due runs ``probe`` (a direct
        connection with a short timeout): if it works the outage ends and the caller goes on;
        every other caller meanwhile is refused at once.
        """
        if not self.outage.down:
            return False
        with self._lock:
            if self._probing or time.monotonic() < self._next_probe:
                raise DatabaseUnavailable("The database is unavailable (retrying shortly).")
            self._probing = True
        try:
            probe()
        except Exception as exc:
            with self._lock:
                self._probing = False
                self._next_probe = time.monotonic() + probe_every
            raise DatabaseUnavailable("The database is unavailable.") from exc
        with self._lock:
            self._probing = False
        self.outage.recovered()
        return True

    def trip(self, exc: BaseException, *, probe_every: float) -> None:
        """The database was found down: refuse connections until a probe succeeds."""
        with self._lock:
            self._next_probe = time.monotonic() + probe_every
        self.outage.failed(exc)


BREAKER = Breaker(DATABASE)


def is_database_outage(exc: BaseException) -> bool:
    """A failure to reach the database (as opposed to a bad query): connection errors, a pool
    that gave no connection, a connection that broke."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # SQLite-only installs
        return False
    return isinstance(exc, PoolTimeout)


def is_redis_outage(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:
        return False
    return isinstance(exc, ConnectionError | TimeoutError)


def outage_response(request, exc: BaseException) -> HttpResponse | None:
    """The 503 for a request that failed because the database or Redis is away, else None."""
    if is_database_outage(exc):
        return database_unavailable_response(request)
    if is_redis_outage(exc):
        REDIS.failed(exc)  # logged once per outage
        return unavailable_response(
            request,
            "temporarily_unavailable",
            "The service is unavailable for a moment. Please try again in a few seconds.",
        )
    return None


def database_unavailable_response(request) -> HttpResponse:
    """503 with ``Retry-After``: JSON ``database_unavailable`` for the API, a short page else."""
    return unavailable_response(
        request,
        "database_unavailable",
        "The database is unavailable for a moment. Please try again in a few seconds.",
    )


def unavailable_response(request, code: str, message: str) -> HttpResponse:
    """503 with ``Retry-After``: JSON ``{"error": {code, message, retryable}}`` for the API and
    JSON clients, a short page (no template, no database) for the rest."""
    response: HttpResponse
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = error_json(503, {"code": code, "message": message, "retryable": True})
    else:
        response = HttpResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Unavailable</title>"
            f"<h1>Temporarily unavailable</h1><p>{message}</p></html>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # The outage is logged once (Outage.failed), not as an ERROR line per refused request;
    # every request still has its http_request line with the status.
    response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log
    return response
