"""How long a statement may take: a web process is bounded, a job is not (issue 13).

A server that stops answering on an open connection (its processes stopped, a black-holed
network) never closes the socket: a query would wait for TCP forever, and with it the chat's
database thread and every request behind it. So in a web process every statement has two
bounds, ``DB_STATEMENT_TIMEOUT_SECONDS`` (default 5; 0 = none):

* PostgreSQL's own ``statement_timeout`` (a connection option): a slow statement on a live
  server is cancelled by the server, and the connection stays usable;
* a client-side deadline, that timeout plus ``MARGIN_SECONDS``, for a server that does not
  answer at all: ``BoundedConnection`` waits for the server's answer at most that long
  (every wait of psycopg on the connection: a statement, a fetch, a commit, a rollback, the
  pool's check), then closes the connection (Django sees it broken and drops it), trips the
  breaker (``core.outages.BREAKER``) so that the next requests get the 503
  ``database_unavailable`` at once instead of waiting in turn, and raises
  ``StatementDeadlineExceeded`` (an ``OperationalError``).

Jobs run long statements on purpose: ``manage.py`` commands (``migrate``, ``monitor`` and its
rollups, retention, reports and reconciliation, ``cost_report`` ...) run as jobs
(``core.postgresql.run_as_job()``, called by manage.py for every command but ``runserver``), bounded by
``DB_JOB_STATEMENT_TIMEOUT_SECONDS`` instead (default 0: no bound, the server's own default
applies). The role is the process's: its connections are opened with its timeout.
"""

from django.conf import settings
from psycopg import Connection, OperationalError
from psycopg import errors as pg_errors

from core.outages import BREAKER

from . import statement_timeout

# The client gives the server this much longer than its own statement_timeout, so that a live
# server always cancels first (a clean error, a usable connection).
MARGIN_SECONDS = 1.0


def server_options(options: str | None) -> str | None:
    """libpq's ``options`` with this process's ``statement_timeout`` added (none if 0)."""
    milliseconds = round(statement_timeout() * 1000)
    if milliseconds <= 0:
        return options
    return f"{options or ''} -c statement_timeout={milliseconds}".strip()


class StatementDeadlineExceeded(OperationalError):
    """The server did not answer within the statement timeout and its margin."""


class BoundedConnection(Connection):
    """A psycopg connection whose waits for the server end at the process's deadline.

    Every operation of psycopg on an open connection (cursors, commits, server-side cursors,
    COPY, the pool's check) waits for the server in ``Connection.wait``; this is the one place
    that bounds them all. ``hung`` tells Django's backend that the connection was cut this way.
    """

    hung = False

    def wait(self, gen, interval=0.1, timeout=None):
        seconds = statement_timeout()
        if timeout is not None or seconds <= 0:  # a caller's own timeout (notifies) wins
            return super().wait(gen, interval=interval, timeout=timeout)
        limit = seconds + MARGIN_SECONDS
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except pg_errors._WaitTimeout:
            # Mid-protocol: the connection cannot be used again. Closing it here (this thread
            # owns it) makes it ``broken`` for Django and the pool, which discard it.
            self.hung = True
            self.pgconn.finish()
            exc = StatementDeadlineExceeded(f"the database did not answer within {limit:g} s")
            BREAKER.trip(exc, probe_every=settings.DB_OUTAGE_PROBE_SECONDS)
            raise exc from None
