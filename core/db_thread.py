"""The worker threads of the long-lived async code's database work (runners, streams, evals),
and ``through_cancel`` for work that must not be cut in half by a cancel."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection

# The runners' and streams' database work runs here, not in the loop's small default executor
# (min(32, cores + 4) threads): at a few hundred open streams that queue was the bottleneck.
_executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="chat-db")


async def db(fn, /, *args, **kwargs):
    """Run a short database function in a worker thread and give its connection back at once.

    Runners and streams outlive requests; a connection must never stay checked out of the pool
    for the length of a stream (see docs/architecture.md). While PostgreSQL is down a call
    fails fast with ``core.outages.DatabaseUnavailable`` (an ``OperationalError``): the
    first one of an outage within DB_CONNECT_TIMEOUT_SECONDS, the rest at once
    (``core/postgresql``), so no call holds this thread for the pool timeout.
    """

    def call():
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    return await sync_to_async(call, thread_sensitive=False, executor=_executor)()


async def through_cancel(awaitable):
    """Await ``awaitable`` to its end even if this task is cancelled meanwhile.

    Return ``(result, cancelled)``; the caller ends what it does when ``cancelled`` is true (a
    cancel here is the process shutting down or a stop, and the work must not be cut in half).
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise  # the awaited work itself was cancelled
            cancelled = True
