"""Django's PostgreSQL backend, failing fast while the database is down (``ENGINE``
``core.postgresql``, set by the settings for every ``postgres://`` URL).

Stock, a connection checkout during an outage waits the pool's whole timeout
(``DB_POOL_TIMEOUT_SECONDS``, 10 s) and then fails; the chat's one database thread (and every
request behind it) waited that long per call. Here:

* a checkout waits at most ``DB_CONNECT_TIMEOUT_SECONDS`` for the pool; if it gets nothing, a
  direct connection (the same parameters, that timeout) tells a busy pool, which is given the
  rest of the pool timeout, from a dead server, which trips the breaker
  (``core.outages.BREAKER``);
* while the breaker is tripped every checkout fails at once with ``DatabaseUnavailable`` (an
  ``OperationalError``), but for one probe every ``DB_OUTAGE_PROBE_SECONDS``;
* when a probe succeeds the pool is replaced by a fresh one: the old one holds connections that
  broke with the server and reconnects with an exponential back-off (1, 2, 4 ... s, up to five
  minutes), which is why ``/readyz`` took about 28 s to recover after an outage;
* a connection found broken (a restart too short for any request to notice) has the pool check
  its idle connections at once, so the requests after it do not each draw a broken one;
* every connection is a ``deadline.BoundedConnection`` opened with this process's
  ``statement_timeout``: a server that stops answering on an open connection (a hung server, a
  black-holed network) fails a web process's statement within DB_STATEMENT_TIMEOUT_SECONDS
  plus a margin and trips the breaker, instead of waiting for TCP forever (``deadline``).
"""

from django.conf import settings
from django.db.backends.postgresql import base

from core.outages import BREAKER, DatabaseUnavailable

from .deadline import BoundedConnection, server_options


class _FailFastPool:
    """The process's psycopg pool, with the checkout above (everything else passes through)."""

    def __init__(self, wrapper: "DatabaseWrapper", pool):
        self._wrapper = wrapper
        self._pool = pool

    def __getattr__(self, name):
        return getattr(self._pool, name)

    def probe(self) -> None:
        """Open and close a connection outside the pool, waiting at most the connect timeout."""
        kwargs = {**self._pool.kwargs, "connect_timeout": _connect_timeout()}
        self._pool.connection_class.connect(self._pool.conninfo, **kwargs).close()

    def getconn(self, timeout: float | None = None):
        from psycopg_pool import PoolTimeout

        probe_every = settings.DB_OUTAGE_PROBE_SECONDS
        pool = self._pool
        if BREAKER.admit(self.probe, probe_every=probe_every):
            pool = self._wrapper.replace_pool()  # this call's probe ended an outage
        total = pool.timeout if timeout is None else timeout
        first = min(total, settings.DB_CONNECT_TIMEOUT_SECONDS)
        try:
            return pool.getconn(first)
        except PoolTimeout as exc:
            try:
                self.probe()
            except Exception as probe_exc:
                if not _server_answered(probe_exc):
                    BREAKER.trip(probe_exc, probe_every=probe_every)
                    raise DatabaseUnavailable("The database is unavailable.") from probe_exc
                # It answered with an error (e.g. too many connections): busy, not down.
            if total <= first:
                raise exc from None
        return pool.getconn(total - first)  # the server answers: the pool is only busy


def _server_answered(exc: BaseException) -> bool:
    """Whether a failed connection attempt reached a running server that is only full
    (too_many_connections, 53300), rather than no server (refused, timed out, shutting down).

    libpq gives no SQLSTATE for a failed connection, so this reads the server's message (in
    English unless the server's lc_messages says otherwise: then a full server counts as down
    for a probe interval, and the pool is renewed)."""
    if getattr(exc, "sqlstate", None) == "53300":
        return True
    text = str(exc)
    return "too many clients" in text or "connection slots are reserved" in text


def _connect_timeout() -> int:
    # libpq counts whole seconds and treats values below 2 as 2.
    return max(round(settings.DB_CONNECT_TIMEOUT_SECONDS), 2)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, settings_dict, *args, **kwargs):
        super().__init__(settings_dict, *args, **kwargs)
        pool = self.settings_dict["OPTIONS"].get("pool")
        if pool:  # the pool's connections, and so the probe's, are bounded ones
            options = {} if pool is True else pool
            self.settings_dict["OPTIONS"]["pool"] = {
                **options,
                "connection_class": BoundedConnection,
            }

    def get_connection_params(self):
        params = super().get_connection_params()
        options = server_options(params.get("options"))
        if options:
            params["options"] = options
        return params

    @property
    def pool(self):
        pool = super().pool
        return None if pool is None else _FailFastPool(self, pool)

    def _close(self):
        # A connection that broke (the server restarted, or killed it): its idle siblings in
        # the pool most likely broke with it. Check them all now, so that the next requests do
        # not each draw one and fail (the pool does not check a connection it hands out).
        # A connection cut for not answering (``hung``) tripped the breaker instead: checking
        # its siblings would wait for the hung server once per idle connection.
        broken = self.connection is not None and getattr(self.connection, "broken", False)
        hung = getattr(self.connection, "hung", False)
        pool = getattr(self.connection, "_pool", None) if broken and not hung else None
        super()._close()  # type: ignore[misc]  # Django private, not in the stubs
        if pool is not None and not pool.closed:
            pool.check()

    def replace_pool(self):
        """Close the pool (after an outage) and return a fresh, open one."""
        old = self._connection_pools.pop(self.alias, None)  # type: ignore[attr-defined]
        if old is not None:
            old.close(timeout=1.0)
        fresh = super().pool
        fresh.open()
        return fresh
